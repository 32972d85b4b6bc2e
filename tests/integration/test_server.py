#!/usr/bin/env python3
"""The HTTP server and command line, over real sockets: health routes, the
admin bearer key, 404/405/413 JSON errors, X-Request-Id and the one log line
per request, keep-alive, SIGTERM drain, SIGHUP log reopen, the generated
admin key file, and check-config."""
import http.client
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, run_all, Rolegate, wait_until  # noqa: E402


def raw_exchange(port, head, body_parts=(), timeout=10):
    """Sends head then each body part; returns (status, raw reply bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(head)
        for p in body_parts:
            try:
                s.sendall(p)
            except OSError:
                break
        data = read_reply(s)
        return int(data.split(b" ", 2)[1]), data
    finally:
        s.close()


def read_reply(s):
    """Reads one response from socket s: its head and Content-Length bytes,
    or what came before the peer closed."""
    data = b""
    while b"\r\n\r\n" not in data or len(data) < _expected_len(data):
        c = s.recv(65536)
        if not c:
            break
        data += c
    return data


def _expected_len(data):
    head, _, _ = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    return len(head) + 4 + (int(m.group(1)) if m else 0)


@test
def test_healthz_and_readyz():
    with Rolegate() as rg:
        st, h, body = rg.public("GET", "/healthz")
        assert st == 200 and body == {"status": "ok"}, (st, body)
        assert h["content-type"].startswith("application/json"), h
        st, _, body = rg.public("GET", "/readyz")
        assert st == 200 and body == {"status": "ready"}, (st, body)
        st, h, body = rg.public("HEAD", "/healthz")
        assert st == 200 and body == "", (st, body)
        st, _, body = rg.public("GET", "/healthz/")   # one trailing slash is the same path
        assert st == 200, st


@test
def test_admin_401_without_or_with_wrong_key():
    with Rolegate() as rg:
        st, h, e = rg.admin("GET", "/healthz", key=False)
        assert st == 401 and e["code"] == "unauthorized", (st, e)
        assert h.get("www-authenticate") == "Bearer", h
        wrong = rg.admin_key[:-1] + ("x" if rg.admin_key[-1] != "x" else "y")
        for auth in ("Bearer " + wrong, "Bearer " + rg.admin_key + "x",
                     "Bearer " + rg.admin_key[:-1], "Basic " + rg.admin_key, "Bearer ",
                     rg.admin_key):
            st, _, e = rg.admin("GET", "/healthz", key=auth)
            assert st == 401 and e["code"] == "unauthorized", (auth, st, e)
        # unknown paths do not reveal themselves without the key
        st, _, e = rg.admin("GET", "/no/such/path", key=False)
        assert st == 401, (st, e)
        st, _, body = rg.admin("GET", "/healthz")
        assert st == 200 and body == {"status": "ok"}, (st, body)
        # the public listener takes no key
        assert rg.public("GET", "/healthz", headers={"Authorization": "Bearer x"})[0] == 200


@test
def test_404_json_on_unknown_path():
    with Rolegate() as rg:
        for call in (rg.public, rg.admin):
            st, h, e = call("GET", "/no/such/path")
            assert st == 404, st
            assert h["content-type"].startswith("application/json"), h
            assert e["code"] == "not_found" and e["message"] and e["errors"] == [], e
        st, _, _ = rg.public("GET", "//healthz")
        assert st == 404, st


@test
def test_405_with_allow():
    with Rolegate() as rg:
        for method in ("POST", "DELETE", "PUT", "PATCH"):
            st, h, e = rg.public(method, "/healthz", body=b"" if method != "DELETE" else None)
            assert st == 405, (method, st)
            allow = [m.strip() for m in h["allow"].split(",")]
            assert "GET" in allow and "HEAD" in allow and method not in allow, h
            assert e["code"] == "method_not_allowed", e


@test
def test_413_declared_content_length_answered_before_body():
    with Rolegate() as rg:
        for port, auth in ((rg.public_port, b""),
                           (rg.admin_port, b"Authorization: Bearer " + rg.admin_key.encode()
                            + b"\r\n")):
            head = (b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                    + auth + b"Content-Length: %d\r\n\r\n" % (10 << 20))
            t0 = time.monotonic()
            st, data = raw_exchange(port, head, timeout=5)   # no body byte is ever sent
            assert st == 413, data[:300]
            assert b'"body_too_large"' in data, data
            assert time.monotonic() - t0 < 5
        # a body just under the limit is read (and answered 405 for this route)
        st, _, e = rg.public("POST", "/healthz", body=b"x" * 1000)
        assert st == 405, (st, e)


@test
def test_413_oversized_chunked_body():
    with Rolegate(config={"server": {"max_body": "64k"}}) as rg:
        head = b"POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunk = b"x" * 16384
        parts = [b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(8)] + [b"0\r\n\r\n"]
        st, data = raw_exchange(rg.public_port, head, parts)
        assert st == 413 and b'"body_too_large"' in data, data[:300]
        # under the limit, chunked is fine (405: /healthz takes no POST)
        st, data = raw_exchange(rg.public_port, head, parts[:2] + [b"0\r\n\r\n"])
        assert st == 405, data[:300]


@test
def test_header_block_over_40k_gets_a_clean_431_and_38k_is_served():
    """The connection's memory (CONN_MEMORY_LIMIT 40 KiB, down from 64 KiB:
    MHD zeroes all of it at every request, issue 17) holds more than nginx's
    default large_client_header_buffers (4 x 8k) lets through: a 38 kB
    header block is served, in one field or in twenty; a 50 kB one (served
    at 64 KiB) is answered 431 in full and the listener serves on."""
    with Rolegate() as rg:
        for n, fields, want in ((38000, 1, 200), (38000, 20, 200), (50000, 1, 431)):
            pad = "".join(f"X-Pad-{i}: {'a' * (n // fields)}\r\n" for i in range(fields))
            st, data = raw_exchange(rg.public_port,
                                    f"GET /healthz HTTP/1.1\r\nHost: t\r\n{pad}\r\n".encode())
            assert st == want, (n, fields, data[:200])
            assert len(data) >= _expected_len(data), (n, data[:200])   # answered in full
        assert rg.public("GET", "/healthz")[0] == 200


@test
def test_request_id_header_unique_and_in_log():
    with Rolegate() as rg:
        ids = set()
        for path in ("/healthz", "/nope", "/readyz"):
            st, h, _ = rg.public("GET", path)
            rid = h.get("x-request-id", "")
            assert re.fullmatch(r"req_[0-9A-HJKMNP-TV-Z]{26}", rid), h
            ids.add(rid)
        assert len(ids) == 3
        wait_until(lambda: all(f"rid={i}" in rg.log_text() for i in ids), 10, "log lines")


@test
def test_one_log_line_per_request_without_secrets():
    with Rolegate() as rg:
        secret_q = "SECRETQUERYVALUE123"
        st, h, _ = rg.admin("GET", f"/healthz?code={secret_q}&token=abc")
        assert st == 200, st
        rid = h["x-request-id"]
        st, h2, _ = rg.admin("GET", "/healthz", key="Bearer wrongwrongwrong")
        assert st == 401
        rid2 = h2["x-request-id"]
        # each line is written once its answer has gone out, by the thread
        # that served it: the two connections' lines may land in either order
        wait_until(lambda: f"rid={rid}" in rg.log_text() and f"rid={rid2}" in rg.log_text(),
                   10, "both log lines")
        lines = [ln for ln in rg.log_lines() if f"rid={rid}" in ln]
        assert len(lines) == 1, lines
        ln = lines[0]
        for part in ("method=GET", "path=/healthz ", "status=200", "listener=admin"):
            assert part in ln, (part, ln)
        assert re.search(r"dur_us=\d+", ln), ln
        # the whole line, as the request line's own formatter makes it
        assert re.fullmatch(r"ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info "
                            r"event=http listener=admin method=GET path=/healthz status=200 "
                            r"dur_us=\d+ rid=" + re.escape(rid) + r" peer=127\.0\.0\.1", ln), ln
        assert len([x for x in rg.log_lines() if f"rid={rid2}" in x]) == 1
        assert "status=401" in [x for x in rg.log_lines() if f"rid={rid2}" in x][0]
        text = rg.log_text()
        assert rg.admin_key not in text, "the admin key is in the log"
        assert "wrongwrongwrong" not in text, "an Authorization value is in the log"
        assert secret_q not in text and "token=abc" not in text, "query string logged"
        assert rg.admin_key not in rg.stdout_text() + rg.stderr_text()


@test
def test_keep_alive_two_requests_on_one_connection():
    with Rolegate() as rg:
        c = http.client.HTTPConnection("127.0.0.1", rg.public_port, timeout=10)
        try:
            c.request("GET", "/healthz")
            r = c.getresponse()
            r.read()
            assert r.status == 200 and (r.getheader("Connection") or "").lower() != "close"
            sock = c.sock
            assert sock is not None, "the server closed the connection"
            c.request("GET", "/readyz")
            r = c.getresponse()
            r.read()
            assert r.status == 200
            assert c.sock is sock, "a second connection was opened"
            # an error answer (404) keeps the connection too
            c.request("GET", "/nope")
            r = c.getresponse()
            r.read()
            assert r.status == 404 and c.sock is sock
        finally:
            c.close()


@test
def test_sigterm_drains_in_flight_request_then_exits_0():
    rg = Rolegate()
    try:
        s = socket.create_connection(("127.0.0.1", rg.public_port), timeout=10)
        # "100 Continue" comes once the server has taken the request in
        s.sendall(b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got:
            c = s.recv(1024)
            assert c, "closed before 100 Continue"
            got += c
        assert got.startswith(b"HTTP/1.1 100"), got
        s.sendall(b"12345")                  # the request is now in flight
        time.sleep(0.2)
        rg.signal(signal.SIGTERM)
        time.sleep(0.5)
        assert rg.proc.poll() is None, "exited with a request in flight"
        # no new connections while draining
        try:
            socket.create_connection(("127.0.0.1", rg.public_port), timeout=2).close()
            refused = False
        except OSError:
            refused = True
        assert refused, "still accepting connections after SIGTERM"
        s.sendall(b"67890")
        data = read_reply(s)
        s.close()
        assert data.startswith(b"HTTP/1.1 405"), data[:200]   # answered in full
        rc = rg.proc.wait(timeout=15)
        assert rc == 0, rc
        assert "event=stopped" in rg.log_text()
    finally:
        rg.close()


@test
def test_sigterm_under_keep_alive_load_exits_0_and_loses_no_request():
    """rolegate's own accept thread replaced MHD_quiesce_daemon, which raced
    its epoll pool threads and aborted the process at shutdown (MHD 0.9.75
    MHD_PANIC "Failed to remove listen FD from epoll set"). Every request
    sent either gets its 200 in full or never reaches the server (refused at
    connect, or a keep-alive connection closed before a byte of answer): no
    5xx, no answer cut short, exit 0, five times over. Beside them, clients
    with a fresh connection per request: one that connected and sent is
    never reset (the kernel had queued it; closing the listening socket over
    the backlog reset it: 0-3 a round before the drain filter), it is
    answered or refused at connect."""
    import threading
    for rnd in range(5):
        rg = Rolegate(config={"server": {"threads": 4}})
        stop = threading.Event()
        bad, ok = [], [0]

        def client():
            c = None
            while not stop.is_set():
                try:
                    if c is None:
                        c = http.client.HTTPConnection("127.0.0.1", rg.public_port, timeout=10)
                    c.request("GET", "/healthz")
                    r = c.getresponse()
                    body = r.read()
                    if r.status != 200 or b"ok" not in body.lower():
                        bad.append((r.status, body[:80]))
                    ok[0] += 1
                    if r.getheader("Connection", "").lower() == "close":
                        c.close()
                        c = None
                except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError,
                        http.client.RemoteDisconnected):
                    if c:
                        c.close()
                    c = None
                    if rg.proc.poll() is not None:
                        break
                    time.sleep(0.01)
                except (http.client.IncompleteRead, socket.timeout) as e:
                    bad.append(repr(e))
                    break
        def fresh_client():
            while not stop.is_set():
                try:
                    c = socket.create_connection(("127.0.0.1", rg.public_port), timeout=10)
                except ConnectionRefusedError:
                    if rg.proc.poll() is not None or stop.is_set():
                        break
                    time.sleep(0.01)
                    continue
                try:
                    c.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    got = c.recv(65536)
                except OSError as e:
                    got = repr(e).encode()
                finally:
                    c.close()
                if got.startswith(b"HTTP/1.1 200"):
                    ok[0] += 1
                else:
                    bad.append(("fresh connection, request sent, no answer", got[:80]))
        try:
            ts = [threading.Thread(target=client) for _ in range(16)]
            ts += [threading.Thread(target=fresh_client) for _ in range(16)]
            for t in ts:
                t.start()
            wait_until(lambda: ok[0] > 200, 10, "load running")
            rg.signal(signal.SIGTERM)
            rc = rg.proc.wait(timeout=20)
            stop.set()
            for t in ts:
                t.join(15)
            err = open(rg.stderr_path, errors="replace").read()
            assert rc == 0, (rnd, rc, err[-500:])
            assert "epoll" not in err and "panic" not in err.lower(), err[-500:]
            drain = [l for l in rg.log_text().splitlines() if "event=stopped" in l]
            assert not bad, (rnd, bad[:5], drain)
            assert drain
        finally:
            stop.set()
            rg.close()


@test
def test_at_the_connection_limit_a_new_client_waits_then_is_served():
    """[server] max_connections = 2: a third client is not reset; it waits in
    the listen backlog and is served once a connection frees up."""
    with Rolegate(config={"server": {"max_connections": 2}}) as rg:
        held = [http.client.HTTPConnection("127.0.0.1", rg.public_port, timeout=10)
                for _ in range(2)]
        for c in held:
            c.request("GET", "/healthz")
            assert c.getresponse().read() is not None
        third = socket.create_connection(("127.0.0.1", rg.public_port), timeout=10)
        third.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        third.settimeout(0.5)
        try:
            early = third.recv(100)
        except socket.timeout:
            early = None
        assert early is None, f"served past the limit of 2: {early!r}"
        held[0].close()
        third.settimeout(10)
        data = b""
        while True:
            c = third.recv(65536)
            if not c:
                break
            data += c
        third.close()
        held[1].close()
        assert data.startswith(b"HTTP/1.1 200"), data[:200]


def _closed_within(sock, seconds):
    """Reads until the server closes (EOF or reset); returns (seconds taken,
    bytes received), or (None, bytes) if still open after `seconds`."""
    t0 = time.monotonic()
    got = b""
    sock.settimeout(0.2)
    while time.monotonic() - t0 < seconds:
        try:
            c = sock.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - t0, got
        if not c:
            return time.monotonic() - t0, got
        got += c
    return None, got


def _trickled_headers_cut(s):
    """Trickles one header byte every 0.3 s on s (each byte resets the 30 s
    idle timeout) for up to 9 s; returns the seconds until the server
    closed the connection, None if it did not. An answer fails."""
    t0 = time.monotonic()
    for i in range(30):
        try:
            s.sendall(b"X"[:1] if i % 2 else b"-")
        except OSError:
            return time.monotonic() - t0
        s.settimeout(0.3)
        try:
            c = s.recv(4096)
            if not c:
                return time.monotonic() - t0
            raise AssertionError(f"answered a request never finished: {c[:80]!r}")
        except socket.timeout:
            pass
        except OSError:
            return time.monotonic() - t0
    return None


@test
def test_slow_headers_are_cut_at_request_timeout_whatever_they_trickle():
    """[server] request_timeout = 2: a request line then one header byte
    every 0.3 s is closed within request_timeout + a watcher tick, never
    answered, and logged; so is one trickled on a keep-alive connection
    after a request answered on it (the guard's mark is then sampled by its
    watcher, not taken at the end of the request: issue 17)."""
    with Rolegate(config={"server": {"request_timeout": 2}}) as rg:
        s = socket.create_connection(("127.0.0.1", rg.public_port), timeout=10)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        took = _trickled_headers_cut(s)
        s.close()
        assert took is not None, "a trickling client kept its connection for 9 s"
        assert 1.8 <= took <= 4.5, took
        wait_until(lambda: "event=request_timeout listener=public phase=headers" in rg.log_text(),
                   5, "the cut logged")
        assert rg.public("GET", "/healthz")[0] == 200   # the listener serves on

        s = socket.create_connection(("127.0.0.1", rg.public_port), timeout=10)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got or len(got) < _expected_len(got):
            c = s.recv(65536)
            assert c, "closed before its answer"
            got += c
        assert got.startswith(b"HTTP/1.1 200"), got[:100]
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        took = _trickled_headers_cut(s)
        s.close()
        assert took is not None, "a request trickled after another kept its connection for 9 s"
        assert 1.8 <= took <= 4.75, took


@test
def test_slow_body_is_cut_but_an_idle_keep_alive_connection_is_not():
    """request_timeout = 2: a 100 kB body trickled at 50 B/s is closed (its
    allowance is 2 s + 1 s per 8 KiB received); a keep-alive connection idle
    for 3 s between two requests is still served (idle is connection_timeout's)."""
    with Rolegate(config={"server": {"request_timeout": 2}}) as rg:
        c = http.client.HTTPConnection("127.0.0.1", rg.public_port, timeout=10)
        c.request("GET", "/healthz")
        assert c.getresponse().read() is not None
        time.sleep(3.0)
        c.request("GET", "/healthz")
        r = c.getresponse()
        assert r.status == 200, r.status
        r.read()
        c.close()

        s = socket.create_connection(("127.0.0.1", rg.public_port), timeout=10)
        s.sendall(b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
        t0 = time.monotonic()
        closed = False
        while time.monotonic() - t0 < 9:
            try:
                s.sendall(b"a" * 10)
            except OSError:
                closed = True
                break
            took, got = _closed_within(s, 0.2)
            if took is not None:
                closed = True
                break
        took = time.monotonic() - t0
        s.close()
        assert closed, "a trickled body kept its connection for 9 s"
        assert took <= 5, took
        wait_until(lambda: "phase=body" in rg.log_text(), 5, "the body cut logged")


@test
def test_busy_keep_alive_connections_are_not_cut_by_the_slow_client_guard():
    """request_timeout = 1 under wrk -c100 for 3 s on /healthz: a busy
    keep-alive connection's next request nearly always waits in MHD's queue
    (bytes beyond the guard's mark, headers not handed over), which the
    guard took for one slow request and cut after a second of such samples
    although requests were answered all along (57 cuts, wrk's read errors,
    before the fix; soak_keepalive's 3 in 60 s at request_timeout 10)."""
    wrk = shutil.which("wrk")
    assert wrk, "wrk missing (apt-get install wrk)"
    with Rolegate(config={"server": {"request_timeout": 1}}) as rg:
        out = subprocess.run([wrk, "-t2", "-c100", "-d3s", "--timeout=2s",
                              f"http://127.0.0.1:{rg.public_port}/healthz"],
                             capture_output=True, text=True, timeout=30).stdout
        n = int(re.search(r"(\d+) requests in", out).group(1))
        assert n > 1000, out
        assert "Socket errors" not in out and "Non-2xx" not in out, out
        assert "event=request_timeout" not in rg.log_text(), "a busy connection was cut"


@test
def test_sigint_exits_0():
    rg = Rolegate()
    try:
        rg.signal(signal.SIGINT)
        assert rg.proc.wait(timeout=15) == 0
    finally:
        rg.close()


@test
def test_sighup_reopens_the_log_file():
    with Rolegate() as rg:
        assert rg.public("GET", "/healthz")[0] == 200
        wait_until(lambda: "path=/healthz" in rg.log_text(), 10, "first log line")
        rotated = rg.log_path + ".1"
        os.rename(rg.log_path, rotated)
        rg.signal(signal.SIGHUP)
        wait_until(lambda: os.path.exists(rg.log_path), 10, "a new log file")
        st, h, _ = rg.public("GET", "/readyz")
        rid = h["x-request-id"]
        wait_until(lambda: f"rid={rid}" in rg.log_text(), 10, "the request in the new log")
        with open(rotated) as f:
            assert f"rid={rid}" not in f.read(), "logged to the rotated file"


@test
def test_admin_key_generated_once_mode_0600_never_printed():
    rg = Rolegate(admin_key=None)
    try:
        keyfile = os.path.join(rg.dir, "var", "admin.key")
        mode = stat.S_IMODE(os.stat(keyfile).st_mode)
        assert mode == 0o600, oct(mode)
        key = rg.admin_key
        assert len(key) >= 40, key
        assert rg.admin("GET", "/healthz")[0] == 200
        out = rg.stdout_text()
        assert keyfile in out or "admin.key" in out, out
        assert key not in out + rg.stderr_text() + rg.log_text(), "the key was printed"
        rg.stop()
        rg.start()                                         # the same key on restart
        with open(keyfile) as f:
            assert f.read().strip() == key
        assert rg.admin("GET", "/healthz")[0] == 200
        rg.stop()
    finally:
        rg.close()


def run_bin(*args, env=None):
    p = subprocess.run([harness.BIN, *args], capture_output=True, text=True, timeout=30,
                       env=env)
    return p.returncode, p.stdout + p.stderr


@test
def test_check_config_valid_0_invalid_2_with_file_and_line():
    with tempfile.TemporaryDirectory(prefix="rolegate-cc-") as d:
        _check_config_in(d)


def _check_config_in(d):
    good = os.path.join(d, "good.conf")
    with open(good, "w") as f:
        f.write("[server]\npublic_listen = 127.0.0.1:9000\n[session]\nlifetime = 2h\n")
    rc, out = run_bin("check-config", good)
    assert rc == 0, (rc, out)
    shipped = os.path.join(harness.ROOT, "etc", "rolegate.conf")
    rc, out = run_bin("check-config", shipped)
    assert rc == 0, ("etc/rolegate.conf", rc, out)
    bad = os.path.join(d, "bad.conf")
    with open(bad, "w") as f:
        f.write("[server]\npublic_listen = 0.0.0.0:99999\nno_such_option = 1\n"
                "[session]\noversize = sometimes\n[nosection]\nx = 1\n")
    rc, out = run_bin("check-config", bad)
    assert rc == 2, (rc, out)
    assert f"{bad}:2: server.public_listen:" in out, out
    assert f"{bad}:3: server.no_such_option: unknown option" in out, out
    assert f"{bad}:5: session.oversize:" in out, out
    assert f"{bad}:6:" in out and "unknown section" in out, out
    rc, out = run_bin("check-config", os.path.join(d, "missing.conf"))
    assert rc == 2, (rc, out)
    # serve refuses a bad config the same way
    rc, out = run_bin("serve", "-c", bad)
    assert rc == 2 and f"{bad}:2:" in out, (rc, out)


@test
def test_usage_on_unknown_command_exit_2():
    rc, out = run_bin("frobnicate")   # issue 11 item 8: named, not a bare usage
    assert rc == 2 and "unknown command 'frobnicate'" in out, (rc, out)
    rc, out = run_bin()
    assert rc == 2 and "usage" in out, (rc, out)
    rc, out = run_bin("--help")       # item 8: help is not an error
    assert rc == 0 and "check-config" in out, (rc, out)


@test
def test_environment_overrides_the_file():
    p1, p2 = harness.free_port(), harness.free_port()
    rg = Rolegate(env={"ROLEGATE_PUBLIC_LISTEN": f"127.0.0.1:{p1}",
                       "ROLEGATE_ADMIN_LISTEN": f"127.0.0.1:{p2}"}, start=False)
    rg.public_port, rg.admin_port = p1, p2
    rg.start()
    try:
        assert rg.admin("GET", "/healthz")[0] == 200
        rg.stop()
    finally:
        rg.close()


@test
def test_generic_env_override_checked_and_listed_by_check_config():
    """Issue 13: ROLEGATE_<SECTION>_<OPTION> for every option, checked like the
    file by serve and by check-config --env, listed by check-config --list."""
    shipped = os.path.join(harness.ROOT, "etc", "rolegate.conf")
    rc, out = run_bin("check-config", "--list")
    assert rc == 0, (rc, out)
    rows = [l.split() for l in out.splitlines()]
    assert ["session.lifetime", "ROLEGATE_SESSION_LIFETIME"] in [r[:2] for r in rows], out
    assert all(len(r) >= 2 and r[1].startswith("ROLEGATE_") for r in rows), out
    env = dict(os.environ, ROLEGATE_SESSION_LIFETIME="2h", ROLEGATE_SERVER_THREADS="3")
    rc, out = run_bin("check-config", "--env", shipped, env=env)
    assert rc == 0 and "ROLEGATE_SESSION_LIFETIME overrides session.lifetime" in out, out
    env["ROLEGATE_SERVER_THREADS"] = "lots"
    rc, out = run_bin("check-config", "--env", shipped, env=env)
    assert rc == 2 and "environment: ROLEGATE_SERVER_THREADS: server.threads: must be an integer" in out, out
    rc, out = run_bin("check-config", shipped, env=env)   # the file alone: still ok
    assert rc == 0, out
    rc, out = run_bin("serve", "-c", shipped, env=env)     # serve reads it: refused
    assert rc == 2 and "ROLEGATE_SERVER_THREADS" in out, (rc, out)
    env["ROLEGATE_SERVER_THREADS"] = "3"
    env["ROLEGATE_SESSION_LIFETIM"] = "1h"                 # a typo is an error
    rc, out = run_bin("check-config", "--env", shipped, env=env)
    assert rc == 2 and "ROLEGATE_SESSION_LIFETIM: unknown option" in out, out


if __name__ == "__main__":
    run_all()
