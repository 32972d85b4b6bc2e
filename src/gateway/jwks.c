/* jwks.c: GET /.well-known/jwks.json on the public listener: the public
 * halves of the session signing keys (active first, the others still
 * verifying during a rotation), so applications behind the proxy can verify
 * X-Rolegate-Session themselves. The document is built once when the keys
 * are loaded; serving it copies nothing. */
#include <assert.h>
#include <string.h>
#include "gw_internal.h"

void gw_h_jwks(rg_http_req *req, void *ctx)
{
    rg_gateway *gw = ctx;
    assert(gw && gw->ctx->keys);
    const char *doc = rg_keyring_jwks_json(gw->ctx->keys);
    if (!doc) {
        gw_deny(req, 500, "keys_missing");
        return;
    }
    /* public keys change only on rotation; a new key is published before it
     * signs (keygen --no-activate), so five minutes of caching is safe */
    rg_http_add_header(req, "Cache-Control", "public, max-age=300");
    /* the keyring outlives every request: no copy needed */
    rg_http_send_arena(req, 200, "application/json", doc, strlen(doc));
}
