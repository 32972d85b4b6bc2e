#!/usr/bin/env python3
"""A real nginx (Debian's, started by the test on a free loopback port with
its own prefix, pid, logs and temp paths) protects locations with the
auth_request snippet shipped in etc/nginx-rolegate.conf, in front of a tiny
python upstream that echoes the X-Rolegate-* headers it received:
no cookie → the snippet's login redirect, cookie → 200 and the upstream
sees the identity, require_permission / require_role → 403 when missing,
client-made X-Rolegate-* headers never reach the upstream."""
import contextlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import http.client

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, run_all, Rolegate, free_port  # noqa: E402
from test_auth_common import setup_member, new_session, COOKIE  # noqa: E402

SNIPPET = os.path.join(harness.ROOT, "etc", "nginx-rolegate.conf")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class Echo(http.server.BaseHTTPRequestHandler):
    """The protected app: answers the X-Rolegate-* headers it got."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        seen = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("x-rolegate")}
        body = json.dumps({"path": self.path, "headers": seen}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *a):
        pass


NGINX_CONF = """
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    large_client_header_buffers 4 16k;
    upstream rolegate {{ server 127.0.0.1:{rg_port}; keepalive 16; }}
    upstream app {{ server 127.0.0.1:{app_port}; }}
    server {{
        listen 127.0.0.1:{port};
        include {snippet};
        location /app/ {{ proxy_pass http://app; }}
        location /reports/ {{
            set $rolegate_require "require_permission=reports:view";
            proxy_pass http://app;
        }}
        location /secret/ {{
            set $rolegate_require "require_permission=secret:read";
            proxy_pass http://app;
        }}
        location /admins/ {{
            set $rolegate_require "require_role=admin";
            proxy_pass http://app;
        }}
        location = /open {{ auth_request off; return 200 "open"; }}
    }}
}}
"""


class Nginx:
    def __init__(self, rg_port, app_port, port=None):
        self.tmp = tempfile.mkdtemp(prefix="rolegate-nginx-")
        os.chmod(self.tmp, 0o755)
        self.port = port or free_port()   # given: rolegate's base_url names it
        user = "user root;" if os.getuid() == 0 else ""
        conf = NGINX_CONF.format(user=user, tmp=self.tmp, rg_port=rg_port, app_port=app_port,
                                 port=self.port, snippet=SNIPPET)
        self.conf = os.path.join(self.tmp, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen([NGINX, "-p", self.tmp, "-c", self.conf, "-g",
                                      "daemon off;"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        end = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("nginx exited: " + self.proc.stderr.read().decode()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < end, "nginx did not listen"
                time.sleep(0.05)

    def get(self, path, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request("GET", path, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def error_log(self):
        try:
            with open(os.path.join(self.tmp, "error.log")) as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def echo_app():
    """The echo upstream on a free loopback port, shut down on exit."""
    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    try:
        yield app
    finally:
        app.shutdown()
        app.server_close()


def behind_nginx(rg, app, fn, *args, log_tail=3000):
    """fn(rg, nginx, *args) with an nginx in front of rg and the echo app;
    on a failure the end of nginx's error.log is printed. (test_auth_nginx
    and test_session_refresh share it.)"""
    ng = Nginx(rg.public_port, app.server_address[1])
    try:
        fn(rg, ng, *args)
    except Exception:
        print("  nginx error.log:\n" + ng.error_log()[-log_tail:], flush=True)
        raise
    finally:
        ng.close()


def with_stack(fn):
    """Runs fn(rg, nginx, ids, token) with rolegate, the echo app and nginx
    up, and tears all three down."""
    with echo_app() as app, Rolegate() as rg:
        ids = setup_member(rg, perms=("reports:view", "users:view"))
        token = new_session(rg, ids["om"], "nginx test")["token"]
        behind_nginx(rg, app, fn, ids, token)


@test
def test_nginx_no_cookie_redirects_to_login():
    def body(rg, ng, ids, token):
        st, h, _ = ng.get("/app/page")
        assert st == 302, st
        assert h["location"].endswith("/login?return_to=/app/page"), h["location"]
        # a garbage cookie is no better; and an unprotected location is open
        st, h, _ = ng.get("/app/page", {"Cookie": f"{COOKIE}=garbage"})
        assert st == 302 and "/login?return_to=" in h["location"], (st, h)
        assert ng.get("/open")[0] == 200
    with_stack(body)


@test
def test_nginx_cookie_passes_identity_headers_to_upstream():
    def body(rg, ng, ids, token):
        st, _, data = ng.get("/app/page", {"Cookie": f"{COOKIE}={token}"})
        assert st == 200, (st, data[:300])
        seen = json.loads(data)["headers"]
        assert seen["x-rolegate-user"] == ids["user"], seen
        assert seen["x-rolegate-email"] == ids["email"], seen
        assert seen["x-rolegate-org"] == ids["org"], seen
        assert seen["x-rolegate-role"] == ids["role"], seen
        assert seen["x-rolegate-roles"] == ids["role"], seen
        assert seen["x-rolegate-permissions"] == ",".join(ids["perms"]), seen
        assert seen["x-rolegate-session"] == token, "upstream must get the token"
        # headers a client makes up are replaced, never passed on
        st, _, data = ng.get("/app/page", {"Cookie": f"{COOKIE}={token}",
                                           "X-Rolegate-User": "mallory",
                                           "X-Rolegate-Roles": "admin"})
        seen = json.loads(data)["headers"]
        assert st == 200 and seen["x-rolegate-user"] == ids["user"], seen
        assert seen["x-rolegate-roles"] == ids["role"], seen
    with_stack(body)


@test
def test_nginx_require_permission_403_when_missing():
    def body(rg, ng, ids, token):
        ck = {"Cookie": f"{COOKIE}={token}"}
        st, _, data = ng.get("/reports/q1", ck)
        assert st == 200, (st, data[:200])          # has reports:view
        assert ng.get("/secret/x", ck)[0] == 403    # lacks secret:read
        assert ng.get("/admins/x", ck)[0] == 403    # lacks role admin
        # after logout the same cookie is refused
        st, _, _ = rg.public("POST", "/logout", headers=ck)
        assert st == 302
        st, h, _ = ng.get("/app/page", ck)
        assert st == 302 and "/login?return_to=" in h["location"], (st, h)
    with_stack(body)


@test
def test_item5_nginx_403_page_names_reason_and_log_line():
    """Issue 11 item 5: the snippet's 403 is rolegate's readable page (reason
    code, unmet requirement, sign-out button), the log line carries reason,
    subject, organization and requirement but never the token; /logout lands
    on the public signed-out page, through nginx too."""
    def body(rg, ng, ids, token):
        ck = {"Cookie": f"{COOKIE}={token}", "Accept": "text/html"}
        st, h, data = ng.get("/admins/x", ck)
        page = data.decode()
        assert st == 403, (st, page[:300])
        assert h["content-type"].startswith("text/html"), h
        assert '<code id="reason">role_required</code>' in page, page
        assert '<code id="requirement">require_role=admin</code>' in page, page
        assert 'action="/logout"' in page and "default-src 'self'" in h.get(
            "content-security-policy", ""), (page, h)
        st, _, data = ng.get("/secret/x", ck)
        assert st == 403 and b"require_permission=secret:read" in data, data[:400]
        line = [ln for ln in rg.log_lines() if "event=auth_denied status=403" in ln
                and "reason=role_required" in ln]
        assert line, rg.log_text()[-2000:]
        assert f"sub={ids['user']}" in line[-1] and f"org={ids['org']}" in line[-1], line
        assert 'requirement="require_role=admin"' in line[-1], line
        assert token not in rg.log_text() and token.split(".")[2] not in rg.log_text()
        # 401 lines carry the reason too
        ng.get("/app/page", {"Cookie": f"{COOKIE}=garbage"})
        assert any("event=auth_denied status=401" in ln and "reason=token_malformed" in ln
                   for ln in rg.log_lines()), rg.log_text()[-1500:]
        # logout (through nginx) lands on the public signed-out page, which
        # does not log the user straight back in
        c = http.client.HTTPConnection("127.0.0.1", ng.port, timeout=30)
        c.request("POST", "/logout", headers=ck)
        r = c.getresponse()
        r.read()
        c.close()
        assert r.status == 302 and r.getheader("Location") == "/signed-out", r.getheaders()
        st, h, data = ng.get("/signed-out", {"Cookie": f"{COOKIE}={token}"})
        assert st == 200 and b'id="signed-out"' in data, (st, data[:300])
    with_stack(body)


if __name__ == "__main__":
    run_all()
