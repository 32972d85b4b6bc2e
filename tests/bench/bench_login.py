#!/usr/bin/env python3
"""Login benchmarks (issues 5 and 6), against the real binary on loopback:
  SAML: verified ACS logins/s with pre-minted unique responses (RSA-2048,
        SHA-256, 5 groups) from 2 concurrent clients ($BUILD/bench/bench_login),
        two rows: returning users over keep-alive, and first logins (each
        POST a new user) on fresh connections (issue 17's ACS target),
        and CPU us per login split into verify / resolve (table load + R15-R17)
        / store (the rest of the login transaction: user, membership, events)
        / sign, from rolegate's debug timing lines. Baseline of the same run:
        lasso alone verifying the same responses on as many threads.
  OIDC: CPU us per callback excluding the IdP's time (this thread's CPU
        around the code exchange + ID-token verification, then store, sign)
        through the real oidc-provider of tests/oidc-op.
Prints the machine. BENCH_N overrides the number of SAML logins per row and
round (2000); ROUNDS the rounds (3); BASE_BIN a second rolegate binary
measured beside this build in the same rounds."""
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
from test_saml_common import (LoginServer, setup_roles, setup_saml_connection,  # noqa: E402
                              Browser, FIX)
import test_oidc_login as ol  # noqa: E402

BUILD = os.environ.get("ROLEGATE_BUILD") or os.path.join(ROOT, "build")
N = int(os.environ.get("BENCH_N", "2000"))


def machine():
    cpu = harness.cpu_model()
    return f"{platform.system()} {platform.release()} {platform.machine()}, {cpu}, {os.cpu_count()} cpus"


def timings(lines, protocol):
    """(verify, resolve, store, sign) CPU us of each login_timing line."""
    rows = []
    for line in lines:
        if "event=login_timing" in line and f"protocol={protocol}" in line:
            kv = dict(re.findall(r"(\w+)=(\d+)", line))
            rows.append((int(kv["verify_cpu_us"]), int(kv["resolve_cpu_us"]),
                         int(kv["store_cpu_us"]), int(kv["sign_cpu_us"])))
    return rows


def report(name, rows):
    if not rows:
        print(f"{name}: no timing lines (log level debug?)")
        return
    for i, part in enumerate(("verify", "resolve", "store", "sign")):
        v = [r[i] for r in rows]
        print(f"  {name} {part:7s} CPU us: median {statistics.median(v):7.0f}  "
              f"mean {statistics.mean(v):7.0f}  (n={len(v)})")
    tot = [sum(r) for r in rows]
    print(f"  {name} total   CPU us: median {statistics.median(tot):7.0f}")


ROWS = (("returning users, keep-alive", ["--fresh", "0", "--users", "200"]),
        ("first logins, fresh connections", ["--fresh", "1", "--users", "0"]))


def saml_server():
    """A rolegate with one SAML connection (the fixture IdP's metadata,
    IdP-initiated allowed, 3 mappings); returns (rg, conn, sp_metadata_path)."""
    rg = LoginServer(config={"log": {"level": "debug"}})
    setup_roles(rg)
    org = rg.ok("POST", "/organizations", {"name": "Bench"})["id"]
    with open(os.path.join(FIX, "idp-metadata.xml")) as f:
        md = f.read()
    conn, sp = setup_saml_connection(
        rg, org, md, [{"idp_group": "admins", "role_slug": "admin"},
                      {"idp_group": "engineering", "role_slug": "member"},
                      {"idp_group": "viewers", "role_slug": "viewer"}],
        name="bench", allow_idp_initiated=True)
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(sp)
    return rg, conn, f.name


def drive(drv, rg, conn, sp_path, flags, prefix):
    """One driver run; returns (logins/s, lasso alone/s, its timing rows)."""
    before = len(rg.log_lines())
    out = subprocess.run(
        [drv, "--sp-metadata", sp_path, "--idp-metadata", os.path.join(FIX, "idp-metadata.xml"),
         "--key", os.path.join(FIX, "idp.key"), "--port", str(rg.public_port),
         "--path", f"/saml/acs/{conn}", "--n", str(N), "--threads", "2",
         "--user-prefix", prefix] + flags, capture_output=True, text=True, cwd=ROOT)
    rate = re.search(r"ACS logins .*: ([0-9]+) logins/s", out.stdout)
    base = re.search(r"lasso alone .*: ([0-9]+)/s", out.stdout)
    if out.returncode or not rate or not base:
        print("  driver failed:", out.stdout[-500:], out.stderr[-500:])
        return None
    return int(rate.group(1)), int(base.group(1)), timings(rg.log_lines()[before:], "saml")


def bench_saml():
    """ROUNDS (3) rounds, each running every row in turn against the same
    server (and, with BASE_BIN set, the same rows against a second server
    running that binary, e.g. main's build: before/after in one run);
    medians. Each first-login round gets users no earlier round used."""
    drv = os.path.join(BUILD, "bench", "bench_login")
    if not os.access(drv, os.X_OK):
        print(f"SAML: {drv} missing: make bench")
        return
    rounds = int(os.environ.get("ROUNDS", "3"))
    bins = [("this build", harness.BIN)]
    if os.environ.get("BASE_BIN"):
        bins.insert(0, ("BASE_BIN", os.environ["BASE_BIN"]))
    servers = []
    try:
        for label, path in bins:
            harness.BIN = path
            servers.append((label, saml_server()))
        res = {}
        for r in range(rounds):
            for label, (rg, conn, sp_path) in servers:
                for k, (name, flags) in enumerate(ROWS):
                    got = drive(drv, rg, conn, sp_path, flags, f"r{r}x{k}u")
                    if got:
                        res.setdefault((label, name), []).append(got)
        print(f"SAML ACS, {N} logins per row and round, 2 clients, RSA-2048 SHA-256, Response"
              f" and Assertion signed, 5 groups; {rounds} interleaved rounds, medians:")
        for label, _ in servers:
            for name, _ in ROWS:
                got = res.get((label, name))
                if not got:
                    continue
                rate = statistics.median(g[0] for g in got)
                base = statistics.median(g[1] for g in got)
                print(f"  [{label}] {name}: {rate:.0f} logins/s; lasso alone {base:.0f}/s;"
                      f" ratio {rate / base:.2f}  (rounds: {[g[0] for g in got]})")
                report(f"{label}: {name}:", [row for g in got for row in g[2]])
    finally:
        for _, (rg, _, sp_path) in servers:
            os.unlink(sp_path)
            rg.__exit__(None, None, None)


def bench_oidc(n=40):
    rg = LoginServer(config={"log": {"level": "debug"}})
    op = None
    try:
        op = ol.Op(rg.base + "/oidc/callback")
        setup_roles(rg)
        org = rg.ok("POST", "/organizations", {"name": "Bench"})["id"]
        conn = rg.ok("POST", f"/organizations/{org}/connections",
                     {"type": "oidc", "name": "OP", "issuer": op.issuer,
                      "client_id": ol.CLIENT_ID, "client_secret": ol.CLIENT_SECRET})["id"]
        rg.ok("PUT", f"/connections/{conn}/role_mappings",
              [{"idp_group": "admins", "role_slug": "admin"}])
        env = type("E", (), {})()
        env.rg, env.org = rg, org
        for i in range(n):
            b = Browser()
            cb = ol.Env.to_callback(env, b, "alice")
            st, _, _ = b.get(cb)
            assert st == 302, st
        print("OIDC (callback; verify = code exchange + ID token, this thread's CPU only):")
        report("oidc", timings(rg.log_lines(), "oidc")[1:])   # the first one fetches discovery + JWKS
    finally:
        if op:
            op.stop()
        rg.__exit__(None, None, None)


if __name__ == "__main__":
    print("machine:", machine())
    bench_saml()
    bench_oidc()
