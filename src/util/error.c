/* error.c: the single rg_error type (see error.h) and the one table that
 * gives each error kind its HTTP status (issue 16 item 5; curl's model).
 * tests/lint/error_kinds reads the KIND lines below: for a status with more
 * than one kind, the first listed is the one a bare status converts to. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "rolegate/error.h"

typedef struct kind_def {
    int status;
    const char *name;
} kind_def;

#define KIND(k, st) [-(k)] = {st, #k}
static const kind_def kinds[RG_ERRKIND_COUNT] = {
    KIND(RG_OK, 200),
    KIND(RG_EINVAL, 400),
    KIND(RG_EUNAUTH, 401),
    KIND(RG_EFORBIDDEN, 403),
    KIND(RG_ENOTFOUND, 404),
    KIND(RG_EMETHOD, 405),
    KIND(RG_ECONFLICT, 409),
    KIND(RG_ETOOLARGE, 413),
    KIND(RG_EMEDIATYPE, 415),
    KIND(RG_EUNPROCESSABLE, 422),
    KIND(RG_EINTERNAL, 500),
    KIND(RG_ENOMEM, 500),
    KIND(RG_EIO, 500),
    KIND(RG_ERR, 500),
    KIND(RG_EUPSTREAM, 502),
    KIND(RG_EUNREACHABLE, 502),
    KIND(RG_EUNAVAIL, 503),
};
#undef KIND

static const kind_def *kind_of(int rc)
{
    return rc <= 0 && rc > -RG_ERRKIND_COUNT && kinds[-rc].name ? &kinds[-rc] : NULL;
}

int rg_error_status(int rc)
{
    const kind_def *k = kind_of(rc);
    return k ? k->status : 500;
}

int rg_error_recast(rg_error *err, int rc)
{
    if (err) {
        err->status = rg_error_status(rc);
        err->kind = rc;
    }
    return rc;
}

const char *rg_error_name(int rc)
{
    const kind_def *k = kind_of(rc);
    return k ? k->name : "RG_E?";
}

int rg_error_set(rg_error *err, int rc, const char *code, const char *field,
                 const char *fmt, ...)
{
    if (!err)
        return rc;
    err->status = rg_error_status(rc);
    err->kind = rc;
    snprintf(err->code, sizeof err->code, "%s", code ? code : "");
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return rc;
}

int rg_error_oom(rg_error *err)
{
    return rg_error_set(err, RG_ENOMEM, "out_of_memory", NULL, "out of memory");
}

void rg_error_clear(rg_error *err)
{
    if (err)
        memset(err, 0, sizeof *err);
}
