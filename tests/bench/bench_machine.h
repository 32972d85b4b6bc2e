/* bench_machine.h: what the C benchmarks print about the machine they ran
 * on (kernel, CPU model and count, from uname and /proc/cpuinfo) and the
 * monotonic clock they time with. Header-only (static functions), test
 * code only. */
#ifndef RG_BENCH_MACHINE_H
#define RG_BENCH_MACHINE_H

#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

/* The first "model name" of /proc/cpuinfo into model ("unknown" if none);
 * returns how many it lists (the logical CPUs). */
static __attribute__((unused)) int bench_cpu_model(char *model, size_t n)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    int cpus = 0;
    snprintf(model, n, "unknown");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && cpus++ == 0) {
            char *c = strchr(line, ':');
            snprintf(model, n, "%s", c ? c + 2 : "?");
            model[strcspn(model, "\n")] = 0;
        }
    if (f)
        fclose(f);
    return cpus;
}

/* "machine: <sysname> <release> <machine>" and "cpu: <model> (<n> logical)". */
static __attribute__((unused)) void bench_print_machine(void)
{
    struct utsname u;
    if (uname(&u) == 0)
        printf("machine: %s %s %s\n", u.sysname, u.release, u.machine);
    char model[256];
    int cpus = bench_cpu_model(model, sizeof model);
    printf("cpu: %s (%d logical)\n", model, cpus);
}

static __attribute__((unused)) double bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

#endif
