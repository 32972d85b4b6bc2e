#!/usr/bin/env python3
"""soak_redis.py (issue 17, endurance 4): Redis SIGKILLed and restarted
(same port, empty: no persistence) under /auth load. rolegate is configured
with [redis] url; SESSIONS admin-issued sessions (default 50) are spread
over wrk -t2 -cCONNS (64) connections for DURATION s (30); a wrk script
keeps each connection's cookie current from Set-Cookie, and
[session] refresh_after = REFRESH_AFTER (2 s) so refreshes (role table:
in-process -> Redis -> store) run all through the outage, not only the
token-cache hits. Redis is SIGKILLed at DURATION/3 and started again at
2*DURATION/3. Targets: zero 5xx (zero non-200 and socket errors) at /auth,
and no logout: every session still answers 200 after the run. Also printed:
/readyz seen degraded during the outage and ready after. The same-run
baseline: the same wrk for BASE_DURATION s (10) with Redis up throughout.
Env: SCALE (multiplies DURATION, BASE_DURATION), SESSIONS, CONNS, DURATION,
BASE_DURATION, REFRESH_AFTER."""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak_common as sc  # noqa: E402

SESSIONS = int(os.environ.get("SESSIONS", "50"))
CONNS = int(os.environ.get("CONNS", "64"))
DURATION = int(os.environ.get("DURATION", str(sc.scaled(30, 6))))
BASE_DURATION = int(os.environ.get("BASE_DURATION", str(sc.scaled(10, 3))))
REFRESH_AFTER = int(os.environ.get("REFRESH_AFTER", "2"))

# each connection takes one session (round robin) and keeps its cookie
# current from the Set-Cookie of a refresh
COOKIE_LUA = sc.STATUS_LUA + r"""
local tokens = {TOKENS}
local conn_seq = 0
function init(args)
  counts = {}
  mine = {}
  for i, t in ipairs(tokens) do mine[i] = t end
  pick = 0
end
function request()
  pick = pick %% #mine + 1
  return wrk.format(nil, nil, {["Cookie"] = "rolegate=" .. mine[pick]})
end
local base_response = response
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  local sc = headers["Set-Cookie"]
  if sc then
    counts[-1] = (counts[-1] or 0) + 1
    local t = string.match(sc, "rolegate=([^;]+)")
    if t then mine[pick] = t end
  end
end
"""


def lua_for(tokens):
    lst = ", ".join(f'"{t}"' for t in tokens)
    return COOKIE_LUA.replace("{TOKENS}", "{" + lst + "}").replace("%%", "%")


def readyz(rg):
    try:
        return rg.public("GET", "/readyz", timeout=2)[2]
    except OSError as e:
        return {"error": str(e)}


def main():
    sc.banner("soak_redis", f"Redis SIGKILLed and restarted under /auth load ({DURATION} s)")
    redis = sc.Redis()
    cfg = {"redis": {"url": redis.url()},
           "session": {"refresh_after": REFRESH_AFTER}}
    print(f"rolegate [redis] url = {redis.url()}, [session] refresh_after = {REFRESH_AFTER} s; "
          f"{SESSIONS} sessions over wrk -t2 -c{CONNS}")
    try:
        with sc.rolegate(config=cfg) as rg:
            sc.wait_until(lambda: readyz(rg) == {"status": "ready"}, 15, "ready with Redis")
            tokens = sc.sessions(rg, SESSIONS)
            assert all(sc.auth_status(rg, t) == 200 for t in tokens)
            url = f"http://127.0.0.1:{rg.public_port}/auth"
            lua = lua_for(tokens)
            base = sc.wrk(url, CONNS, BASE_DURATION, lua=lua)
            h = sc.wrk_start(url, CONNS, DURATION, lua=lua)
            t0 = time.monotonic()
            time.sleep(DURATION / 3)
            redis.kill()
            t_kill = time.monotonic() - t0
            degraded = None
            while time.monotonic() - t0 < 2 * DURATION / 3:
                if degraded is None and readyz(rg).get("status") == "degraded":
                    degraded = time.monotonic() - t0
                time.sleep(0.1)
            redis.start()
            t_start = time.monotonic() - t0
            ready = None
            while h[0].poll() is None:
                if ready is None and readyz(rg) == {"status": "ready"}:
                    ready = time.monotonic() - t0
                time.sleep(0.1)
            r = sc.wrk_finish(h)
            after = [sc.auth_status(rg, t) for t in tokens]
            alive = rg.proc.poll() is None
            log = rg.log_text()
    finally:
        redis.kill()
    print(f"wrk -t2 -c{CONNS} --latency on /auth, {SESSIONS} sessions, cookies kept current:")
    print(sc.wrk_line(f"Redis up, {BASE_DURATION} s (baseline)", base))
    print(sc.wrk_line(f"Redis killed + restarted, {DURATION} s", r))
    print(f"  Redis SIGKILLed at {t_kill:.1f} s, /readyz degraded at "
          f"{'%.1f s' % degraded if degraded else 'never seen'}, Redis restarted at "
          f"{t_start:.1f} s, /readyz ready at {'%.1f s' % ready if ready else 'never seen'}")
    print(f"  refreshes (answers with Set-Cookie): {base['setcookie']} in the baseline, "
          f"{r['setcookie']} in the run; log: {log.count('event=refresh_deferred')} "
          f"refresh_deferred, {log.count('event=session_ended')} session_ended, "
          f"{log.count('event=redis_down')} redis_down, {log.count('event=redis_up')} redis_up")
    s5 = sum(v for k, v in r["status"].items() if k >= 500)
    non200 = sum(v for k, v in r["status"].items() if k != 200)
    sock = r["connect"] + r["read"] + r["write"] + r["timeout"]
    still = sum(1 for s in after if s == 200)
    print(f"  5xx {s5}, non-200 {non200}, socket errors {sock}; sessions answering 200 after: "
          f"{still}/{len(after)}; alive: {alive}")
    ok = s5 == 0 and non200 == 0 and sock == 0 and still == len(after) and alive \
        and r["requests"] > 0
    print(f"  target zero 5xx and no logout: {sc.verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
