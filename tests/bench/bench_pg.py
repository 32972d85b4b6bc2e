#!/usr/bin/env python3
"""PostgreSQL store benchmark (issue 15; not part of make check), run by
tests/bench/bench_pg.sh, which starts a production-like PostgreSQL server
(fsync on, initdb defaults) and passes it as ROLEGATE_TEST_PG. In one run,
on one machine, with one redis-server (the shared replay cache) in every
configuration:
  - SQLite, 1 instance (the baseline: a file in BENCH_DIR, same disk)
  - PostgreSQL, 1 instance
  - PostgreSQL, 3 instances on one database (clients spread over them)
each measured for
  - SAML ACS logins/s: $BUILD/bench/bench_login (pre-minted unique
    IdP-initiated responses, 5 groups, RSA-2048; BENCH_CLIENTS keep-alive clients;
    200 distinct users, so most logins update an existing membership),
    with the share of the machine's CPU the run kept busy (every process)
  - admin writes/s: as many python threads on keep-alive connections, half
    POST /organizations (independent rows), half POST /authorization/roles
    (every one bumps the environment's version: the contended case)
and printed as ratios against the same-run SQLite figure. ROUNDS rounds
(default 3), interleaved, the median kept. BENCH_N logins (1500), BENCH_W
admin writes (600), BENCH_LOG rolegate's log level (warn). BENCH_CLIENTS
(default 4,8): the numbers of concurrent clients, each a row of its own,
with the CPU share the run kept busy: a figure taken with the CPUs idle is
one of latency, not of what the machine can do (on 2026-12-07 both
backends kept it 81-88% busy at 4 and at 8 clients), and the server CPU
per login (bench_login --cpu-of: user+system time of the processes named
rolegate and postgres over the timed logins; a BENCH_BASE binary of
another name reads 0, and -1 when a sum went down: a process ended). PostgreSQL's share is
additive: with the CPUs busy the ratio to SQLite is about (K + rolegate's
CPU per login on SQLite) / (K + rolegate's on PostgreSQL + the server's),
K the clients' share, so it moves with the server's figure, and cutting
rolegate's own work lowers it. The capacity line
compares each backend at the client count where it did the most logins/s.
BENCH_BASE=tag=path[,tag=path...] adds other rolegate binaries (an older
build, say) to the same interleaved rounds, each measured on SQLite x1 and
PostgreSQL x1 and its ratio taken against its own SQLite figure."""
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
if not os.environ.get("ROLEGATE_TEST_PG"):
    print("bench_pg.py: run tests/bench/bench_pg.sh (it starts the PostgreSQL server)")
    sys.exit(0)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from test_saml_common import LoginServer, setup_roles, setup_saml_connection, FIX  # noqa: E402
from bench_login import machine  # noqa: E402
_n = len(harness._tests)
from test_redis_instances import Redis  # noqa: E402
del harness._tests[_n:]

BUILD = os.environ.get("ROLEGATE_BUILD") or os.path.join(ROOT, "build")
if not os.environ.get("ROLEGATE_BIN"):
    harness.BIN = os.path.join(BUILD, "rolegate")
DRV = os.path.join(BUILD, "bench", "bench_login")
N = int(os.environ.get("BENCH_N", "1500"))
W = int(os.environ.get("BENCH_W", "600"))
CLIENT_COUNTS = [int(c) for c in os.environ.get("BENCH_CLIENTS", "4,8").split(",")]
ROUNDS = int(os.environ.get("ROUNDS", "3"))
DIR = os.environ.get("BENCH_DIR") or tempfile.gettempdir()


class Deployment:
    """n instances on one store (a SQLite file or a new PG database) over
    redis, sharing keys and the SP key pair as a deployment does."""

    def __init__(self, kind, n, redis, binary):
        harness.BIN = binary
        self.url = None
        if kind == "pg":
            self.url = harness.pg_database_new()
            db = self.url
        else:
            db = tempfile.mktemp(prefix="rg-bench-", suffix=".db", dir=DIR)
        self.sqlite = None if self.url else db
        base = {"redis": {"url": redis.url()}, "store": {"database": db},
                "log": {"level": os.environ.get("BENCH_LOG", "warn")}}
        self.rgs = [LoginServer(config=base)]
        a = self.rgs[0]
        for _ in range(n - 1):
            cfg = {k: dict(v) for k, v in base.items()}
            cfg["server"] = {"base_url": a.base}
            cfg["session"] = {"keys_dir": os.path.join(a.dir, "var", "keys")}
            cfg["saml"] = {"sp_key_file": os.path.join(a.dir, "var", "saml", "sp.key"),
                           "sp_cert_file": os.path.join(a.dir, "var", "saml", "sp.crt")}
            self.rgs.append(LoginServer(config=cfg))

    def close(self):
        for rg in reversed(self.rgs):
            rg.__exit__(None, None, None)
        if self.url:
            harness.pg_database_drop(self.url)
        if self.sqlite:
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(self.sqlite + suffix)
                except FileNotFoundError:
                    pass


def bench_logins(dep, clients):
    a = dep.rgs[0]
    setup_roles(a)
    org = a.ok("POST", "/organizations", {"name": "Bench"})["id"]
    with open(os.path.join(FIX, "idp-metadata.xml")) as f:
        md = f.read()
    conn, sp = setup_saml_connection(
        a, org, md, [{"idp_group": "admins", "role_slug": "admin"},
                     {"idp_group": "engineering", "role_slug": "member"}],
        name="bench", allow_idp_initiated=True)
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(sp)
        sp_path = f.name
    try:
        out = subprocess.run(
            [DRV, "--sp-metadata", sp_path, "--idp-metadata", os.path.join(FIX, "idp-metadata.xml"),
             "--key", os.path.join(FIX, "idp.key"),
             "--port", ",".join(str(rg.public_port) for rg in dep.rgs),
             "--path", f"/saml/acs/{conn}", "--n", str(N), "--threads", str(clients),
             "--cpu-of", "rolegate,postgres"],
            capture_output=True, text=True, cwd=ROOT, timeout=600)
    finally:
        os.unlink(sp_path)
    m = re.search(r"ACS logins[^:]*: (\d+) ok \(302\), (\d+) other.*: (\d+) logins/s", out.stdout)
    assert m, (out.stdout[-800:], out.stderr[-800:])
    b = re.search(r"machine CPU during the logins: (\d+)% busy", out.stdout)
    cpu = re.search(r"server CPU per login: rolegate (\d+) us .*, postgres (\d+) us", out.stdout)
    return (int(m.group(3)), int(m.group(1)), int(m.group(2)), int(b.group(1)) if b else -1,
            (int(cpu.group(1)), int(cpu.group(2))) if cpu else (-1, -1))


def bench_writes(dep, clients):
    """W admin writes from `clients` threads; returns (writes/s, non-2xx)."""
    bad = [0]
    lock = threading.Lock()

    def work(t):
        rg = dep.rgs[t % len(dep.rgs)]
        c = http.client.HTTPConnection("127.0.0.1", rg.admin_port, timeout=60)
        h = {"Authorization": "Bearer " + rg.admin_key, "Content-Type": "application/json"}
        for i in range(W // clients):
            if i % 2:
                path, body = "/organizations", {"name": f"o{t}-{i}"}
            else:
                path, body = "/authorization/roles", {"slug": f"w{t}-{i}", "name": f"w{t}-{i}"}
            c.request("POST", path, json.dumps(body), h)
            r = c.getresponse()
            r.read()
            if r.status // 100 != 2:
                with lock:
                    bad[0] += 1
        c.close()
    ts = [threading.Thread(target=work, args=(t,)) for t in range(clients)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.monotonic() - t0
    return (W // clients) * clients / dt, bad[0]


def main():
    print("machine:", machine(), flush=True)
    print(f"logins: {N} per run; admin writes: {W} per run; clients: "
          f"{','.join(map(str, CLIENT_COUNTS))}; {ROUNDS} rounds, median", flush=True)
    assert os.access(DRV, os.X_OK), f"{DRV} missing: make bench"
    this = harness.BIN
    kinds = {"sqlite": ("sqlite", 1), "pg": ("pg", 1), "pg3": ("pg", 3)}
    want = os.environ.get("BENCH_KINDS", "sqlite,pg,pg3").split(",")
    bins = [("", this)]
    for item in filter(None, os.environ.get("BENCH_BASE", "").split(",")):
        tag, _, path = item.rpartition("=")
        assert os.access(path, os.X_OK), f"BENCH_BASE: {path} is not an executable"
        bins.append((tag or path, path))
    configs = [(tag, binary) + kinds[k] + (c,) for c in CLIENT_COUNTS for tag, binary in bins
               for k in want if not (tag and k == "pg3")]
    res = {c: {"login": [], "write": [], "busy": [], "rg_us": [], "pg_us": []} for c in configs}
    redis = Redis()
    try:
        for rnd in range(ROUNDS):
            for c in configs:
                tag, binary, kind, n, clients = c
                dep = Deployment(kind, n, redis, binary)
                try:
                    lps, ok, other, busy, (rg_us, pg_us) = bench_logins(dep, clients)
                    wps, bad = bench_writes(dep, clients)
                finally:
                    dep.close()
                res[c]["login"].append(lps)
                res[c]["write"].append(wps)
                res[c]["busy"].append(busy)
                res[c]["rg_us"].append(rg_us)
                res[c]["pg_us"].append(pg_us)
                print(f"  round {rnd + 1} {clients:2d} clients {tag + ' ' if tag else ''}"
                      f"{kind:6s} x{n}: {lps:5d} logins/s ({ok} ok, {other} other, CPU {busy}% "
                      f"busy; CPU per login: rolegate {rg_us} us, postgres {pg_us} us), "
                      f"{wps:6.0f} admin writes/s ({bad} non-2xx)", flush=True)
    finally:
        redis.kill()
        harness.BIN = this
    med = {c: {k: statistics.median(v) for k, v in r.items()} for c, r in res.items()}
    for c, m in med.items():
        tag, binary, kind, n, clients = c
        base = med.get((tag, binary, "sqlite", 1, clients), m)
        print(f"{clients:2d} clients {tag + ' ' if tag else ''}{kind:6s} x{n}: logins/s "
              f"{m['login']:6.0f} ({m['login'] / base['login']:.2f}x SQLite, CPU "
              f"{m['busy']:.0f}% busy; per login rolegate {m['rg_us']:.0f} us + postgres "
              f"{m['pg_us']:.0f} us)  admin writes/s {m['write']:6.0f} "
              f"({m['write'] / base['write']:.2f}x SQLite)")
    for clients in CLIENT_COUNTS:
        p1 = med.get(("", this, "pg", 1, clients))
        p3 = med.get(("", this, "pg", 3, clients))
        if p1 and p3:
            print(f"{clients:2d} clients PostgreSQL 3 instances / 1: logins "
                  f"{p3['login'] / p1['login']:.2f}x, admin writes "
                  f"{p3['write'] / p1['write']:.2f}x (one {os.cpu_count()}-cpu machine runs all "
                  f"three, the server and the clients)")
    peak = {}
    for c, m in med.items():
        key = c[:4]
        if key not in peak or m["login"] > peak[key][0]:
            peak[key] = (m["login"], c[4])
    for key, (lps, clients) in peak.items():
        tag, binary, kind, n = key
        base = peak.get((tag, binary, "sqlite", 1))
        if base and kind != "sqlite":
            print(f"capacity {tag + ' ' if tag else ''}{kind} x{n} / SQLite: logins "
                  f"{lps / base[0]:.2f}x ({lps:.0f}/s at {clients} clients against "
                  f"{base[0]:.0f}/s at {base[1]})")
    for c in configs:
        tag, binary, kind, n, clients = c
        me = med.get(("", this, kind, n, clients))
        if tag and me:
            o = med[c]
            print(f"{clients:2d} clients this build / {tag}, {kind} x{n}: logins "
                  f"{me['login'] / o['login']:.2f}x, admin writes {me['write'] / o['write']:.2f}x")


if __name__ == "__main__":
    main()
