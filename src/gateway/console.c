/* console.c: serves the embedded files of src/console/ (plain ES modules,
 * no build step; README "Admin console"): the console at / of the admin
 * listener, the setup portal's page at /portal of the public one. Every
 * answer carries the same security headers: CSP default-src 'self' (no
 * inline script or style), frame-ancestors 'none', nosniff, no referrer. */
#include <string.h>
#include "rolegate/gateway.h"
#include "rolegate/http.h"

#define CSP "default-src 'self'; base-uri 'none'; form-action 'self'; " \
            "frame-ancestors 'none'; object-src 'none'"

static const rg_console_asset *asset_find(const char *name)
{
    for (const rg_console_asset *a = rg_console_assets; name && a->name; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

/* The portal's listener serves only the files the portal page loads. */
static int public_asset(const char *name)
{
    static const char *const allowed[] = {"portal.html", "portal.js", "api.js", "ui.js", "page_connections.js",
                                          "style.css", NULL};
    for (size_t i = 0; allowed[i]; i++)
        if (strcmp(allowed[i], name) == 0)
            return 1;
    return 0;
}

static void send_asset(rg_http_req *req, const char *name)
{
    const rg_console_asset *a = asset_find(name);
    rg_http_add_header(req, "Content-Security-Policy", CSP);
    rg_http_add_header(req, "X-Content-Type-Options", "nosniff");
    rg_http_add_header(req, "X-Frame-Options", "DENY");
    rg_http_add_header(req, "Referrer-Policy", "no-referrer");
    rg_http_add_header(req, "Cache-Control", "no-cache");
    if (!a) {
        rg_http_send_errorf(req, RG_ENOTFOUND, "not_found", NULL, "no such file");
        return;
    }
    rg_http_send_arena(req, 200, a->type, a->data, a->len);
}

static void h_index(rg_http_req *req, void *ctx)
{
    send_asset(req, "index.html");
}

static void h_file(rg_http_req *req, void *ctx)
{
    send_asset(req, rg_http_param(req, "file"));
}

static void h_portal(rg_http_req *req, void *ctx)
{
    send_asset(req, "portal.html");
}

static void h_portal_file(rg_http_req *req, void *ctx)
{
    const char *f = rg_http_param(req, "file");
    send_asset(req, f && public_asset(f) ? f : "");
}

static const rg_http_route_def console_admin_routes[] = {
    {"GET", "/", h_index, RG_HTTP_NO_AUTH, 0},
    {"GET", "/console/{file}", h_file, RG_HTTP_NO_AUTH, 0},
};

static const rg_http_route_def console_public_routes[] = {
    {"GET", "/portal", h_portal, 0, 0},
    {"GET", "/portal/assets/{file}", h_portal_file, 0, 0},
};

int rg_gateway_console_register(struct rg_http_server *pub, struct rg_http_server *adm,
                                rg_error *err)
{
    int rc = rg_http_routes_add(adm, console_admin_routes, RG_HTTP_NROUTES(console_admin_routes),
                                NULL, err);
    if (!rc && adm)
        rc = rg_http_console_auth_register(adm, err);
    if (!rc)
        rc = rg_http_routes_add(pub, console_public_routes,
                                RG_HTTP_NROUTES(console_public_routes), NULL, err);
    return rc;
}
