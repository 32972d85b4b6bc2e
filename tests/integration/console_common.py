"""What the browser tests of the console and the portal share
(test_console_browser.py, test_console_portal.py): running one scenario of
a tests/browser/ driver in chromium, where screenshots go, and a metadata
that the lint refuses."""
import http.client
import json
import os
import subprocess

import harness
from test_saml_common import BUILD

ROOT = harness.ROOT
SHOTS = os.environ.get("RG_SCREENSHOTS") or os.path.join(BUILD, "screenshots")
if not os.path.isabs(SHOTS):
    SHOTS = os.path.join(ROOT, SHOTS)


def run_scenario(driver, scenario, rg, **extra):
    """Runs tests/browser/<driver> <scenario> with the URLs of rg; returns
    the scenario's JSON answer (its last stdout line)."""
    path = os.path.join(ROOT, "tests", "browser", driver)
    env = dict(os.environ)
    env["RG_BROWSER_ENV"] = json.dumps(dict(
        admin=f"http://127.0.0.1:{rg.admin_port}", public=rg.base, key=rg.admin_key,
        screenshots=SHOTS, root=ROOT, **extra))
    p = subprocess.run(["node", path, scenario], cwd=os.path.dirname(path), env=env,
                       capture_output=True, timeout=180)
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode == 0, f"scenario {scenario} failed:\n{err[-3000:]}\n{out[-1000:]}"
    assert "pageerror" not in err, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def bad_metadata(idp):
    """The fixture IdP's metadata with its only key marked for encryption:
    no signing key, so the lint refuses it (invalid_metadata)."""
    return idp.metadata.replace('use="signing"', 'use="encryption"')


def http_call(port, method, path, body=None, headers=None):
    """One raw request to 127.0.0.1:port (headers exactly as given, no key):
    (status, [(header, value)], body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, r.getheaders(), data
    finally:
        c.close()
