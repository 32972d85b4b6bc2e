#!/usr/bin/env python3
"""Admin API over HTTP: what every endpoint shares (auth, 400/404/405/413/415/
422 and "a failed request changes nothing"), plus the small client the other
test_api_*.py files import (Api, server, events_of, wait_for, env_roles). Run directly,
it runs its own tests; imported, it only provides the helpers."""
import contextlib
import http.client
import json
import os
import shutil
import sys

sys.dont_write_bytecode = True  # keep the work tree clean

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class Api:
    """A tiny JSON client for the admin listener. Every call returns
    (status, parsed JSON body or None). One keep-alive connection per Api
    object: use one Api per thread."""

    def __init__(self, host, port, key):
        self.host, self.port, self.key = host, port, key
        self.conn = None
        self.last_headers = {}

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def clone(self):
        return Api(self.host, self.port, self.key)

    def raw(self, method, path, body=None, headers=None, key=True):
        """body: bytes or None, sent as is. Returns (status, bytes, headers)."""
        h = {}
        if key is True:
            h["Authorization"] = "Bearer " + self.key
        elif key:
            h["Authorization"] = key
        if body is not None and "Content-Type" not in (headers or {}):
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                self.last_headers = {k.lower(): v for k, v in r.getheaders()}
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, data, self.last_headers
            except (http.client.RemoteDisconnected, ConnectionResetError,
                    BrokenPipeError, http.client.CannotSendRequest):
                # a kept-alive connection the server closed: retry once, fresh
                self.close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def call(self, method, path, obj=None, **kw):
        body = None if obj is None else json.dumps(obj).encode()
        st, data, _ = self.raw(method, path, body, **kw)
        try:
            return st, (json.loads(data) if data else None)
        except ValueError:
            raise AssertionError(f"{method} {path}: {st} with a body that is not JSON: "
                                 f"{data[:200]!r}")

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, obj=None, **kw):
        return self.call("POST", path, {} if obj is None else obj, **kw)

    def put(self, path, obj, **kw):
        return self.call("PUT", path, obj, **kw)

    def patch(self, path, obj, **kw):
        return self.call("PATCH", path, obj, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


def _started(**kw):
    """A harness.Rolegate that is really ours: the ports come from bind(0)
    and are free again before the binary binds them, so on a busy machine
    another process can take one in between (and even answer /healthz for
    us). Our own log line event=started proves both listeners are ours;
    otherwise start again on new ports."""
    last = None
    for _ in range(5):
        rg = harness.Rolegate(start=False, **kw)
        try:
            rg.start()
            harness.wait_until(lambda: "event=started" in rg.log_text()
                               or rg.proc.poll() is not None, 10, "event=started")
            if "event=started" in rg.log_text() and rg.proc.poll() is None:
                return rg
            last = rg.stderr_text()[-500:]
        except AssertionError as e:
            last = str(e)
        rg.kill()
        shutil.rmtree(rg.dir, ignore_errors=True)
    raise AssertionError(f"rolegate did not start on free ports: {last}")


@contextlib.contextmanager
def server(**kw):
    """Starts the real binary on free loopback ports; yields an Api."""
    with _started(**kw) as rg:
        api = Api("127.0.0.1", rg.admin_port, rg.admin_key)
        api.rg = rg
        try:
            yield api
        finally:
            api.close()


def slugs_of(lst):
    return [r["slug"] for r in lst["data"]]


def events_of(api):
    """Every event, oldest first, following the cursor (R26)."""
    out, after = [], None
    while True:
        q = "/events?limit=100" + (f"&after={after}" if after else "")
        st, page = api.get(q)
        assert st == 200, (st, page)
        out += page["data"]
        after = page["list_metadata"]["after"]
        if not after:
            return out
        assert len(out) < 1_000_000


def list_all(api, path, limit=100):
    """Every object of a paginated list, following list_metadata.after."""
    out, after = [], None
    sep = "&" if "?" in path else "?"
    while True:
        st, page = api.get(f"{path}{sep}limit={limit}" + (f"&after={after}" if after else ""))
        assert st == 200, (path, st, page)
        out += page["data"]
        after = page["list_metadata"]["after"]
        if not after:
            return out


wait_for = harness.wait_until   # (pred, seconds, what)


def env_roles(api, *slugs):
    """Creates an environment role of each slug (named as the slug)."""
    for s in slugs:
        st, r = api.post("/authorization/roles", {"slug": s, "name": s})
        assert st == 201, (s, st, r)


def snapshot(api):
    """What the read-backs compare: every list an admin can see, and events."""
    return {
        "permissions": list_all(api, "/authorization/permissions"),
        "roles": api.get("/authorization/roles")[1]["data"],
        "environment": api.get("/environment")[1],
        "organizations": list_all(api, "/organizations"),
        "users": list_all(api, "/user_management/users"),
        "memberships": list_all(api, "/user_management/organization_memberships"),
        "events": events_of(api),
    }


def _register_tests():
    test = harness.test

    @test
    def test_401_missing_or_wrong_key():
        with server() as api:
            st, e = api.get("/authorization/roles", key=False)
            assert st == 401, (st, e)
            st, e = api.get("/authorization/roles", key="Bearer " + api.key[:-1] + "x")
            assert st == 401, (st, e)
            st, e = api.get("/authorization/roles", key="Basic " + api.key)
            assert st == 401, (st, e)
            st, e = api.post("/authorization/roles", {"slug": "x", "name": "x"}, key=False)
            assert st == 401, (st, e)
            assert api.get("/authorization/roles/x")[0] == 404

    @test
    def test_404_unknown_ids_malformed_or_not():
        with server() as api:
            for p in ("/organizations/org_01HZZZZZZZZZZZZZZZZZZZZZZZ", "/organizations/bogus",
                      "/connections/conn_01HZZZZZZZZZZZZZZZZZZZZZZZ", "/connections/x",
                      "/user_management/users/user_01HZZZZZZZZZZZZZZZZZZZZZZZ",
                      "/user_management/organization_memberships/om_x",
                      "/authorization/roles/ghost", "/authorization/permissions/ghost",
                      "/no/such/path"):
                st, e = api.get(p)
                assert st == 404, (p, st, e)
                assert isinstance(e, dict) and e.get("code"), (p, e)

    @test
    def test_405_wrong_method_on_known_path():
        with server() as api:
            st, e = api.call("DELETE", "/environment")
            assert st == 405, (st, e)
            st, e = api.call("PATCH", "/events", {})
            assert st == 405, (st, e)
            st, e = api.call("POST", "/authorization/roles/priority", {"slugs": []})
            assert st == 405, (st, e)

    @test
    def test_400_truncated_json_reports_byte_offset_changes_nothing():
        with server() as api:
            before = snapshot(api)
            for path in ("/authorization/roles", "/authorization/permissions",
                         "/organizations", "/user_management/users"):
                body = b'{"slug": "admin", "name": "Adm'
                st, data, _ = api.raw("POST", path, body)
                assert st == 400, (path, st, data)
                e = json.loads(data)
                assert e["code"] == "invalid_json", e
                import re
                m = re.search(r"byte (\d+)", e["message"])
                assert m and 1 <= int(m.group(1)) <= len(body), e["message"]
            for body in (b"", b"[", b"{\"a\":1}}", b"\xff\xfe"):
                st, data, _ = api.raw("POST", "/authorization/roles", body)
                assert st == 400, (body, st, data)
            assert snapshot(api) == before

    @test
    def test_422_wrong_types_name_the_field_change_nothing():
        with server() as api:
            org = api.post("/organizations", {"name": "Acme"})[1]["id"]
            before = snapshot(api)
            cases = [
                ("POST", "/authorization/roles", {"slug": 5, "name": "x"}, "slug"),
                ("POST", "/authorization/roles", {"slug": "a", "name": ["x"]}, "name"),
                ("POST", "/authorization/roles", {"slug": "a", "name": "x", "description": 1},
                 "description"),
                ("POST", "/authorization/roles", {"slug": "a", "name": "x", "permissions": "p"},
                 "permissions"),
                ("POST", "/authorization/roles", [1, 2], "body"),
                ("POST", "/authorization/permissions", {"slug": None, "name": "x"}, "slug"),
                ("PATCH", "/authorization/roles/member", {"name": 3}, "name"),
                ("PUT", "/authorization/roles/member/permissions", {"permissions": [1]},
                 "permissions"),
                ("PUT", "/authorization/roles/priority", {"slugs": "member"}, "slugs"),
                ("PATCH", "/environment", {"multiple_roles": 1}, "multiple_roles"),
                ("PATCH", "/environment", {"default_role": False}, "default_role"),
                ("POST", "/organizations", {"name": 7}, "name"),
                ("POST", "/organizations", {"name": "x", "domains": "a.com"}, "domains"),
                ("POST", f"/organizations/{org}/connections", {"type": 1, "name": "x"}, "type"),
                ("POST", f"/organizations/{org}/connections", {"type": "ldap", "name": "x"},
                 "type"),
                ("POST", "/user_management/users", {"email": 5}, "email"),
                ("POST", "/user_management/organization_memberships",
                 {"user_id": 1, "organization_id": org}, "user_id"),
                ("POST", f"/authorization/organizations/{org}/roles", {"name": {}}, "name"),
            ]
            for method, path, body, field in cases:
                st, e = api.call(method, path, body)
                assert st == 422, (method, path, body, st, e)
                fields = [x["field"] for x in e.get("errors", [])]
                assert field in fields, (method, path, body, e)
                assert all(x.get("code") for x in e["errors"]), e
            assert snapshot(api) == before

    @test
    def test_413_ten_mib_body_changes_nothing():
        with server() as api:
            before = snapshot(api)
            big = b'{"slug": "big", "name": "' + b"x" * (10 << 20) + b'"}'
            try:
                st, data, _ = api.raw("POST", "/authorization/roles", big)
            except (BrokenPipeError, ConnectionResetError):
                # the server may answer 413 and close before reading it all;
                # read the answer from a raw socket instead
                st, data = _post_big_raw(api, big)
            assert st == 413, (st, data[:200])
            api.close()
            assert snapshot(api) == before
            # just under the 1 MiB default is fine for the size check (422: name too long)
            mid = b'{"slug": "big", "name": "' + b"x" * 1000 + b'"}'
            st, _, _ = api.raw("POST", "/authorization/roles", mid)
            assert st == 422, st

    @test
    def test_415_wrong_content_type_changes_nothing():
        with server() as api:
            before = snapshot(api)
            body = json.dumps({"slug": "admin", "name": "Admin"}).encode()
            for ct in ("text/plain", "application/x-www-form-urlencoded"):
                st, data, _ = api.raw("POST", "/authorization/roles", body,
                                      headers={"Content-Type": ct})
                assert st == 415, (ct, st, data)
            st, _, _ = api.raw("POST", "/authorization/roles", body,
                               headers={"Content-Type": "application/json; charset=utf-8"})
            assert st == 201, st
            after = snapshot(api)
            assert [r["slug"] for r in after["roles"]] == ["member", "admin"]
            assert len(after["events"]) == len(before["events"]) + 1

    @test
    def test_request_id_header_and_error_shape():
        with server() as api:
            st, data, h = api.raw("GET", "/authorization/roles/ghost")
            assert st == 404 and h.get("x-request-id"), h
            assert h.get("content-type", "").startswith("application/json"), h
            e = json.loads(data)
            assert set(e) >= {"code", "message"}, e

    @test
    def test_R26_events_pagination_in_order_after_cursor():
        with server() as api:
            for i in range(25):
                assert api.post("/authorization/permissions",
                                {"slug": f"p{i:02d}", "name": f"P{i}"})[0] == 201
            st, page = api.get("/events")
            assert st == 200 and len(page["data"]) == 10, page     # default limit 10
            allev = events_of(api)
            assert len(allev) == 25
            assert [e["data"]["slug"] for e in allev] == [f"p{i:02d}" for i in range(25)]
            assert all(e["object"] == "event" and e["id"].startswith("event_") for e in allev)
            assert len({e["id"] for e in allev}) == 25
            st, page = api.get(f"/events?after={allev[9]['id']}&limit=10")
            assert [e["id"] for e in page["data"]] == [e["id"] for e in allev[10:20]]
            st, page = api.get(f"/events?after={allev[19]['id']}&limit=10")
            assert len(page["data"]) == 5 and page["list_metadata"]["after"] is None, page
            for bad in ("limit=0", "limit=101", "limit=x"):
                st, e = api.get("/events?" + bad)
                assert st == 422 and e["errors"][0]["field"] == "limit", (bad, st, e)

    @test
    def test_list_pagination_limit_before_after_order():
        with server() as api:
            ids = []
            for i in range(23):
                st, o = api.post("/organizations", {"name": f"Org {i}"})
                assert st == 201, (st, o)
                ids.append(o["id"])
            st, p = api.get("/organizations")
            assert st == 200 and len(p["data"]) == 10, p            # default 10
            everything = list_all(api, "/organizations", limit=7)
            got = [o["id"] for o in everything]
            assert sorted(got) == sorted(ids) and len(set(got)) == 23, got
            st, asc = api.get("/organizations?order=asc&limit=100")
            st, desc = api.get("/organizations?order=desc&limit=100")
            a = [o["id"] for o in asc["data"]]
            d = [o["id"] for o in desc["data"]]
            assert a == sorted(ids) and d == sorted(ids, reverse=True), (a, d)
            st, p = api.get(f"/organizations?order=asc&limit=5&after={a[4]}")
            assert [o["id"] for o in p["data"]] == a[5:10], p
            assert p["list_metadata"]["before"] == a[5], p["list_metadata"]
            st, p = api.get(f"/organizations?order=asc&limit=5&before={a[10]}")
            assert [o["id"] for o in p["data"]] == a[5:10], p
            st, p = api.get("/organizations?limit=100")
            assert len(p["data"]) == 23 and p["list_metadata"]["after"] is None
            for bad in ("limit=0", "limit=101", "order=sideways"):
                st, e = api.get("/organizations?" + bad)
                assert st == 422, (bad, st, e)


def _post_big_raw(api, body):
    import socket
    s = socket.create_connection((api.host, api.port), timeout=30)
    head = (f"POST /authorization/roles HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {api.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    s.sendall(head)
    try:
        s.sendall(body)
    except OSError:
        pass
    data = b""
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            data += c
    except OSError:
        pass
    s.close()
    line = data.split(b"\r\n", 1)[0].split()
    return int(line[1]), data


if __name__ == "__main__":
    _register_tests()
    harness.run_all()
