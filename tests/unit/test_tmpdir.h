/* test_tmpdir.h: a temporary directory for a unit test (include after
 * cmocka.h): tt_mkdtemp("name") makes /tmp/rg-name-XXXXXX (malloc'd path,
 * the test fails if it cannot), tt_rm_rf removes it with its contents and
 * frees the path. */
#ifndef TEST_TMPDIR_H
#define TEST_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline char *tt_mkdtemp(const char *name)
{
    char tmpl[128];
    snprintf(tmpl, sizeof tmpl, "/tmp/rg-%s-XXXXXX", name);
    char *d = strdup(tmpl);
    assert_non_null(d);
    assert_non_null(mkdtemp(d));
    return d;
}

static inline void tt_rm_rf(char *d)
{
    if (!d)
        return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
    free(d);
}

#endif
