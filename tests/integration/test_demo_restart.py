#!/usr/bin/env python3
"""Issue 11 item 3: the `make run` demo survives a restart. `rolegate serve
--demo` run twice on one store starts the fixture IdP again (on the port of
[demo] idp_port, here through its documented override
ROLEGATE_DEMO_IDP_PORT) and prints the login URL again, and a whole login
works both times; a port in use names the listener and the option that
changes it, before anything is written to the store. Real binary, real
fixture IdP child, loopback sockets."""
import os
import re
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, run_all, free_port  # noqa: E402
from test_saml_common import Browser, _up  # noqa: E402


class DemoGate(harness.Rolegate):
    """rolegate serve --demo from the repository root (the demo reads
    idp-fixtures/), with the harness's temp dir for everything else."""

    def __init__(self, idp_port, **kw):
        super().__init__(config={"demo": {"enabled": True}}, start=False, **kw)
        self.env["ROLEGATE_DEMO_IDP_PORT"] = str(idp_port)
        self.idp_port = idp_port

    def run(self):
        out = open(self.stdout_path, "wb")
        err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([harness.BIN, "serve", "-c", self.config_path, "--demo"],
                                     cwd=harness.ROOT, env=self.env, stdout=out, stderr=err)
        out.close()
        err.close()
        return self

    def start(self):
        self.run()
        harness.wait_until(lambda: "rolegate: admin URL" in self.stdout_text()
                           or self.proc.poll() is not None, 20, "rolegate start")
        assert self.proc.poll() is None, self.stderr_text()[-2000:]
        return self

    def login_url(self):
        m = re.search(r"rolegate: demo login: (\S+)", self.stdout_text())
        assert m, self.stdout_text()
        return m.group(1).replace("http://localhost:8080", f"http://127.0.0.1:{self.public_port}")


def demo_login(rg):
    b = Browser()
    st, hd, _ = b.get(rg.login_url())
    loc = Browser.location(hd)
    assert st == 302 and loc.startswith(f"http://127.0.0.1:{rg.idp_port}/saml/sso?"), (st, loc)
    st, _, data = b.get(loc)
    assert st == 200, (st, data[:300])
    action, fields = Browser.form(data)
    st, hd, data = b.post_form(action, fields)
    assert st == 302 and Browser.location(hd) == "/whoami", (st, hd, data[:300])
    st, _, data = b.get(f"http://127.0.0.1:{rg.public_port}/whoami")
    assert st == 200 and b"demo@example.com" in data, (st, data[:400])


@test
def test_item3_demo_restarts_with_its_idp_and_login_url():
    p1, p2 = free_port(), free_port()
    rg = DemoGate(p1).start()
    try:
        assert "rolegate: demo login: " in rg.stdout_text(), rg.stdout_text()
        assert f"fixture IdP on http://127.0.0.1:{p1}" in rg.stdout_text(), rg.stdout_text()
        harness.wait_until(lambda: _up(p1), 10, "fixture IdP")
        demo_login(rg)
        orgs = rg.admin("GET", "/organizations")[2]["data"]
        assert len(orgs) == 1, orgs
        rg.stop()
        # the second start: same store, another IdP port (today: no IdP, no URL)
        rg.idp_port = p2
        rg.env["ROLEGATE_DEMO_IDP_PORT"] = str(p2)
        open(rg.stdout_path, "w").close()
        rg.start()
        assert "rolegate: demo login: " in rg.stdout_text(), rg.stdout_text()
        assert f"fixture IdP on http://127.0.0.1:{p2}" in rg.stdout_text(), rg.stdout_text()
        harness.wait_until(lambda: _up(p2), 10, "fixture IdP after restart")
        assert not _up(p1), "the first IdP died with the first gateway"
        demo_login(rg)
        orgs = rg.admin("GET", "/organizations")[2]["data"]
        assert len(orgs) == 1, ("no second demo organization", orgs)
        rg.stop()
    finally:
        rg.close()


@test
def test_item3_port_in_use_named_before_the_store_is_written():
    busy = socket.socket()
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        for case in ("demo", "public"):
            rg = DemoGate(port if case == "demo" else free_port())
            if case == "public":
                rg.env["ROLEGATE_PUBLIC_LISTEN"] = f"127.0.0.1:{port}"
            try:
                rg.run()
                rc = rg.proc.wait(20)
                err = rg.stderr_text()
                assert rc == 1, (rc, err)
                if case == "demo":
                    assert "demo fixture IdP" in err and "ROLEGATE_DEMO_IDP_PORT" in err, err
                    assert "[demo] idp_port" in err, err
                else:
                    assert "public listener" in err and "[server] public_listen" in err, err
                assert f":{port}" in err and "in use" in err, err
                db = os.path.join(rg.dir, "var", "rolegate.db")
                assert not os.path.exists(db), "the store was written before the check"
                rg.proc = None
            finally:
                rg.close()
    finally:
        busy.close()


if __name__ == "__main__":
    run_all()
