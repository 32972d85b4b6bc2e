#!/usr/bin/env python3
"""Issue 13 benchmark: /auth with refresh enabled vs disabled, in the same
run, against real rolegate processes sharing one store and key directory:
  A  refresh = false (snapshot tokens of 8 h): wrk -t2 -c32 on one cookie
  B  refresh = true, refresh_after 60 s, a young token (no refresh due)
     (target: no measurable drop against A); A and B alternate for ROUNDS
     rounds (default 4, the order swapped each round), median B/A printed.
  C  the cost of one refresh: N distinct tokens, each sent once over one
     keep-alive connection, to an instance where they are older than
     refresh_after (every request refreshes: membership read, role table from
     the cache, one ES256 signature) and to one where no refresh is due (every
     request is a cache miss: one ES256 verification). rolegate's own CPU
     time (/proc/PID/task/*/schedstat) per request, the difference is the refresh; set
     against the ES256 sign cost measured in this process with openssl.
  D  the same for tokens of BENCH_USERS memberships made for the round
     (default 200), each refreshed once: the membership-state cache (issue
     13) never has them, so every refresh reads the store (the cold path).
Prints the machine. Env: DURATION (wrk, default 4s), ROUNDS (4), BENCH_N
(C, 1500), BENCH_USERS (D, 200), C_ROUNDS (C and D, 3), BASE_BIN (another build: C and D are run
on it too, interleaved with this one, on the same store and keys: before and
after in one run)."""
import http.client
import json
import os
import platform
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
from harness import Rolegate  # noqa: E402
from test_auth_common import COOKIE, new_session, setup_member  # noqa: E402

DURATION = os.environ.get("DURATION", "4s")
ROUNDS = int(os.environ.get("ROUNDS", "4"))
N = int(os.environ.get("BENCH_N", "1500"))
USERS = int(os.environ.get("BENCH_USERS", "200"))
C_ROUNDS = int(os.environ.get("C_ROUNDS", "3"))
BASE_BIN = os.environ.get("BASE_BIN")
MS = "/user_management/organization_memberships"


def machine():
    cpu = harness.cpu_model()
    return f"{platform.uname()}, {cpu}, nproc {os.cpu_count()}"


def cpu_seconds(pid):
    """CPU time of every thread of pid: schedstat's nanoseconds where the
    kernel has them (clock ticks, 10 ms, are too coarse for one refresh)."""
    total, seen = 0, False
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
                    seen = True
            except (FileNotFoundError, ProcessLookupError):
                pass   # a thread that ended meanwhile
    except FileNotFoundError:
        pass
    if seen:
        return total / 1e9
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port, token, pid):
    c0 = cpu_seconds(pid)
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{DURATION}", "--latency",
                          "-H", f"Cookie: {COOKIE}={token}",
                          f"http://127.0.0.1:{port}/auth"],
                         capture_output=True, text=True, timeout=120).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert not non2xx, out
    p99 = re.search(r"\n\s+99%\s+(\S+)", out).group(1)
    n = int(re.search(r"(\d+) requests in", out).group(1))
    return rps, p99, (cpu_seconds(pid) - c0) / max(n, 1) * 1e6


def sequential(port, tokens):
    """Sends each token once over one keep-alive connection; returns the
    number of answers that carried a new cookie."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    fresh = 0
    for t in tokens:
        c.request("GET", "/auth", headers={"Cookie": f"{COOKIE}={t}"})
        r = c.getresponse()
        r.read()
        assert r.status == 200, r.status
        fresh += r.getheader("Set-Cookie") is not None
    c.close()
    return fresh


def es256_sign_us():
    """openssl speed's ECDSA P-256 sign time on this machine, in us."""
    out = subprocess.run(["openssl", "speed", "-seconds", "2", "ecdsap256"],
                         capture_output=True, text=True, timeout=60).stdout
    # "256 bits ecdsa (nistp256)   0.0000s   0.0001s  49985.7  19140.8"
    m = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", out)
    return 1e6 / float(m.group(1)) if m else None


def start(config, binary=None):
    """A rolegate on config, of binary (default: this build)."""
    keep = harness.BIN
    if binary:
        harness.BIN = binary
    try:
        return Rolegate(config=config)
    finally:
        harness.BIN = keep


def median(v):
    v = sorted(v)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2


def refresh_cost(pairs, make_tokens, label, rounds):
    """For each (name, rg_on, rg_due), `rounds` times with new tokens (a
    token refreshed once is answered from the refresh map for 10 s): the CPU
    per request of the tokens sent to rg_on (no refresh due) and to rg_due
    (every one refreshed), the pairs' order swapped each round; prints the
    medians and the refresh alone against the ES256 sign time."""
    got = {name: ([], []) for name, _, _ in pairs}
    for rnd in range(rounds):
        tokens = make_tokens()
        time.sleep(1.2)   # older than the `due` instances' refresh_after
        for name, on, due in (pairs if rnd % 2 == 0 else pairs[::-1]):
            c0 = cpu_seconds(on.proc.pid)
            fresh_on = sequential(on.public_port, tokens)
            c1 = cpu_seconds(on.proc.pid)
            d0 = cpu_seconds(due.proc.pid)
            fresh_due = sequential(due.public_port, tokens)
            d1 = cpu_seconds(due.proc.pid)
            assert fresh_on == 0 and fresh_due == len(tokens), (fresh_on, fresh_due)
            got[name][0].append((c1 - c0) / len(tokens) * 1e6)
            got[name][1].append((d1 - d0) / len(tokens) * 1e6)
    sign = es256_sign_us()
    for name, _, _ in pairs:
        verify_us, refresh_us = median(got[name][0]), median(got[name][1])
        alone = [r - v for v, r in zip(*got[name])]
        print(f"  {label} {name:5s} per round (no refresh due / refresh due): "
              + ", ".join(f"{v:.1f}/{r:.1f}" for v, r in zip(*got[name])) + " us")
        print(f"  {label} {name:5s} no refresh due (cache miss, 1 ES256 verify): "
              f"{verify_us:7.1f} us CPU/request (median of {rounds})")
        print(f"  {label} {name:5s} refresh due    (verify + refresh):           "
              f"{refresh_us:7.1f} us CPU/request")
        print(f"  {label} {name:5s} refresh alone per round: "
              f"{', '.join(f'{a:.1f}' for a in alone)} us; median {median(alone):.1f} us CPU"
              + (f" = {median(alone) / sign:.2f} x ES256 sign ({sign:.1f} us, "
                 f"openssl speed) (target <= 2)" if sign else ""), flush=True)


def more_members(rg, org, role, n, first=0):
    """n more users with a membership of org holding role: their ids."""
    oms = []
    for i in range(first, first + n):
        st, _, u = rg.admin("POST", "/user_management/users", {"email": f"b{i}@example.com"})
        assert st == 201, u
        st, _, m = rg.admin("POST", MS, {"user_id": u["id"], "organization_id": org,
                                         "role_slug": role})
        assert st == 201, m
        oms.append(m["id"])
    return oms


def main():
    print("machine:", machine())
    off = Rolegate(config={"session": {"refresh": False}, "log": {"level": "warn"}},
                   start=False)
    shared = {"store": {"database": os.path.join(off.dir, "var", "rolegate.db")},
              "server": {"base_url": f"http://127.0.0.1:{off.public_port}"},
              "log": {"level": "warn"}}
    keys = {"keys_dir": os.path.join(off.dir, "var", "keys")}
    rgs, pairs = [], []
    try:
        if BASE_BIN:
            # the older build first: it makes the store at its schema, which
            # this build then migrates (an older build refuses a newer schema)
            print("BASE_BIN:", BASE_BIN)
            b_on = start(dict(shared, session=dict(keys, refresh_after="60s")), BASE_BIN)
            rgs.append(b_on)
            b_due = start(dict(shared, session=dict(keys, refresh_after="1s")), BASE_BIN)
            rgs.append(b_due)
            pairs.append(("base", b_on, b_due))
        off.start()
        rgs.append(off)
        on = start(dict(shared, session=dict(keys, refresh_after="60s")))
        rgs.append(on)
        due = start(dict(shared, session=dict(keys, refresh_after="1s")))
        rgs.append(due)
        pairs.append(("this", on, due))
    except BaseException:
        for rg in reversed(rgs):
            rg.close()
        off.close()
        raise
    try:
        ids = setup_member(off)
        t_off = new_session(off, ids["om"], "bench")["token"]
        t_on = new_session(on, ids["om"], "bench")["token"]
        ratios, cpu = [], []
        for rnd in range(1, ROUNDS + 1):
            # alternate which goes first: the machine is shared and noisy
            pair = [("A refresh off", off, t_off), ("B refresh on, none due", on, t_on)]
            got = {}
            for name, rg, tok in (pair if rnd % 2 else pair[::-1]):
                rps, p99, us = wrk(rg.public_port, tok, rg.proc.pid)
                got[name[0]] = (rps, us)
                print(f"  round {rnd} {name:24s} {rps:9.0f} req/s  p99 {p99:>8s}  "
                      f"{us:5.1f} us CPU/request", flush=True)
            ratios.append(got["B"][0] / got["A"][0])
            cpu.append(got["B"][1] / got["A"][1])
        if ratios:
            ratios.sort()
            med = (ratios[(len(ratios) - 1) // 2] + ratios[len(ratios) // 2]) / 2
            print(f"B/A req/s per round: {', '.join(f'{r:.2f}' for r in ratios)}; "
                  f"median {med:.2f}")
            cpu.sort()
            cmed = (cpu[(len(cpu) - 1) // 2] + cpu[len(cpu) // 2]) / 2
            print(f"B/A rolegate CPU per request (less noisy): "
                  f"{', '.join(f'{r:.2f}' for r in cpu)}; median {cmed:.2f}")
        print(f"C: {N} sessions of one membership per round, {C_ROUNDS} rounds ...",
              flush=True)
        refresh_cost(pairs, lambda: [new_session(on, ids["om"], f"bench {i}")["token"]
                                     for i in range(N)], "C", C_ROUNDS)
        if USERS:
            print(f"D: {USERS} new memberships, one session each per round ...", flush=True)
            made = [0]

            def cold():
                # new memberships each round: never in any instance's cache
                oms = more_members(off, ids["org"], ids["role"], USERS, made[0])
                made[0] += USERS
                return [new_session(on, om, "bench d")["token"] for om in oms]
            refresh_cost(pairs, cold, "D", C_ROUNDS)
        print("  (CPU of the rolegate process: every thread, schedstat ns; the machine is shared)")
    finally:
        for rg in reversed(rgs):
            rg.close()


if __name__ == "__main__":
    main()
