/* error.h: the one error type of rolegate (STYLE.md). A failing function
 * returns a negative code and fills an rg_error: the HTTP status it maps to,
 * a stable code string (e.g. "role_slug_conflict"), the offending field (may
 * be empty) and a human message. Handlers turn it into the JSON error body in
 * one place. libc only, so core may use it. */
#ifndef ROLEGATE_ERROR_H
#define ROLEGATE_ERROR_H

#include <stddef.h>

#define RG_OK         0
#define RG_ERR       -1   /* generic failure, details in rg_error */
#define RG_ENOMEM    -2
#define RG_ENOTFOUND -3
#define RG_ECONFLICT -4
#define RG_EINVAL    -5
#define RG_EIO       -6

typedef struct rg_error {
    int  status;        /* HTTP status: 400, 404, 409, 422, 500, ... */
    char code[64];      /* stable machine code */
    char field[64];     /* field at fault, "" if none */
    char message[256];  /* human-readable reason */
} rg_error;

/* Fills err (if non-NULL) and returns rc. field may be NULL. */
int rg_error_set(rg_error *err, int rc, int status, const char *code,
                 const char *field, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Out of memory, the same everywhere: fills err with 500 "out_of_memory"
 * and returns RG_ENOMEM. */
int rg_error_oom(rg_error *err);

/* Resets err to "no error". Accepts NULL. */
void rg_error_clear(rg_error *err);

#endif
