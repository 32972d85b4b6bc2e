"""soak_common.py: what the endurance benches of tests/bench/soak_*.py share
(issue 17, "Endurance"; not part of `make check`): the machine line, the
SCALE factor, a rolegate started through the integration harness
(tests/integration/harness.py: loopback free ports, its own temp dir, torn
down on exit), admin-issued sessions, a redis-server and an nginx baseline
on loopback, wrk runs parsed into numbers, and /proc samples (RSS, fds).
Every process started here is stopped by its context manager or atexit."""
import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
from harness import free_port, wait_until  # noqa: E402

BUILD = os.environ.get("ROLEGATE_BUILD") or os.path.join(ROOT, os.environ.get("BUILD", "build"))
if not os.environ.get("ROLEGATE_BIN"):
    harness.BIN = os.path.join(BUILD, "rolegate")
SCALE = float(os.environ.get("SCALE", "1"))
_started = []   # processes to stop at exit, whatever happens


def scaled(full, floor=1):
    """The issue's full figure times SCALE (at least floor)."""
    return max(floor, int(round(full * SCALE)))


def machine():
    from bench_login import machine as kernel_cpu   # the login bench's machine line
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return f"machine: {kernel_cpu()}, load average {load}, SCALE={SCALE:g}"


def banner(name, what):
    print(f"== {name}: {what}", flush=True)
    print(machine(), flush=True)


@atexit.register
def _stop_all():
    for p in _started:
        if p.poll() is None:
            p.kill()
            p.wait()


def spawn(argv, **kw):
    p = subprocess.Popen(argv, **kw)
    _started.append(p)
    return p


# ---- /proc samples -------------------------------------------------------------

def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def n_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def n_threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


# ---- rolegate --------------------------------------------------------------------

def rolegate(config=None, **kw):
    """harness.Rolegate with the soak defaults merged under config."""
    cfg = {"demo": {"enabled": False}}
    for sec, opts in (config or {}).items():
        cfg.setdefault(sec, {}).update(opts)
    return harness.Rolegate(config=cfg, **kw)


def sessions(rg, n, org_name="Soak"):
    """n members of a new organization (role analyst) and an admin-issued
    session for each (the calls tests/bench/bench_auth.sh makes; a role or
    permission that exists already is kept). Returns the cookie values."""
    def ok(method, path, body, also=()):
        st, _, data = rg.admin(method, path, body)
        assert st in (200, 201, 204) + tuple(also), (method, path, st, data)
        return data
    for p in ("reports:view", "users:view"):
        ok("POST", "/authorization/permissions", {"slug": p, "name": p}, (409,))
    ok("POST", "/authorization/roles", {"slug": "analyst", "name": "Analyst"}, (409,))
    ok("PUT", "/authorization/roles/analyst/permissions",
       {"permissions": ["reports:view", "users:view"]})
    org = ok("POST", "/organizations", {"name": org_name})["id"]
    tokens = []
    for i in range(n):
        user = ok("POST", "/user_management/users",
                  {"email": f"{org_name.lower()}{i}@example.com"})["id"]
        om = ok("POST", "/user_management/organization_memberships",
                {"user_id": user, "organization_id": org, "role_slug": "analyst"})["id"]
        s = ok("POST", "/sessions", {"organization_membership_id": om, "reason": "soak"})
        tokens.append(s["token"])
    return tokens


def auth_status(rg, token):
    return rg.public("GET", "/auth", headers={"Cookie": f"rolegate={token}"})[0]


# ---- redis-server ------------------------------------------------------------------

from test_redis_instances import Redis  # noqa: E402,F401  (a redis-server, restartable)


# ---- nginx baseline ----------------------------------------------------------------

class Nginx:
    """nginx `return 200` with worker_processes auto (production here)."""

    def __init__(self, access_log=False):
        self.dir = tempfile.mkdtemp(prefix="rolegate-soak-nginx-")
        self.port = free_port()
        user = "user root;" if os.getuid() == 0 else ""
        d = self.dir
        alog = f"access_log {d}/access.log;" if access_log else "access_log off;"
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(f"""{user}
worker_processes auto;
worker_rlimit_nofile 20000;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    {alog}
    keepalive_requests 1000000;
    client_body_temp_path {d}/cb; proxy_temp_path {d}/px;
    fastcgi_temp_path {d}/fc; uwsgi_temp_path {d}/uw; scgi_temp_path {d}/sc;
    server {{ listen 127.0.0.1:{self.port} backlog=4096; location / {{ return 200; }} }}
}}
""")
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = spawn([exe, "-p", d, "-c", os.path.join(d, "nginx.conf"),
                           "-g", "daemon off;"])
        wait_until(lambda: _port_open(self.port), 10, "nginx listening")

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False


def _port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


# ---- wrk ---------------------------------------------------------------------------

# a wrk script counting answers by status over all threads (a script may
# count Set-Cookie answers under the key -1); done() prints them as
# "status <code> <count>" and "setcookie <count>" lines
STATUS_LUA = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for k, v in pairs(c) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do
    if k < 0 then io.write(string.format("setcookie %d\n", v))
    else io.write(string.format("status %d %d\n", k, v)) end
  end
end
"""


def _ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)$", v)
    if not m:
        return None
    x = float(m.group(1))
    return {"us": x / 1000, "ms": x, "s": x * 1000}[m.group(2)]


def parse_wrk(out):
    r = {"rps": 0.0, "requests": 0, "non2xx": 0, "connect": 0, "read": 0, "write": 0,
         "timeout": 0, "setcookie": 0, "p50": None, "p99": None, "status": {}, "text": out}
    for line in out.splitlines():
        s = line.split()
        if line.startswith("Requests/sec:"):
            r["rps"] = float(s[1])
        elif "requests in" in line:
            r["requests"] = int(s[0])
        elif "Non-2xx" in line:
            r["non2xx"] = int(s[-1])
        elif line.strip().startswith("Socket errors:"):
            for k, v in re.findall(r"(connect|read|write|timeout) (\d+)", line):
                r[k] = int(v)
        elif s[:1] == ["50%"]:
            r["p50"] = _ms(s[1])
        elif s[:1] == ["99%"]:
            r["p99"] = _ms(s[1])
        elif s[:1] == ["setcookie"] and len(s) == 2:
            r["setcookie"] = int(s[1])
        elif s[:1] == ["status"] and len(s) == 3:
            r["status"][int(s[1])] = int(s[2])
    r["errors"] = r["non2xx"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    return r


def wrk_start(url, conns, seconds, threads=2, headers=(), lua=STATUS_LUA, timeout="2s"):
    """Starts wrk; returns (Popen, script path). wrk_finish() parses it."""
    fd, script = tempfile.mkstemp(prefix="rolegate-soak-", suffix=".lua")
    with os.fdopen(fd, "w") as f:
        f.write(lua)
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency",
            f"--timeout={timeout}", "-s", script]
    for h in headers:
        argv += ["-H", h]
    argv.append(url)
    p = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p, script


def wrk_finish(handle):
    p, script = handle
    out, _ = p.communicate()
    os.unlink(script)
    return parse_wrk(out)


def wrk(url, conns, seconds, **kw):
    return wrk_finish(wrk_start(url, conns, seconds, **kw))


def wrk_line(label, r):
    st = " ".join(f"{k}:{v}" for k, v in sorted(r["status"].items()))
    return (f"  {label:34s} {r['rps']:9.0f} req/s  {r['requests']:8d} requests  "
            f"p50 {r['p50']} ms  p99 {r['p99']} ms  statuses [{st}]  socket errors: "
            f"connect {r['connect']} read {r['read']} write {r['write']} "
            f"timeout {r['timeout']}")


def verdict(ok):
    return "MET" if ok else "NOT MET"


# ---- SAML: a connection to the fixture IdP, C drivers built against build/ ---------

def _make_pkgs():
    """The Makefile's PKGS (its pkg-config packages), read from its text."""
    with open(os.path.join(ROOT, "Makefile")) as f:
        text = f.read().replace("\\\n", " ")
    m = re.search(r"^PKGS\s*:=\s*(.*)$", text, re.M)
    return m.group(1).split()


LAYERS = "gateway api http session cache saml oidc store core util".split()


def build_driver(name, outdir):
    """Compiles tests/bench/<name>.c as the Makefile builds benches (the
    Makefile builds only bench_*.c). Returns the binary's path."""
    cflags = subprocess.run(["pkg-config", "--cflags"] + _make_pkgs(), capture_output=True,
                            text=True, check=True).stdout.split()
    libs = subprocess.run(["pkg-config", "--libs"] + _make_pkgs(), capture_output=True,
                          text=True, check=True).stdout.split()
    out = os.path.join(outdir, name)
    archives = [os.path.join(BUILD, f"lib{layer}.a") for layer in LAYERS]
    subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-g", "-Wall", "-Wextra",
                    "-Werror", "-Wno-unused-parameter", f"-I{ROOT}/include"] + cflags +
                   ["-o", out, os.path.join(HERE, name + ".c")] + archives + libs +
                   ["-lpthread", "-lm"], check=True, cwd=ROOT)
    return out


def saml_connection(rg):
    """Roles, an organization and an IdP-initiated SAML connection to the
    fixture IdP with the default group mappings (test_saml_common's setup).
    rg: a test_saml_common.LoginServer. Returns (conn id, SP metadata)."""
    from test_saml_common import setup_roles, setup_saml_connection, FIX
    setup_roles(rg)
    org = rg.ok("POST", "/organizations", {"name": "Soak"})["id"]
    with open(os.path.join(FIX, "idp-metadata.xml")) as f:
        md = f.read()
    return setup_saml_connection(rg, org, md, allow_idp_initiated=True)
