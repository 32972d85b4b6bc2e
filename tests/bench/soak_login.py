#!/usr/bin/env python3
"""soak_login.py (issue 17, endurance 1): N SAML ACS logins (default
100,000; each a new user, Response and Assertion signed by the fixture IdP,
minted just in time by 2 client threads of tests/bench/soak_login.c over
keep-alive connections) with rolegate's RSS sampled every EVERY logins
(default 10,000). Prints every sample (RSS, descriptors, threads, logins/s
and server CPU per login of the interval) and the growth from the sample at
EVERY to the last (target < 1%). The same-run baseline: the idle RSS after
setup, before the first login.

The in-process replay cache (no Redis) remembers every assertion id until
the assertion's NotOnOrAfter + clock skew, and drops expired ids only when a
connection's replay_quota (default 100,000) is full: with the shipped
settings it grows by design up to 100,000 ids, which a leak soak would read
as growth. So by default (REPLAY=bounded) responses live TTL s (8), the
clock skew is 2 s and replay_quota 8,000: the cache reaches its bound within
the first 10,000 logins and growth after that is not the replay cache.
REPLAY=shipped keeps the shipped saml settings (NotOnOrAfter 60 s ahead) to
show the cache's own growth. Env: SCALE (multiplies N), N, EVERY, TTL,
REPLAY, THREADS."""
import os
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak_common as sc  # noqa: E402
from test_saml_common import LoginServer, FIX  # noqa: E402

N = int(os.environ.get("N", str(sc.scaled(100000, 1000))))
EVERY = int(os.environ.get("EVERY", str(max(1, N // 10))))
REPLAY = os.environ.get("REPLAY", "bounded")
TTL = int(os.environ.get("TTL", "8" if REPLAY == "bounded" else "60"))
THREADS = int(os.environ.get("THREADS", "2"))


def main():
    sc.banner("soak_login", f"{N} SAML ACS logins, RSS sampled every {EVERY}")
    saml = {"clock_skew": 2, "replay_quota": 8000} if REPLAY == "bounded" else {}
    print(f"replay cache: REPLAY={REPLAY}, assertion TTL {TTL} s, [saml] "
          f"{saml or 'shipped defaults (clock_skew 60, replay_quota 100000)'}")
    tmp = tempfile.mkdtemp(prefix="rolegate-soak-login-")
    drv = sc.build_driver("soak_login", tmp)
    with LoginServer(config={"saml": saml}) as rg:
        conn, sp = sc.saml_connection(rg)
        sp_path = os.path.join(tmp, "sp.xml")
        with open(sp_path, "w") as f:
            f.write(sp)
        p = sc.spawn([drv, "--sp-metadata", sp_path, "--idp-metadata",
                      os.path.join(FIX, "idp-metadata.xml"), "--key", os.path.join(FIX, "idp.key"),
                      "--port", str(rg.public_port), "--path", f"/saml/acs/{conn}",
                      "--pid", str(rg.proc.pid), "--n", str(N), "--every", str(EVERY),
                      "--ttl", str(TTL), "--threads", str(THREADS)],
                     stdout=sc.subprocess.PIPE, text=True, cwd=sc.ROOT)
        samples, summary = [], ""
        print(f"{'logins':>8} {'RSS kB':>8} {'fds':>4} {'thr':>4} {'logins/s':>9} "
              f"{'CPU us/login':>12} {'non-302':>7}", flush=True)
        for line in p.stdout:
            f = line.split()
            if f[:1] == ["sample"]:
                n, rss, fds, thr, cpu, el, bad = (int(f[1]), int(f[2]), int(f[3]), int(f[4]),
                                                  float(f[5]), float(f[6]), int(f[7]))
                if samples:
                    pn, _, _, _, pcpu, pel, _ = samples[-1]
                    rate = (n - pn) / max(el - pel, 1e-9)
                    cpul = (cpu - pcpu) * 1e6 / max(n - pn, 1)
                    print(f"{n:8d} {rss:8d} {fds:4d} {thr:4d} {rate:9.0f} {cpul:12.0f} {bad:7d}",
                          flush=True)
                else:
                    print(f"{n:8d} {rss:8d} {fds:4d} {thr:4d} {'(idle)':>9} {'':>12} {bad:7d}",
                          flush=True)
                samples.append((n, rss, fds, thr, cpu, el, bad))
            else:
                summary += line
        rc = p.wait()
        alive = rg.proc.poll() is None
        db = os.path.getsize(os.path.join(rg.dir, "var", "rolegate.db"))
    print(summary.rstrip())
    print(f"store file after the run: {db / 1e6:.1f} MB; rolegate alive: {alive}")
    first = next((s for s in samples if s[0] >= EVERY), None)
    last = samples[-1]
    ok = rc == 0 and alive and first is not None and last[0] == N
    if first:
        growth = (last[1] - first[1]) * 100.0 / first[1]
        print(f"RSS: idle {samples[0][1]} kB (baseline), at {first[0]} logins {first[1]} kB, "
              f"at {last[0]} {last[1]} kB: growth after the first {first[0]} = "
              f"{growth:+.2f}% (target < 1%): {sc.verdict(growth < 1.0)}")
        print(f"descriptors {first[2]} -> {last[2]}, threads {first[3]} -> {last[3]}")
        ok = ok and growth < 1.0 and last[2] <= first[2]
    sc.shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
