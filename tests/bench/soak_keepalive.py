#!/usr/bin/env python3
"""soak_keepalive.py (issue 17, endurance 2): CONNS concurrent keep-alive
connections (default 1,000) on rolegate's /auth with a valid session cookie
for DURATION seconds (default 60), wrk -t2 with a per-status count; target:
zero errors (no non-2xx, no connect/read/write error, no timeout). The
same-run baseline: nginx `return 200` (worker_processes auto) with the same
connections for BASE_DURATION seconds (default 20). Prints rolegate's RSS,
fds and threads before and after.

Connection limit: rolegate's [server] max_connections defaults to 1024,
which libmicrohttpd divides among its pool threads (512 each on 2), and
wrk's 1,000 connections plus the probes need headroom: the bench raises it
to MAX_CONN (default 4096; MAX_CONN=default keeps the shipped 1024). Env:
SCALE (multiplies DURATION), CONNS, DURATION, BASE_DURATION, MAX_CONN."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak_common as sc  # noqa: E402

CONNS = int(os.environ.get("CONNS", "1000"))
DURATION = int(os.environ.get("DURATION", str(sc.scaled(60, 5))))
BASE_DURATION = int(os.environ.get("BASE_DURATION", str(sc.scaled(20, 3))))
MAX_CONN = os.environ.get("MAX_CONN", "4096")


def main():
    sc.banner("soak_keepalive", f"{CONNS} keep-alive connections on /auth for {DURATION} s")
    server = {"max_connections": MAX_CONN} if MAX_CONN != "default" else {}
    print(f"rolegate [server] max_connections = {MAX_CONN if server else '1024 (shipped default)'}"
          f" (shipped default 1024, split across the pool threads)")
    with sc.Nginx() as ng:
        base = sc.wrk(f"http://127.0.0.1:{ng.port}/", CONNS, BASE_DURATION)
    with sc.rolegate(config={"server": server}) as rg:
        token = sc.sessions(rg, 1)[0]
        assert sc.auth_status(rg, token) == 200
        pid = rg.proc.pid
        before = (sc.rss_kb(pid), sc.n_fds(pid), sc.n_threads(pid))
        r = sc.wrk(f"http://127.0.0.1:{rg.public_port}/auth", CONNS, DURATION,
                   headers=[f"Cookie: rolegate={token}"])
        after = (sc.rss_kb(pid), sc.n_fds(pid), sc.n_threads(pid))
        # wrk has closed its connections: rolegate's descriptors come back
        try:
            sc.wait_until(lambda: sc.n_fds(pid) <= before[1] + 2, 10, "fds to settle")
        except AssertionError:
            pass
        settled = sc.n_fds(pid)
        still = sc.auth_status(rg, token)
        alive = rg.proc.poll() is None
    print(f"wrk -t2 -c{CONNS} --timeout 2s (load generator on the same machine):")
    print(sc.wrk_line(f"nginx return 200, {BASE_DURATION} s", base))
    print(sc.wrk_line(f"rolegate /auth, {DURATION} s", r))
    print(f"  rolegate /auth / nginx return 200 = {r['rps'] / max(base['rps'], 1):.2f}x req/s")
    print(f"  rolegate RSS {before[0]} -> {after[0]} kB, fds {before[1]} -> {after[1]}, "
          f"threads {before[2]} -> {after[2]}; fds once wrk closed: {settled}; /auth after the run: {still}; "
          f"process alive: {alive}")
    bad = r["errors"] + sum(v for k, v in r["status"].items() if k != 200)
    ok = bad == 0 and r["requests"] > 0 and still == 200 and settled <= before[1] + 2
    print(f"  errors: {bad} (target 0): {sc.verdict(ok)}")
    if not ok:
        print(r["text"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
