/* test_http_server.c: a real rg_http_server on a free loopback port (port 0)
 * and a raw-socket client: the request API handlers rely on (path params,
 * repeated query params, headers, cookies and their duplicates, client
 * address behind a trusted proxy, JSON/form/raw bodies), 400 with the JSON
 * byte offset, 415, per-route 413, repeatable response headers, header
 * injection refused, the admin key and NO_AUTH, 500 when a handler forgets
 * to answer, and RG_HTTP_OFFLOAD: a slow handler on a worker does not hold
 * up the other connections of its poll thread, keeps keep-alive, and a stop
 * waits for it. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include "rolegate/http.h"
#include "rolegate/util.h"

/* ---- a tiny HTTP/1.1 client ------------------------------------------------ */
typedef struct reply { int status; char *head; char *body; size_t body_len; } reply;

static void reply_free(reply *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static reply do_request(int port, const char *method, const char *path, const char *headers,
                        const char *body, size_t body_len)
{
    reply rp = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    rg_buf req = {0};
    rg_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s", method, path,
                  headers ? headers : "");
    if (body || body_len)
        rg_buf_printf(&req, "Content-Length: %zu\r\n", body_len);
    rg_buf_puts(&req, "\r\n");
    if (body)   /* body NULL with a length: only declared (a 413 comes first) */
        rg_buf_append(&req, body, body_len);
    size_t off = 0;
    while (off < req.len) {
        ssize_t w = send(fd, req.data + off, req.len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    rg_buf_free(&req);
    rg_buf in = {0};
    char tmp[65536];
    ssize_t n;
    while ((n = recv(fd, tmp, sizeof tmp, 0)) > 0)
        rg_buf_append(&in, tmp, (size_t)n);
    close(fd);
    assert_non_null(in.data);
    char *sep = strstr(in.data, "\r\n\r\n");
    assert_non_null(sep);
    rp.head = strndup(in.data, (size_t)(sep - in.data));
    rp.body_len = in.len - (size_t)(sep + 4 - in.data);
    rp.body = malloc(rp.body_len + 1);
    memcpy(rp.body, sep + 4, rp.body_len);
    rp.body[rp.body_len] = 0;
    rp.status = atoi(in.data + 9);
    rg_buf_free(&in);
    return rp;
}

static int head_count(const reply *r, const char *line)
{
    int c = 0;
    for (const char *p = r->head; (p = strcasestr(p, line)); p++)
        c++;
    return c;
}

/* ---- handlers -------------------------------------------------------------------- */

static void h_echo(rg_http_req *r, void *ctx)
{
    const char *xs[8];
    size_t nx = rg_http_query_all(r, "x", xs, 8);
    json_t *arr = json_array();
    for (size_t i = 0; i < nx && i < 8; i++)
        json_array_append_new(arr, json_string(xs[i]));
    const char *y = rg_http_query(r, "y"), *c = rg_http_cookie(r, "c");
    const char *hx = rg_http_header(r, "x-test");
    rg_http_send_json(r, 200, json_pack("{s:s,s:o,s:s?,s:s?,s:i,s:s?,s:s,s:s,s:s}",
                                        "id", rg_http_param(r, "id"), "x", arr, "y", y, "c", c,
                                        "c_count", rg_http_cookie_count(r, "c"), "hx", hx,
                                        "client", rg_http_client_addr(r), "peer",
                                        rg_http_peer_addr(r), "ctx", (const char *)ctx));
}

static void h_json(rg_http_req *r, void *ctx)
{
    json_t *j = rg_http_json(r);
    rg_http_send_json(r, 201, json_pack("{s:O?,s:s}", "got", j, "ct", rg_http_content_type(r)));
}

static void h_form(rg_http_req *r, void *ctx)
{
    const char *saml = rg_http_form(r, "SAMLResponse");
    const char *as[4];
    size_t na = rg_http_form_all(r, "a", as, 4);
    rg_http_send_json(r, 200, json_pack("{s:i,s:i,s:s?}", "saml_len",
                                        saml ? (int)strlen(saml) : -1, "a_count", (int)na,
                                        "a1", na > 1 ? as[1] : NULL));
}

static void h_raw(rg_http_req *r, void *ctx)
{
    size_t len;
    const char *b = rg_http_body(r, &len);
    rg_http_send(r, 200, "text/plain", b, len);
}

static void h_cookies(rg_http_req *r, void *ctx)
{
    /* no cmocka asserts here: this runs on a server thread */
    int ok = rg_http_add_header(r, "Set-Cookie", "a=1; HttpOnly") == 0 &&
             rg_http_add_header(r, "Set-Cookie", "b=2; HttpOnly") == 0 &&
             rg_http_add_header(r, "X-Evil", "v\r\nInjected: yes") == RG_EINVAL &&
             rg_http_add_header(r, "X-Evil", "v\nInjected: yes") == RG_EINVAL &&
             rg_http_add_header(r, "X-Evil", "a long value, then a lone CR\r") == RG_EINVAL &&
             rg_http_add_header(r, "Bad Name", "v") == RG_EINVAL;
    /* all or none: the third pair fails, so the two before it are gone too */
    const char *const batch[][2] = {{"X-Batch-One", "1"}, {"X-Batch-Skipped", NULL},
                                    {"X-Batch-Two", "2"}, {"X-Batch-Bad", "v\nInjected: yes"},
                                    {"X-Batch-Three", "3"}};
    const char *bad = NULL;
    ok = ok && rg_http_add_headers(r, batch, 5, &bad) == RG_EINVAL && bad &&
         strcmp(bad, "X-Batch-Bad") == 0;
    const char *const good[][2] = {{"X-Batch-Kept", "a"}, {"X-Batch-Kept", "b"}};
    ok = ok && rg_http_add_headers(r, good, 2, NULL) == RG_OK;
    char *s = rg_arena_printf(rg_http_arena(r), "rid=%s", rg_http_request_id(r));
    rg_http_send_arena(r, ok ? 200 : 500, "text/plain", s, strlen(s));
    if (rg_http_send(r, 500, NULL, "x", 1) != RG_ERR)   /* answered once */
        rg_http_add_header(r, "X-Second-Answer", "accepted");
}

static void h_error(rg_http_req *r, void *ctx)
{
    rg_error e;
    rg_error_set(&e, RG_EUNPROCESSABLE, "role_slug_invalid", "slug", "slug %s is bad", "X");
    rg_http_send_error(r, &e);
}

static void h_forgets(rg_http_req *r, void *ctx) { (void)r; }

static void h_redirect(rg_http_req *r, void *ctx)
{
    rg_http_redirect(r, 302, "/app?x=1");
}

/* ---- fixture ---------------------------------------------------------------------- */
typedef struct fx { rg_http_server *pub, *adm; int pport, aport; } fx;
static char ctx_tag[] = "ctx-ok";

static int setup(void **st)
{
    rg_log_open("/dev/null", RG_LOG_ERROR);
    fx *f = calloc(1, sizeof *f);
    rg_error err;
    rg_http_options po = {.name = "public", .listen = "127.0.0.1:0", .threads = 2,
                          .max_body = 8192, .connection_timeout = 5,
                          .trusted_proxies = "127.0.0.1, 10.0.0.0/8"};
    f->pub = rg_http_server_new(&po, &err);
    assert_non_null(f->pub);
    static const rg_http_route_def tagged[] = {{"GET", "/q/{id}", h_echo, 0, 0}};
    static const rg_http_route_def pub_routes[] = {
        {"POST", "/json", h_json, RG_HTTP_BODY_JSON, 0},
        {"PATCH", "/json", h_json, RG_HTTP_BODY_JSON | RG_HTTP_BODY_OPTIONAL, 0},
        {"POST", "/acs", h_form, RG_HTTP_BODY_FORM, 400 * 1024},
        {"PUT", "/raw", h_raw, RG_HTTP_BODY_RAW, 0},
        {"GET", "/cookies", h_cookies, 0, 0},
        {"GET", "/error", h_error, 0, 0},
        {"GET", "/forgets", h_forgets, 0, 0},
        {"GET", "/redirect", h_redirect, 0, 0},
    };
    assert_int_equal(rg_http_routes_add(f->pub, tagged, 1, ctx_tag, &err), 0);
    assert_int_equal(rg_http_routes_add(f->pub, pub_routes, RG_HTTP_NROUTES(pub_routes), NULL,
                                        &err), 0);
    assert_int_equal(rg_http_server_start(f->pub, &err), 0);
    f->pport = rg_http_server_port(f->pub);
    assert_true(f->pport > 0);

    rg_http_options ao = {.name = "admin", .listen = "127.0.0.1:0", .threads = 1,
                          .max_body = 8192, .admin_key = "s3cret-key"};
    f->adm = rg_http_server_new(&ao, &err);
    assert_non_null(f->adm);
    static const rg_http_route_def open_route[] = {{"GET", "/open", h_error, RG_HTTP_NO_AUTH, 0}};
    assert_int_equal(rg_http_routes_add(f->adm, tagged, 1, ctx_tag, &err), 0);
    assert_int_equal(rg_http_routes_add(f->adm, open_route, 1, NULL, &err), 0);
    assert_int_equal(rg_http_server_start(f->adm, &err), 0);
    f->aport = rg_http_server_port(f->adm);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    fx *f = *st;
    rg_http_server_stop(f->pub, 1000);
    rg_http_server_free(f->pub);
    rg_http_server_free(f->adm);
    free(f);
    return 0;
}

static void test_params_query_headers_cookies(void **st)
{
    fx *f = *st;
    reply r = do_request(f->pport, "GET", "/q/a%2Fb?x=1&y=two+words&x=%C3%A9&x=3",
                         "X-Test: hello\r\nCookie: c=first; d=4\r\nCookie: c=second\r\n", NULL, 0);
    assert_int_equal(r.status, 200);
    json_t *j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "a/b");
    json_t *x = json_object_get(j, "x");
    assert_int_equal(json_array_size(x), 3);
    assert_string_equal(json_string_value(json_array_get(x, 1)), "\xc3\xa9");
    assert_string_equal(json_string_value(json_object_get(j, "y")), "two words");
    assert_string_equal(json_string_value(json_object_get(j, "c")), "first");
    assert_int_equal(json_integer_value(json_object_get(j, "c_count")), 2);
    assert_string_equal(json_string_value(json_object_get(j, "hx")), "hello");
    assert_string_equal(json_string_value(json_object_get(j, "ctx")), "ctx-ok");
    assert_string_equal(json_string_value(json_object_get(j, "peer")), "127.0.0.1");
    assert_int_equal(head_count(&r, "X-Request-Id: req_"), 1);
    json_decref(j);
    reply_free(&r);
}

static void test_client_addr_only_through_trusted_proxies(void **st)
{
    fx *f = *st;
    /* the peer 127.0.0.1 is trusted; 10.1.2.3 is too; 203.0.113.9 is the client */
    reply r = do_request(f->pport, "GET", "/q/1",
                         "X-Forwarded-For: 198.51.100.7, 203.0.113.9, 10.1.2.3\r\n", NULL, 0);
    json_t *j = json_loads(r.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "client")), "203.0.113.9");
    json_decref(j);
    reply_free(&r);
    /* the admin server trusts no proxy: the header is ignored */
    r = do_request(f->aport, "GET", "/q/1",
                   "Authorization: Bearer s3cret-key\r\nX-Forwarded-For: 203.0.113.9\r\n", NULL, 0);
    assert_int_equal(r.status, 200);
    j = json_loads(r.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "client")), "127.0.0.1");
    json_decref(j);
    reply_free(&r);
}

static void test_json_body_400_with_byte_offset_and_415(void **st)
{
    fx *f = *st;
    const char *ct = "Content-Type: application/json\r\n";
    reply r = do_request(f->pport, "POST", "/json", ct, "{\"a\": [1, 2]}", 13);
    assert_int_equal(r.status, 201);
    assert_non_null(strstr(r.body, "\"got\":{\"a\":[1,2]}"));
    reply_free(&r);
    const char *bad = "{\"slug\": \"admin\", \"name\": \"Adm";
    r = do_request(f->pport, "POST", "/json", ct, bad, strlen(bad));
    assert_int_equal(r.status, 400);
    json_t *j = json_loads(r.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "code")), "invalid_json");
    const char *msg = json_string_value(json_object_get(j, "message"));
    const char *at = strstr(msg, "byte ");
    assert_non_null(at);
    int pos = atoi(at + 5);
    assert_true(pos >= 1 && pos <= (int)strlen(bad));
    json_decref(j);
    reply_free(&r);
    r = do_request(f->pport, "POST", "/json", ct, "{\"a\":1,\"a\":2}", 13);   /* duplicate key */
    assert_int_equal(r.status, 400);
    reply_free(&r);
    r = do_request(f->pport, "POST", "/json", ct, "", 0);                    /* empty body */
    assert_int_equal(r.status, 400);
    reply_free(&r);
    r = do_request(f->pport, "POST", "/json", ct, "\"scalar\"", 8);          /* any JSON */
    assert_int_equal(r.status, 201);
    reply_free(&r);
    r = do_request(f->pport, "POST", "/json", "Content-Type: text/plain\r\n", "{}", 2);
    assert_int_equal(r.status, 415);
    assert_non_null(strstr(r.body, "\"unsupported_media_type\""));
    reply_free(&r);
    r = do_request(f->pport, "POST", "/json", NULL, "{}", 2);               /* no type */
    assert_int_equal(r.status, 415);
    reply_free(&r);
    r = do_request(f->pport, "POST", "/json",
                   "Content-Type: application/json; charset=utf-8\r\n", "{}", 2);
    assert_int_equal(r.status, 201);
    reply_free(&r);
    r = do_request(f->pport, "PATCH", "/json", "Content-Type: application/merge-patch+json\r\n",
                   "{}", 2);
    assert_int_equal(r.status, 201);
    reply_free(&r);
    r = do_request(f->pport, "PATCH", "/json", NULL, NULL, 0);   /* optional body */
    assert_int_equal(r.status, 201);
    assert_non_null(strstr(r.body, "\"got\":null"));
    reply_free(&r);
}

static void test_form_body_with_large_field_and_route_limit(void **st)
{
    fx *f = *st;
    /* a 256 KiB SAMLResponse-like field: over the server default (8 KiB),
     * within the route's own limit */
    size_t n = 256 * 1024;
    rg_buf b = {0};
    rg_buf_puts(&b, "a=1&SAMLResponse=");
    for (size_t i = 0; i < n / 4; i++)
        rg_buf_puts(&b, "ab%2B");          /* decodes to "ab+" */
    rg_buf_puts(&b, "&a=two+2");
    const char *ct = "Content-Type: application/x-www-form-urlencoded\r\n";
    reply r = do_request(f->pport, "POST", "/acs", ct, b.data, b.len);
    assert_int_equal(r.status, 200);
    json_t *j = json_loads(r.body, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "saml_len")), (json_int_t)(n / 4 * 3));
    assert_int_equal(json_integer_value(json_object_get(j, "a_count")), 2);
    assert_string_equal(json_string_value(json_object_get(j, "a1")), "two 2");
    json_decref(j);
    reply_free(&r);
    rg_buf_free(&b);
    /* over the route limit: 413, answered from the declared length */
    r = do_request(f->pport, "POST", "/acs", ct, NULL, 500 * 1024);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "\"body_too_large\""));
    reply_free(&r);
    /* a route without its own limit uses the server's (8 KiB) */
    r = do_request(f->pport, "PUT", "/raw", NULL, NULL, 9000);
    assert_int_equal(r.status, 413);
    reply_free(&r);
    r = do_request(f->pport, "POST", "/acs", "Content-Type: application/json\r\n", "{}", 2);
    assert_int_equal(r.status, 415);
    reply_free(&r);
    r = do_request(f->pport, "POST", "/acs", ct, "a=%zz", 5);
    assert_int_equal(r.status, 400);
    reply_free(&r);
}

static void test_raw_body_bytes_kept(void **st)
{
    fx *f = *st;
    const char body[] = "<xml>\x01\x02 &amp; </xml>";
    reply r = do_request(f->pport, "PUT", "/raw", "Content-Type: application/xml\r\n", body,
                         sizeof body - 1);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, sizeof body - 1);
    assert_memory_equal(r.body, body, sizeof body - 1);
    reply_free(&r);
}

static void test_response_headers_repeatable_no_injection(void **st)
{
    fx *f = *st;
    reply r = do_request(f->pport, "GET", "/cookies", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(head_count(&r, "\r\nSet-Cookie: "), 2);
    assert_int_equal(head_count(&r, "Injected"), 0);
    assert_int_equal(head_count(&r, "X-Evil"), 0);
    assert_int_equal(head_count(&r, "X-Second-Answer"), 0);
    assert_int_equal(head_count(&r, "X-Batch-"), 2);   /* only the batch that could be added */
    assert_int_equal(head_count(&r, "\r\nX-Batch-Kept: a\r\nX-Batch-Kept: b\r\n"), 1);
    assert_true(strncmp(r.body, "rid=req_", 8) == 0);
    assert_non_null(strstr(r.head, r.body + 4));   /* the same id as X-Request-Id */
    reply_free(&r);
    r = do_request(f->pport, "GET", "/redirect", NULL, NULL, 0);
    assert_int_equal(r.status, 302);
    assert_int_equal(head_count(&r, "\r\nLocation: /app?x=1"), 1);
    reply_free(&r);
}

static void test_error_body_shape_and_500_without_answer(void **st)
{
    fx *f = *st;
    reply r = do_request(f->pport, "GET", "/error", NULL, NULL, 0);
    assert_int_equal(r.status, 422);
    assert_int_equal(head_count(&r, "Content-Type: application/json"), 1);
    json_t *j = json_loads(r.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "code")), "role_slug_invalid");
    assert_string_equal(json_string_value(json_object_get(j, "message")), "slug X is bad");
    json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
    assert_string_equal(json_string_value(json_object_get(e0, "field")), "slug");
    assert_string_equal(json_string_value(json_object_get(e0, "code")), "role_slug_invalid");
    json_decref(j);
    reply_free(&r);
    r = do_request(f->pport, "GET", "/forgets", NULL, NULL, 0);
    assert_int_equal(r.status, 500);
    assert_non_null(strstr(r.body, "\"internal_error\""));
    reply_free(&r);
}

static void test_admin_key_required_constant_time_compare(void **st)
{
    fx *f = *st;
    const char *bad[] = {"", "Authorization: Bearer s3cret-kez\r\n",
                         "Authorization: Bearer s3cret-key2\r\n",
                         "Authorization: Bearer s3cret-ke\r\n",
                         "Authorization: Basic s3cret-key\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        reply r = do_request(f->aport, "GET", "/q/1", bad[i], NULL, 0);
        assert_int_equal(r.status, 401);
        assert_non_null(strstr(r.body, "\"unauthorized\""));
        reply_free(&r);
    }
    reply r = do_request(f->aport, "GET", "/q/1", "Authorization: bearer s3cret-key\r\n", NULL, 0);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    /* unknown path without a key: 401, not 404 */
    r = do_request(f->aport, "GET", "/nope", NULL, NULL, 0);
    assert_int_equal(r.status, 401);
    reply_free(&r);
    r = do_request(f->aport, "GET", "/open", NULL, NULL, 0);   /* RG_HTTP_NO_AUTH */
    assert_int_equal(r.status, 422);
    reply_free(&r);
}

static void test_server_options_refused(void **st)
{
    (void)st;
    rg_error err;
    rg_http_options o = {.listen = "nonsense"};
    assert_null(rg_http_server_new(&o, &err));
    o.listen = "127.0.0.1:0";
    o.admin_key = "";
    assert_null(rg_http_server_new(&o, &err));
    assert_string_equal(err.code, "admin_key_empty");
    o.admin_key = NULL;
    o.trusted_proxies = "10.0.0.0/40";
    assert_null(rg_http_server_new(&o, &err));
    rg_http_server_free(NULL);
}

/* A route table is checked as it is registered: the first bad or duplicate
 * line fails the call with an error naming it (issue 16 item 1); a listener
 * the run does not have registers nothing. */
static void test_route_table_fails_loudly(void **st)
{
    (void)st;
    rg_error err;
    rg_http_options o = {.name = "t", .listen = "127.0.0.1:0", .threads = 1};
    rg_http_server *s = rg_http_server_new(&o, &err);
    assert_non_null(s);
    static const rg_http_route_def dup[] = {
        {"GET", "/a", h_error, 0, 0},
        {"GET", "/a", h_error, 0, 0},
    };
    rg_error_clear(&err);
    assert_int_equal(rg_http_routes_add(s, dup, RG_HTTP_NROUTES(dup), NULL, &err), RG_EINTERNAL);
    assert_string_equal(err.code, "route_duplicate");
    assert_non_null(strstr(err.message, "GET /a"));
    static const rg_http_route_def bad[] = {{"GET", "/b/", h_error, 0, 0}};
    assert_int_equal(rg_http_routes_add(s, bad, 1, NULL, &err), RG_EINTERNAL);
    assert_string_equal(err.code, "route_invalid");
    assert_non_null(strstr(err.message, "GET /b/"));
    assert_int_equal(rg_http_routes_add(NULL, bad, 1, NULL, &err), 0);
    rg_http_server_free(s);
}

/* ---- RG_HTTP_OFFLOAD ---------------------------------------------------------- */

static atomic_int slow_done;

static void h_slow(rg_http_req *r, void *ctx)
{
    (void)ctx;
    usleep(600 * 1000);
    /* the request API works from the worker: query, header, cookie */
    const char *n = rg_http_query(r, "n"), *h = rg_http_header(r, "x-test"),
               *c = rg_http_cookie(r, "c");
    char *s = rg_arena_printf(rg_http_arena(r), "slow n=%s h=%s c=%s", n ? n : "-",
                              h ? h : "-", c ? c : "-");
    rg_http_send_arena(r, 200, "text/plain", s, strlen(s));
    atomic_store(&slow_done, 1);
}

static void h_fast(rg_http_req *r, void *ctx)
{
    (void)ctx;
    rg_http_send(r, 200, "text/plain", "fast", 4);
}

static int dial_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void send_get(int fd, const char *target, const char *extra)
{
    char b[512];
    int n = snprintf(b, sizeof b, "GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n", target,
                     extra ? extra : "");
    assert_int_equal(send(fd, b, (size_t)n, MSG_NOSIGNAL), n);
}

/* Reads one keep-alive response (Content-Length framed); the body into out. */
static int read_one(int fd, char *out, size_t outsz)
{
    char buf[8192];
    size_t got = 0;
    char *end = NULL;
    while (!end) {
        ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (r <= 0)
            return -1;
        got += (size_t)r;
        buf[got] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    char *cl = strcasestr(buf, "\r\ncontent-length:");
    size_t want = cl ? (size_t)atol(cl + 17) : 0, have = got - (size_t)(end + 4 - buf);
    while (have < want && got < sizeof buf - 1) {
        ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (r <= 0)
            return -1;
        got += (size_t)r;
        have += (size_t)r;
    }
    buf[got] = 0;
    snprintf(out, outsz, "%.*s", (int)(have < want ? have : want), end + 4);
    return atoi(buf + 9);
}

static rg_http_server *offload_server(int *port)
{
    rg_error err;
    /* ONE poll thread: every connection shares it */
    rg_http_options o = {.name = "offload", .listen = "127.0.0.1:0", .threads = 1,
                         .connection_timeout = 5};
    rg_http_server *s = rg_http_server_new(&o, &err);
    assert_non_null(s);
    static const rg_http_route_def routes[] = {
        {"GET", "/slow", h_slow, RG_HTTP_OFFLOAD, 0},
        {"GET", "/slow-inline", h_slow, 0, 0},
        {"GET", "/fast", h_fast, 0, 0},
    };
    assert_int_equal(rg_http_routes_add(s, routes, RG_HTTP_NROUTES(routes), NULL, &err), 0);
    assert_int_equal(rg_http_server_start(s, &err), 0);
    *port = rg_http_server_port(s);
    return s;
}

/* A slow offloaded handler and a fast request on another connection of the
 * same (only) poll thread: the fast one is answered while the slow one is
 * still running; the slow connection then keeps serving (keep-alive). The
 * same slow handler inline holds the fast request until it ends: the
 * measure can tell the two apart. */
static void test_offload_does_not_block_poll_thread(void **st)
{
    (void)st;
    int port;
    rg_http_server *s = offload_server(&port);
    char body[256];

    atomic_store(&slow_done, 0);
    int a = dial_port(port);
    send_get(a, "/slow?n=1", "X-Test: hv\r\nCookie: c=cv\r\n");
    usleep(100 * 1000);   /* the slow handler is running */
    int b = dial_port(port);
    send_get(b, "/fast", "Connection: close\r\n");
    assert_int_equal(read_one(b, body, sizeof body), 200);
    assert_string_equal(body, "fast");
    assert_int_equal(atomic_load(&slow_done), 0);   /* answered before the slow one ended */
    close(b);
    assert_int_equal(read_one(a, body, sizeof body), 200);
    assert_string_equal(body, "slow n=1 h=hv c=cv");
    send_get(a, "/fast", NULL);                      /* same connection: keep-alive */
    assert_int_equal(read_one(a, body, sizeof body), 200);
    assert_string_equal(body, "fast");
    close(a);

    /* control: inline, the fast request waits for the slow handler */
    atomic_store(&slow_done, 0);
    a = dial_port(port);
    send_get(a, "/slow-inline?n=2", NULL);
    usleep(100 * 1000);
    b = dial_port(port);
    send_get(b, "/fast", "Connection: close\r\n");
    assert_int_equal(read_one(b, body, sizeof body), 200);
    assert_int_equal(atomic_load(&slow_done), 1);
    close(b);
    assert_int_equal(read_one(a, body, sizeof body), 200);
    close(a);

    /* a client that leaves while its request is on a worker */
    atomic_store(&slow_done, 0);
    a = dial_port(port);
    send_get(a, "/slow?n=4", NULL);
    usleep(100 * 1000);
    close(a);
    while (!atomic_load(&slow_done))
        usleep(10 * 1000);
    b = dial_port(port);
    send_get(b, "/fast", "Connection: close\r\n");
    assert_int_equal(read_one(b, body, sizeof body), 200);
    close(b);
    rg_http_server_free(s);
}

/* A stop while an offloaded handler runs lets it finish and answer. */
static void test_offload_stop_waits_for_worker(void **st)
{
    (void)st;
    int port;
    rg_http_server *s = offload_server(&port);
    atomic_store(&slow_done, 0);
    int a = dial_port(port);
    send_get(a, "/slow?n=3", "Connection: close\r\n");
    usleep(100 * 1000);
    rg_http_server_stop(s, 3000);
    assert_int_equal(atomic_load(&slow_done), 1);
    char body[256];
    assert_int_equal(read_one(a, body, sizeof body), 200);
    assert_string_equal(body, "slow n=3 h=- c=-");
    close(a);
    rg_http_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_query_headers_cookies),
        cmocka_unit_test(test_client_addr_only_through_trusted_proxies),
        cmocka_unit_test(test_json_body_400_with_byte_offset_and_415),
        cmocka_unit_test(test_form_body_with_large_field_and_route_limit),
        cmocka_unit_test(test_raw_body_bytes_kept),
        cmocka_unit_test(test_response_headers_repeatable_no_injection),
        cmocka_unit_test(test_error_body_shape_and_500_without_answer),
        cmocka_unit_test(test_admin_key_required_constant_time_compare),
        cmocka_unit_test(test_server_options_refused),
        cmocka_unit_test(test_route_table_fails_loudly),
        cmocka_unit_test(test_offload_does_not_block_poll_thread),
        cmocka_unit_test(test_offload_stop_waits_for_worker),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
