/* bench_machine.h: what the C benchmarks print about the machine they ran
 * on (kernel, CPU model and count, from uname and /proc/cpuinfo) and the
 * monotonic clock they time with. Header-only (static functions), test
 * code only. */
#ifndef RG_BENCH_MACHINE_H
#define RG_BENCH_MACHINE_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
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

/* The machine's CPU ticks from the first line of /proc/stat: *busy all but
 * idle and iowait, *all every state; 0, or -1 when it cannot be read. Two
 * readings around a run give the share of the machine it kept busy: a
 * throughput figure taken with CPUs idle was bound by latency (its clients
 * waited), not by what the machine can do. */
static __attribute__((unused)) int bench_cpu_ticks(unsigned long long *busy,
                                                   unsigned long long *all)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    int n = f ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                       &v[3], &v[4], &v[5], &v[6], &v[7])
              : 0;
    if (f)
        fclose(f);
    if (n < 5)
        return -1;
    *all = 0;
    for (int i = 0; i < 8; i++)
        *all += v[i];
    *busy = *all - v[3] - v[4];
    return 0;
}

/* From /proc/<pid>/stat ("PID (comm) state ppid ...", the name may hold
 * spaces and ')'): the process's name into comm (n bytes; NULL: not
 * wanted) and its CPU clock ticks (sysconf(_SC_CLK_TCK)) of user and
 * system time, fields 14 and 15: 0, or -1 when it cannot be read. */
static __attribute__((unused)) int bench_proc_ticks(const char *pid, char *comm, size_t n,
                                                    unsigned long long *user,
                                                    unsigned long long *sys)
{
    char path[300], line[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    FILE *f = fopen(path, "r");
    size_t got = f ? fread(line, 1, sizeof line - 1, f) : 0;
    if (f)
        fclose(f);
    line[got] = 0;
    char *open = strchr(line, '('), *close = strrchr(line, ')');
    if (!open || !close || close < open ||
        sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", user, sys) != 2)
        return -1;
    if (comm)
        snprintf(comm, n, "%.*s", (int)(close - open - 1), open + 1);
    return 0;
}

/* The CPU ticks that every process named comm ("rolegate", "postgres") has
 * used, user and system apart, summed over all of them: 0, or -1 when /proc
 * cannot be read. Two readings around a run give what the server and its
 * database cost per request. A process started between the readings counts
 * from zero (its start-up included: PostgreSQL's backends of connections
 * opened at the first logins); one that ended between them is missing. */
static __attribute__((unused)) int bench_comm_ticks(const char *comm, unsigned long long *user,
                                                    unsigned long long *sys)
{
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    *user = *sys = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char name[64];
        unsigned long long u, s;
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' &&
            bench_proc_ticks(e->d_name, name, sizeof name, &u, &s) == 0 && !strcmp(name, comm)) {
            *user += u;
            *sys += s;
        }
    }
    closedir(d);
    return 0;
}

static __attribute__((unused)) double bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

#endif
