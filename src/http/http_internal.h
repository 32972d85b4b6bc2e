/* http_internal.h: what the files of src/http share and nobody else sees:
 * the admin listener's console sessions (bsess.c) read by the auth check
 * of server.c. */
#ifndef ROLEGATE_HTTP_INTERNAL_H
#define ROLEGATE_HTTP_INTERNAL_H

#include "rolegate/http.h"

/* The console session table of an admin listener, NULL until enabled. */
rg_http_bsess *rg_http_server_console(rg_http_server *s);
/* Creates it (idempotent). 0 or RG_ENOMEM. */
int rg_http_server_console_enable(rg_http_server *s);
/* 1 if key is the listener's admin key (constant time), else 0. */
int rg_http_server_key_equal(const rg_http_server *s, const char *key);
/* 0 if the request carries a console session (and, on a write, the CSRF
 * token and a same-origin Origin), else the status to answer: 401 or 403. */
int rg_http_console_authorize(rg_http_server *s, const rg_http_req *r);

#endif
