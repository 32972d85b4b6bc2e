#!/usr/bin/env python3
"""Admin API throughput, measured with wrk against the real binary:
  - GET /authorization/organizations/{id}/roles with 500 organization roles
    (plus the environment's) in one organization (R11 list, priority order);
  - PUT /user_management/organization_memberships/{id} alternating the
    membership's role between two slugs (a real write + event every time);
  - GET /healthz on the public listener as a same-run baseline.
each at 2 and 16 connections. Prints the machine (uname, CPU model, cores).

Usage: tests/bench/bench_api.py [seconds per run, default 5]
Environment: ROLEGATE_BIN (default build/rolegate), WRK (default wrk)."""
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import Rolegate, cpu_model  # noqa: E402

SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
WRK = os.environ.get("WRK", "wrk")
N_ROLES = 500


def wrk(url, conns, script=None):
    cmd = [WRK, "-t", str(min(conns, 2)), "-c", str(conns), "-d", f"{SECONDS}s", "--latency"]
    if script:
        cmd += ["-s", script]
    cmd.append(url)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+(\S+)", out).group(1)
    p99 = re.search(r"99%\s+(\S+)", out).group(1)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:.*", out)
    return rps, p50, p99, int(bad.group(1)) if bad else 0, errs.group(0) if errs else ""


def main():
    if not shutil.which(WRK):
        sys.exit("wrk not found: apt-get install -y wrk")
    print(f"machine: {' '.join(platform.uname()[:3])} {platform.machine()}")
    print(f"cpu: {cpu_model(platform.processor() or 'unknown')} x {os.cpu_count()}")
    print(f"wrk: {SECONDS}s per run; server: rolegate serve (threads = cores), "
          f"SQLite in a temp dir, log level info")
    tmp = tempfile.mkdtemp(prefix="rolegate-bench-")
    with Rolegate() as rg:
        st, _, o = rg.admin("POST", "/organizations", {"name": "Bench"})
        assert st == 201, (st, o)
        org = o["id"]
        for i in range(N_ROLES):
            st, _, r = rg.admin("POST", f"/authorization/organizations/{org}/roles",
                                {"slug": f"org-role-{i:03d}", "name": f"Role {i}"})
            assert st == 201, (st, r)
        st, _, lst = rg.admin("GET", f"/authorization/organizations/{org}/roles")
        assert st == 200 and len(lst["data"]) == N_ROLES + 1, len(lst["data"])
        st, _, u = rg.admin("POST", "/user_management/users", {"email": "bench@example.com"})
        st, _, m = rg.admin("POST", "/user_management/organization_memberships",
                            {"user_id": u["id"], "organization_id": org})
        assert st == 201, (st, m)
        auth = f"Bearer {rg.admin_key}"
        get_lua = os.path.join(tmp, "get.lua")
        with open(get_lua, "w") as f:
            f.write(f'wrk.headers["Authorization"] = "{auth}"\n')
        put_lua = os.path.join(tmp, "put.lua")
        with open(put_lua, "w") as f:
            f.write(f'''wrk.method = "PUT"
wrk.headers["Authorization"] = "{auth}"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local slug = (n % 2 == 0) and "member" or "org-role-000"
  return wrk.format(nil, nil, nil, '{{"role_slug":"' .. slug .. '"}}')
end
''')
        admin = f"http://127.0.0.1:{rg.admin_port}"
        runs = [
            ("GET /healthz (public, baseline)", f"http://127.0.0.1:{rg.public_port}/healthz",
             None),
            (f"GET /authorization/organizations/{{id}}/roles ({N_ROLES + 1} roles)",
             f"{admin}/authorization/organizations/{org}/roles", get_lua),
            ("PUT /user_management/organization_memberships/{id} (role change)",
             f"{admin}/user_management/organization_memberships/{m['id']}", put_lua),
        ]
        print(f"{'request':<66} {'conns':>5} {'req/s':>10} {'p50':>9} {'p99':>9} {'non-2xx':>8}")
        for name, url, script in runs:
            for conns in (2, 16):
                rps, p50, p99, bad, errs = wrk(url, conns, script)
                print(f"{name:<66} {conns:>5} {rps:>10.0f} {p50:>9} {p99:>9} {bad:>8}"
                      + (f"  {errs}" if errs else ""), flush=True)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
