/* error.h: the one error type of rolegate (STYLE.md; curl's model). A
 * failing function returns a negative error kind (rg_errkind) and fills an
 * rg_error: the HTTP status of that kind, a stable code string (e.g.
 * "role_slug_conflict"), the offending field (may be empty) and a human
 * message. Each kind has exactly one HTTP status, written once in the table
 * of src/util/error.c; handlers turn an rg_error into the JSON error body in
 * one place. libc only, so core may use it.
 * Converting a call that still names a status: tests/lint/error_kinds. */
#ifndef ROLEGATE_ERROR_H
#define ROLEGATE_ERROR_H

#include <stddef.h>

/* The values of the first seven are kept from before the table. */
typedef enum rg_errkind {
    RG_OK             =   0,  /* 200: no error */
    RG_ERR            =  -1,  /* 500: failed, a callee already filled the rg_error */
    RG_ENOMEM         =  -2,  /* 500: out of memory */
    RG_ENOTFOUND      =  -3,  /* 404: no such thing */
    RG_ECONFLICT      =  -4,  /* 409: conflicts with what exists (or with its state) */
    RG_EINVAL         =  -5,  /* 400: malformed request */
    RG_EIO            =  -6,  /* 500: a file, the store or the cache failed */
    RG_EUNAUTH        =  -7,  /* 401: not authenticated (no, a bad or an expired credential) */
    RG_EFORBIDDEN     =  -8,  /* 403: authenticated but refused */
    RG_EMETHOD        =  -9,  /* 405: method not allowed on this path */
    RG_ETOOLARGE      = -10,  /* 413: the body is too large */
    RG_EMEDIATYPE     = -11,  /* 415: unsupported media type */
    RG_EUNPROCESSABLE = -12,  /* 422: well formed, but a field is not acceptable */
    RG_EINTERNAL      = -13,  /* 500: our own setup or state is wrong */
    RG_EUPSTREAM      = -14,  /* 502: an upstream (IdP) answered what we refuse */
    RG_EUNREACHABLE   = -15,  /* 502: an upstream could not be reached or read */
    RG_EUNAVAIL       = -16,  /* 503: a dependency (store, Redis) is unavailable now */
} rg_errkind;

#define RG_ERRKIND_COUNT 17   /* RG_OK .. RG_EUNAVAIL */

typedef struct rg_error {
    int  status;        /* HTTP status: rg_error_status() of the kind set */
    int  kind;          /* the rg_errkind set (0: none set, or RG_OK) */
    char code[64];      /* stable machine code */
    char field[64];     /* field at fault, "" if none */
    char message[256];  /* human-readable reason */
} rg_error;

/* The HTTP status of kind rc (RG_OK 200; not a kind: 500). */
int rg_error_status(int rc);

/* The kind's name ("RG_EUNAUTH"), "RG_E?" if rc is not a kind. Static. */
const char *rg_error_name(int rc);

/* Fills err (if non-NULL) with the status of kind rc and returns rc.
 * field may be NULL. */
int rg_error_set(rg_error *err, int rc, const char *code, const char *field,
                 const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The same error as another kind: its code, field and message kept, the
 * status the table's for rc (e.g. a refused refresh, 422 session_too_large
 * at the signer, ends the session: 401). Returns rc; err may be NULL. */
int rg_error_recast(rg_error *err, int rc);

/* Out of memory, the same everywhere: fills err with 500 "out_of_memory"
 * and returns RG_ENOMEM. */
int rg_error_oom(rg_error *err);

/* Resets err to "no error". Accepts NULL. */
void rg_error_clear(rg_error *err);

#endif
