/* error.c: filling the single rg_error type (see error.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "rolegate/error.h"

int rg_error_set(rg_error *err, int rc, int status, const char *code,
                 const char *field, const char *fmt, ...)
{
    if (!err)
        return rc;
    err->status = status;
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
    return rg_error_set(err, RG_ENOMEM, 500, "out_of_memory", NULL, "out of memory");
}

void rg_error_clear(rg_error *err)
{
    if (err)
        memset(err, 0, sizeof *err);
}
