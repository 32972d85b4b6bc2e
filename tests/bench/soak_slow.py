#!/usr/bin/env python3
"""soak_slow.py (issue 17, endurance 3): SLOW clients (default 1,000) each
POST a form to the SAML ACS announcing Content-Length BODY (60,000 B, under
saml.max_response) and trickle CHUNK bytes (16) every INTERVAL s (1), for
DURATION s (60), while wrk -t2 -cAUTH_CONNS (64, as bench_auth.sh) measures
/auth with a valid session cookie, each connection pausing PACE_MS (10 ms)
between an answer and its next request (wrk's delay(): about 5,000 req/s,
a steady proxy load; PACE_MS=0 saturates the 2 cores, where p99 is the
queueing of the load generator and server sharing them). Target: /auth p99 < 10 ms with zero
errors. The same-run baseline: the same wrk on /auth for BASE_DURATION s
(20) before the slow clients connect. Also printed: how many slow clients
the server closed or answered during the run (a client so closed dials
again), rolegate's RSS and descriptors.

Connection limit: 1,000 slow clients plus wrk's 64 exceed rolegate's
shipped [server] max_connections = 1024 (split across libmicrohttpd's pool
threads), so the bench raises it to MAX_CONN (4096); MAX_CONN=default keeps
1024 and shows what the default does. Env: SCALE (multiplies DURATION and
BASE_DURATION), SLOW, DURATION, BASE_DURATION, AUTH_CONNS, CHUNK, INTERVAL,
MAX_CONN, PACE_MS."""
import errno
import os
import selectors
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak_common as sc  # noqa: E402
from test_saml_common import LoginServer  # noqa: E402

SLOW = int(os.environ.get("SLOW", "1000"))
DURATION = int(os.environ.get("DURATION", str(sc.scaled(60, 5))))
BASE_DURATION = int(os.environ.get("BASE_DURATION", str(sc.scaled(20, 3))))
AUTH_CONNS = int(os.environ.get("AUTH_CONNS", "64"))
BODY = 60000
CHUNK = int(os.environ.get("CHUNK", "16"))
INTERVAL = float(os.environ.get("INTERVAL", "1"))
MAX_CONN = os.environ.get("MAX_CONN", "4096")
PACE_MS = int(os.environ.get("PACE_MS", "10"))
# paced: each wrk connection waits PACE_MS between an answer and its next
# request (wrk's delay()), so p99 is the latency of a proxy's steady load,
# not the queueing of a saturated 2-core machine (PACE_MS=0: saturated)
LUA = sc.STATUS_LUA + (f"function delay() return {PACE_MS} end\n" if PACE_MS else "")


class Trickle:
    """SLOW connections, each sending its headers and then CHUNK bytes every
    INTERVAL (spread over the interval), on one thread with a selector."""

    def __init__(self, port, path):
        self.port, self.path = port, path
        self.head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                     f"application/x-www-form-urlencoded\r\nContent-Length: {BODY}\r\n\r\n"
                     "SAMLResponse=").encode()
        self.stop = threading.Event()
        self.connected = self.closed_by_server = self.answered = self.dial_errors = 0
        self.sent = 0
        self.peak = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def dial(self):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        except OSError:
            self.dial_errors += 1
            s.close()
            return None
        return {"sock": s, "sent": 0, "head": False}

    def run(self):
        sel = selectors.DefaultSelector()
        conns = []
        for i in range(SLOW):
            c = self.dial()
            if c:
                c["due"] = time.monotonic() + INTERVAL * i / SLOW
                sel.register(c["sock"], selectors.EVENT_READ, c)
                conns.append(c)
        self.connected = len(conns)
        while not self.stop.is_set():
            now = time.monotonic()
            for ev, _ in sel.select(timeout=0.02):
                c = ev.data
                try:
                    data = c["sock"].recv(4096)
                except OSError:
                    data = b""
                if data:
                    self.answered += 1
                else:
                    self.closed_by_server += 1
                self.redial(sel, c, now)
            live = 0
            for c in conns:
                if c["sock"] is None:
                    continue
                live += 1
                if c["due"] > now:
                    continue
                c["due"] = now + INTERVAL
                try:
                    if not c["head"]:
                        c["sock"].send(self.head)
                        c["head"] = True
                    elif c["sent"] + CHUNK < BODY - 13:
                        c["sock"].send(b"A" * CHUNK)
                        c["sent"] += CHUNK
                        self.sent += CHUNK
                except BlockingIOError:
                    pass
                except OSError as e:
                    if e.errno in (errno.ENOTCONN,):
                        continue   # still connecting
                    self.closed_by_server += 1
                    self.redial(sel, c, now)
            self.peak = max(self.peak, live)
        for c in conns:
            if c["sock"] is not None:
                c["sock"].close()
        sel.close()

    def redial(self, sel, c, now):
        try:
            sel.unregister(c["sock"])
        except (KeyError, ValueError):
            pass
        c["sock"].close()
        n = self.dial()
        if n is None:
            c["sock"] = None
            return
        c.update(n)
        c["due"] = now
        sel.register(c["sock"], selectors.EVENT_READ, c)


def main():
    sc.banner("soak_slow", f"{SLOW} slow ACS clients for {DURATION} s, /auth p99")
    server = {"max_connections": MAX_CONN} if MAX_CONN != "default" else {}
    print(f"rolegate [server] max_connections = "
          f"{MAX_CONN if server else '1024 (shipped default)'}; slow clients send "
          f"{CHUNK} B every {INTERVAL:g} s of a {BODY} B body")
    with LoginServer(config={"server": server}) as rg:
        conn, _ = sc.saml_connection(rg)
        token = sc.sessions(rg, 1, "Slow")[0]
        assert sc.auth_status(rg, token) == 200
        url = f"http://127.0.0.1:{rg.public_port}/auth"
        hdr = [f"Cookie: rolegate={token}"]
        pid = rg.proc.pid
        base = sc.wrk(url, AUTH_CONNS, BASE_DURATION, headers=hdr, lua=LUA)
        fds0, rss0 = sc.n_fds(pid), sc.rss_kb(pid)
        t = Trickle(rg.public_port, f"/saml/acs/{conn}")
        t.thread.start()
        time.sleep(INTERVAL + 1)   # every slow client has sent its headers
        fds1 = sc.n_fds(pid)
        r = sc.wrk(url, AUTH_CONNS, DURATION, headers=hdr, lua=LUA)
        fds2, rss2 = sc.n_fds(pid), sc.rss_kb(pid)
        t.stop.set()
        t.thread.join()
        still = sc.auth_status(rg, token)
        alive = rg.proc.poll() is None
        t0 = time.monotonic()
        rc = rg.stop(expect_rc=None, timeout=90)
        stop_s = time.monotonic() - t0
    print(f"wrk -t2 -c{AUTH_CONNS} --latency on /auth, {PACE_MS} ms pause per connection "
          f"(load generator on the same machine):")
    print(sc.wrk_line(f"/auth alone, {BASE_DURATION} s (baseline)", base))
    print(sc.wrk_line(f"/auth + {SLOW} slow ACS clients, {DURATION} s", r))
    print(f"  slow clients: {t.connected} connected, peak {t.peak} open, server closed "
          f"{t.closed_by_server}, answered {t.answered}, dial errors {t.dial_errors}, "
          f"{t.sent} body bytes trickled")
    print(f"  rolegate descriptors {fds0} -> {fds1} with the slow clients -> {fds2} at the end; "
          f"RSS {rss0} -> {rss2} kB; /auth after: {still}; alive: {alive}; SIGTERM to exit "
          f"{stop_s:.1f} s, exit code {rc}")
    bad = r["errors"] + sum(v for k, v in r["status"].items() if k != 200)
    p99 = r["p99"] if r["p99"] is not None else 1e9
    ok = p99 < 10 and bad == 0 and alive and r["requests"] > 0 and rc == 0
    print(f"  /auth p99 with the slow clients = {p99} ms (baseline {base['p99']} ms), "
          f"{r['requests']} requests, errors {bad}; target p99 < 10 ms, 0 errors: "
          f"{sc.verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
