/* fuzz_common.h: helpers shared by the fuzz targets of tests/fuzz (not part
 * of rolegate): the CHECK property macro, and a private copy of the fixed
 * test signing keys of tests/fuzz/keys in a temporary directory with the
 * modes the session layer demands (0700 dir, 0600 files), removed at exit.
 * These keys are test fixtures, public in the repository: never use them to
 * sign anything real. */
#ifndef RG_FUZZ_COMMON_H
#define RG_FUZZ_COMMON_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { \
    fprintf(stderr, "property failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); \
    abort(); } } while (0)

static char fuzz_keys_tmp[64];

__attribute__((unused)) static void fuzz_keys_cleanup(void)
{
    DIR *d = opendir(fuzz_keys_tmp);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", fuzz_keys_tmp, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(fuzz_keys_tmp);
}

/* Copies every file of $RG_FUZZ_KEYS (default tests/fuzz/keys, relative to
 * the repository root the run script starts in) to a fresh 0700 temporary
 * directory with mode 0600 and returns its path. Aborts on any failure. */
__attribute__((unused)) static const char *fuzz_keys_dir(void)
{
    if (fuzz_keys_tmp[0])
        return fuzz_keys_tmp;
    const char *src = getenv("RG_FUZZ_KEYS");
    if (!src)
        src = "tests/fuzz/keys";
    snprintf(fuzz_keys_tmp, sizeof fuzz_keys_tmp, "/tmp/rg-fuzz-keys-XXXXXX");
    if (!mkdtemp(fuzz_keys_tmp)) {
        perror("mkdtemp");
        abort();
    }
    atexit(fuzz_keys_cleanup);
    DIR *d = opendir(src);
    if (!d) {
        fprintf(stderr, "fuzz: cannot open key directory %s (run from the repository "
                "root or set RG_FUZZ_KEYS)\n", src);
        abort();
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char in[512], out[512];
        snprintf(in, sizeof in, "%s/%s", src, e->d_name);
        snprintf(out, sizeof out, "%s/%s", fuzz_keys_tmp, e->d_name);
        FILE *fi = fopen(in, "rb"), *fo = fopen(out, "wb");
        if (!fi || !fo)
            abort();
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, fi)) > 0)
            if (fwrite(buf, 1, n, fo) != n)
                abort();
        fclose(fi);
        if (fclose(fo) != 0 || chmod(out, 0600) != 0)
            abort();
    }
    closedir(d);
    return fuzz_keys_tmp;
}

#endif
