#!/usr/bin/env python3
"""Integration-test harness for rolegate (python3 stdlib only).

- free_port(): a free loopback TCP port.
- Rolegate: starts the real binary ($ROLEGATE_BIN, default build/rolegate) on
  free loopback ports with its own temp dir (var/, log file, config) and a
  known admin key; use it as a context manager. Calls: admin(...) and
  public(...) -> (status, headers dict lowercased, parsed JSON or text),
  log_text(), log_lines(), stop() (SIGTERM; asserts exit code 0).
- A tiny registry: @test, run_all() prints "ok <name>" / "FAIL <name>: why"
  and ends with "N passed, N failed" (exit 1 if any failed).
- spawn_ready(), NodeHelper: the node test servers (an OIDC OP, a SAML IdP).
- cpu_model(): the CPU's model name, for the benchmarks' machine lines.
"""
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ROLEGATE_BIN") or os.path.join(ROOT, "build", "rolegate")
ADMIN_KEY = "test-admin-key-" + "k" * 32


PG_BASE = os.environ.get("ROLEGATE_TEST_PG") or None
_pg_seq = [0]


def pg_sql(db, sql):
    """Runs sql on database db of the PostgreSQL server of tests/with-postgres
    (psql, Debian postgresql-client); returns its output (unaligned)."""
    r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                        f"{PG_BASE}/{db}", "-c", sql],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"psql {sql}: {r.stderr}")
    return r.stdout.strip()


def pg_database_new():
    """A new empty database on the test server; its postgresql:// URL."""
    _pg_seq[0] += 1
    name = f"rg_it_{os.getpid()}_{_pg_seq[0]}"
    pg_sql("postgres", f"CREATE DATABASE {name}")
    return f"{PG_BASE}/{name}"


def pg_database_drop(url):
    pg_sql("postgres", f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


_EPHEMERAL = _ephemeral_range()


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago. Drawn below the
    kernel's ephemeral range when there is room: a port bound with port 0
    comes from that range, where any outgoing connection of a parallel test
    can take it as its source port before the server binds it (CI saw
    'Address already in use' that way)."""
    lo, hi = 20000, _EPHEMERAL[0] - 1
    if hi - lo >= 1000:
        rnd = random.SystemRandom()
        for _ in range(50):
            port = rnd.randint(lo, hi)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _parse(data, headers):
    ctype = headers.get("content-type", "")
    if "json" in ctype and data:
        try:
            return json.loads(data)
        except ValueError:
            pass
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data


def on_postgres(path):
    """Makes the test file at path (its __file__) run under
    tests/with-postgres, on a PostgreSQL server of its own: re-executes it
    there unless it already runs there (ROLEGATE_TEST_PG set). Called right
    after importing harness, before any fixture starts."""
    if not os.environ.get("ROLEGATE_TEST_PG"):
        wrap = os.path.join(ROOT, "tests", "with-postgres")
        os.execv(wrap, [wrap, sys.executable, os.path.abspath(path)] + sys.argv[1:])


class Rolegate:
    """One rolegate process. Keyword arguments:
      config: dict {section: {option: value}} merged over the harness config
      env:    extra environment variables
      admin_key: the key (passed as ROLEGATE_ADMIN_KEY; None = use the file)
      start:  False to only write the config (call start() yourself).
    Under tests/with-postgres (ROLEGATE_TEST_PG set) the store is a new
    PostgreSQL database of that server, dropped at close(), unless config
    names a database of its own."""

    def __init__(self, config=None, env=None, admin_key=ADMIN_KEY, start=True,
                 timeout=15):
        self.dir = tempfile.mkdtemp(prefix="rolegate-test-")
        self.public_port = free_port()
        self.admin_port = free_port()
        self.admin_key = admin_key
        self.log_path = os.path.join(self.dir, "rolegate.log")
        self.stdout_path = os.path.join(self.dir, "stdout.txt")
        self.stderr_path = os.path.join(self.dir, "stderr.txt")
        self.timeout = timeout
        self.proc = None
        cfg = {
            "server": {
                "public_listen": f"127.0.0.1:{self.public_port}",
                "admin_listen": f"127.0.0.1:{self.admin_port}",
                "base_url": f"http://127.0.0.1:{self.public_port}",
                "admin_key_file": os.path.join(self.dir, "var", "admin.key"),
            },
            "store": {"database": os.path.join(self.dir, "var", "rolegate.db")},
            "log": {"file": self.log_path, "level": "info"},
            "session": {"keys_dir": os.path.join(self.dir, "var", "keys")},
            "saml": {"sp_key_file": os.path.join(self.dir, "var", "saml", "sp.key"),
                     "sp_cert_file": os.path.join(self.dir, "var", "saml", "sp.crt")},
        }
        self.pg_url = None
        if PG_BASE and "database" not in (config or {}).get("store", {}):
            self.pg_url = pg_database_new()
            cfg["store"]["database"] = self.pg_url
        for sec, opts in (config or {}).items():
            cfg.setdefault(sec, {}).update(opts)
        self.config_path = os.path.join(self.dir, "rolegate.conf")
        self._cfg = cfg
        srv_cfg = (config or {}).get("server", {})
        self._own_ports = not any(k in srv_cfg for k in ("public_listen", "admin_listen"))
        self._own_base = "base_url" not in srv_cfg   # e.g. instance B behind A's URL
        self._write_config()
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith("ROLEGATE_") and k not in ("ROLEGATE_BIN", "ROLEGATE_BUILD"):
                del self.env[k]
        if admin_key is not None:
            self.env["ROLEGATE_ADMIN_KEY"] = admin_key
        self.env.update(env or {})
        if start:
            self._first_start()

    def _write_config(self):
        with open(self.config_path, "w") as f:
            for sec, opts in self._cfg.items():
                f.write(f"[{sec}]\n")
                for k, v in opts.items():
                    if isinstance(v, bool):
                        v = "true" if v else "false"
                    f.write(f"{k} = {v}\n")

    def _first_start(self):
        """start(), and when the harness chose the ports and one was taken
        between free_port() and the bind, the same with two new ports (up to
        3 times): no test has seen the ports yet."""
        for attempt in range(3):
            try:
                return self.start()
            except AssertionError as e:
                if (not self._own_ports or attempt == 2
                        or not ("Address already in use" in str(e)
                                or "port is in use" in str(e))):
                    raise
            self.public_port = free_port()
            self.admin_port = free_port()
            srv = self._cfg["server"]
            srv["public_listen"] = f"127.0.0.1:{self.public_port}"
            srv["admin_listen"] = f"127.0.0.1:{self.admin_port}"
            if self._own_base:
                srv["base_url"] = f"http://127.0.0.1:{self.public_port}"
            self._write_config()

    # ---- lifecycle ---------------------------------------------------------
    def start(self):
        out = open(self.stdout_path, "wb")
        err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([BIN, "serve", "-c", self.config_path], cwd=self.dir,
                                     env=self.env, stdout=out, stderr=err)
        out.close()
        err.close()
        end = time.monotonic() + self.timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"rolegate exited with {self.proc.returncode}: "
                                     f"{self.stderr_text()[-2000:]}")
            # the start line first: a /healthz answer alone could come from
            # another process that took a port free_port() handed out
            if "rolegate: admin URL" not in self.stdout_text():
                time.sleep(0.05)
                continue
            try:
                st, _, _ = self.public("GET", "/healthz", timeout=1)
                if st == 200:
                    if self.admin_key is None:
                        with open(os.path.join(self.dir, "var", "admin.key")) as f:
                            self.admin_key = f.read().strip()
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.kill()
        raise AssertionError("rolegate did not answer /healthz in time")

    def stop(self, expect_rc=0, timeout=30):
        """SIGTERM, wait, and assert the exit code (0 by default)."""
        if self.proc is None or self.proc.poll() is not None:
            rc = None if self.proc is None else self.proc.returncode
            self.proc = None
            if expect_rc is not None and rc is not None:
                assert rc == expect_rc, f"rolegate had exited with {rc}"
            return rc
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("rolegate did not exit within %ss of SIGTERM" % timeout)
        self.proc = None
        if expect_rc is not None:
            assert rc == expect_rc, f"rolegate exited with {rc}: {self.stderr_text()[-2000:]}"
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def close(self):
        """Kills the process if still running and removes the temp dir."""
        self.kill()
        self._pg_drop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _pg_drop(self):
        if self.pg_url:
            pg_database_drop(self.pg_url)
            self.pg_url = None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop()
            self._pg_drop()
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            self.kill()   # the temp dir stays for a look at the log
            print(f"  (rolegate files kept in {self.dir})", flush=True)
        return False

    # ---- requests -----------------------------------------------------------
    def request(self, port, method, path, body=None, headers=None, timeout=30):
        """body: dict/list (sent as JSON), str or bytes. Returns
        (status, {lowercased header: value}, parsed JSON or text)."""
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            hdrs = {}
            for k, v in r.getheaders():
                k = k.lower()
                hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
            return r.status, hdrs, _parse(data, hdrs)
        finally:
            c.close()

    def admin(self, method, path, body=None, headers=None, key=True, timeout=30):
        """key=True: Bearer <admin_key>; a string: that Authorization value;
        False: none."""
        h = {}
        if key is True:
            h["Authorization"] = "Bearer " + self.admin_key
        elif key:
            h["Authorization"] = key
        h.update(headers or {})
        return self.request(self.admin_port, method, path, body, h, timeout)

    def public(self, method, path, body=None, headers=None, timeout=30):
        return self.request(self.public_port, method, path, body, headers, timeout)

    # ---- output -------------------------------------------------------------
    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_lines(self):
        return self.log_text().splitlines()

    def stdout_text(self):
        with open(self.stdout_path, errors="replace") as f:
            return f.read()

    def stderr_text(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()


def wait_until(pred, seconds=5, what="condition"):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def spawn_ready(argv, cwd, stderr_path, prefix, what, seconds=30, tries=2):
    """Starts a helper process (a node test IdP) that prints one line starting
    with `prefix` on stdout once it serves; returns (proc, line). Under load
    node has been seen stuck before it listens, never printing the line: each
    try waits `seconds`, then the process is killed and started again."""
    import select
    last = ""
    for _ in range(tries):
        proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE,
                                stderr=open(stderr_path, "ab"))
        ready, _, _ = select.select([proc.stdout], [], [], seconds)
        line = proc.stdout.readline().decode() if ready else ""
        if line.startswith(prefix):
            return proc, line
        last = line
        proc.kill()
        proc.wait(5)
    raise AssertionError(f"{what} did not start after {tries} tries: {last!r}")


class NodeHelper:
    """A node test server of the repository (tests/oidc-op, tests/saml-idp)
    with its own temp dir (prefix): spawn() starts it through spawn_ready
    (its stderr in the temp dir), stop() ends it and removes the dir."""

    def __init__(self, pkg_dir, module, prefix):
        if not os.path.isdir(os.path.join(pkg_dir, "node_modules", module)):
            raise AssertionError(f"{os.path.relpath(pkg_dir, ROOT)}: run `npm ci` there first")
        self.pkg_dir = pkg_dir
        self.dir = tempfile.mkdtemp(prefix=prefix)

    def spawn(self, argv, prefix, what):
        """Runs argv in the package's directory; its ready line."""
        try:
            self.proc, line = spawn_ready(argv, self.pkg_dir, os.path.join(self.dir, "stderr.txt"),
                                          prefix, what)
        except AssertionError:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        return line

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def cpu_model(default="?"):
    """The first "model name" of /proc/cpuinfo, or default."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default


# ---- the test registry ---------------------------------------------------------
_tests = []


def test(fn):
    """Registers fn as a test (runs in definition order)."""
    _tests.append(fn)
    return fn


def run_all():
    only = os.environ.get("TEST_ONLY", "")
    passed = failed = 0
    for fn in _tests:
        if only and only not in fn.__name__:
            continue
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failed += 1
            tb = traceback.format_exc().strip().splitlines()
            where = next((ln.strip() for ln in reversed(tb) if ln.strip().startswith("File ")), "")
            reason = f"{type(e).__name__}: {e}"
            print(f"FAIL {fn.__name__}: {reason[:2000]} ({where})", flush=True)
        else:
            passed += 1
            print(f"ok {fn.__name__}", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)
