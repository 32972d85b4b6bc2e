/* ctx.h: rg_ctx, the one bundle of long-lived state that `rolegate serve`
 * builds and hands to every handler explicitly (STYLE.md: no mutable
 * globals). main.c owns every pointer in it and frees them at exit;
 * handlers only borrow. */
#ifndef ROLEGATE_CTX_H
#define ROLEGATE_CTX_H

#include "rolegate/config.h"

struct rg_store;
struct rg_keyring;
struct rg_http_server;
struct rg_cache;
struct rg_saml_sp_keys;

typedef struct rg_ctx {
    const rg_config       *config;      /* immutable, parsed once */
    const char            *admin_key;   /* the admin bearer key (never log it) */
    struct rg_store       *store;       /* rg_store_open */
    struct rg_keyring     *keys;        /* session signing keys */
    struct rg_cache       *cache;       /* role tables, replay, login state, revocations */
    struct rg_saml_sp_keys *sp_keys;    /* the SAML SP key pair, made at first use */
    struct rg_http_server *public_server;
    struct rg_http_server *admin_server;
} rg_ctx;

#endif
