#!/usr/bin/env python3
"""Issue 11 item 9: the metrics a Prometheus user expects. rolegate is
scraped with the settings of etc/prometheus-rolegate.yml (the scrape config
the README shows); the answer is parsed as the text exposition format
(every family typed once, histogram buckets cumulative with +Inf = _count)
and the counters are shown to move: login successes and failures by
connection and reason, /auth answers by status with a latency histogram,
IdP call latency, the role-table cache hit ratio; rolegate_redis_up only
when Redis is configured. Real rolegate, real fixture IdP, loopback."""
import http.client
import os
import re
import sys
import tempfile

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, run_all, free_port  # noqa: E402
from test_saml_common import SamlEnv, Browser, LoginServer  # noqa: E402

SCRAPE = os.path.join(harness.ROOT, "etc", "prometheus-rolegate.yml")


def scrape_config():
    """The few settings of the shipped scrape config (no YAML module)."""
    with open(SCRAPE) as f:
        text = f.read()
    cfg = {k: re.search(rf"^\s*{k}:\s*(\S+)", text, re.M).group(1)
           for k in ("scheme", "metrics_path", "type", "credentials_file")}
    assert cfg["scheme"] == "http" and cfg["type"] == "Bearer", cfg
    assert re.search(r'targets:\s*\["127\.0\.0\.1:8081"\]', text), "the admin listener"
    return cfg


def scrape(rg):
    cfg = scrape_config()
    with tempfile.NamedTemporaryFile("w", delete=False) as f:   # the key file
        f.write(rg.admin_key + "\n")
        keyfile = f.name
    try:
        with open(keyfile) as f:
            key = f.read().strip()
        c = http.client.HTTPConnection("127.0.0.1", rg.admin_port, timeout=10)
        c.request("GET", cfg["metrics_path"], headers={"Authorization": "Bearer " + key})
        r = c.getresponse()
        body = r.read().decode()
        c.close()
    finally:
        os.unlink(keyfile)
    assert r.status == 200, (r.status, body[:300])
    assert r.getheader("Content-Type").startswith("text/plain"), r.getheaders()
    return parse(body)


LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")


def parse(text):
    """{(name, frozenset(labels)): value} after checking the format."""
    types, out = {}, {}
    for ln in text.splitlines():
        if ln.startswith("# TYPE "):
            _, _, name, typ = ln.split(" ", 3)
            assert name not in types, ("TYPE twice", name)
            assert typ in ("counter", "gauge", "histogram", "summary", "untyped"), ln
            types[name] = typ
            continue
        if ln.startswith("#") or not ln.strip():
            continue
        m = SAMPLE.match(ln)
        assert m, ("not a sample line", ln)
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        fam = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or (fam in types and types[fam] == "histogram"), \
            ("sample before its TYPE", ln)
        lab = frozenset(LABEL.findall(labels))
        assert len(lab) == len(LABEL.findall(labels)), ln
        key = (name, lab)
        assert key not in out, ("duplicate sample", ln)
        out[key] = float(value)
    for fam, typ in types.items():
        if typ != "histogram":
            continue
        groups = {}
        for (n, lab), v in out.items():
            if n == fam + "_bucket":
                le = dict(lab)["le"]
                rest = frozenset(x for x in lab if x[0] != "le")
                groups.setdefault(rest, []).append((float("inf") if le == "+Inf"
                                                    else float(le), v))
        for rest, bs in groups.items():
            bs.sort()
            assert all(a[1] <= b[1] for a, b in zip(bs, bs[1:])), ("not cumulative", fam)
            assert bs[-1][0] == float("inf") and bs[-1][1] == out[(fam + "_count", rest)]
    return out


def val(m, name, **labels):
    return m.get((name, frozenset(labels.items())), 0.0)


@test
def test_item9_metrics_move_and_parse():
    with SamlEnv() as env:
        rg = env.rg
        m0 = scrape(rg)
        assert not any(n.startswith("rolegate_redis_up") for n, _ in m0), "no Redis configured"
        # a login that succeeds and one that fails, through the real IdP
        b = Browser()
        st, _, _ = env.login(b, groups=("engineering",))
        assert st == 302
        b2 = Browser()
        env.start(b2)
        st, _, _ = b2.post_form(f"{rg.base}/saml/acs/{env.conn}", {"SAMLResponse": "bm90IHhtbA=="})
        assert st == 400, st
        # /auth: 200, 401, 403
        ck = {"Cookie": "rolegate=" + b.jar["rolegate"]}
        assert rg.public("GET", "/auth", headers=ck)[0] == 200
        assert rg.public("GET", "/auth")[0] == 401
        assert rg.public("GET", "/auth?require_role=nobody", headers=ck)[0] == 403
        # an IdP call: the metadata fetched from the fixture IdP by URL
        st, _ = rg.api("PUT", f"/connections/{env.conn}/metadata",
                       {"metadata_url": f"http://127.0.0.1:{env.idp.port}/metadata"})
        assert st == 200, st
        m1 = scrape(rg)
        d = lambda n, **l: val(m1, n, **l) - val(m0, n, **l)  # noqa: E731
        assert d("rolegate_login_successes_total", connection=env.conn) == 1, m1
        assert d("rolegate_login_failures_total", connection=env.conn,
                 reason="saml_malformed") == 1, [k for k in m1 if "login" in k[0]]
        for status in ("200", "401", "403"):
            assert d("rolegate_auth_requests_total", status=status) == 1, (status, [(k, v) for k, v in m1.items() if "auth_req" in k[0]])
        assert d("rolegate_auth_duration_seconds_count") == 3
        assert val(m1, "rolegate_auth_duration_seconds_sum") > 0
        assert d("rolegate_idp_request_duration_seconds_count", kind="saml_metadata") == 1
        assert val(m1, "rolegate_idp_request_duration_seconds_bucket", kind="saml_metadata",
                   le="+Inf") >= 1
        ratio = val(m1, "rolegate_role_table_cache_hit_ratio")
        assert 0 <= ratio <= 1 and ("rolegate_role_table_cache_hit_ratio", frozenset()) in m1
        # /metrics needs the admin key
        st, _, _ = rg.admin("GET", "/metrics", key=False)
        assert st == 401, st


@test
def test_item9_redis_up_only_when_redis_configured():
    dead = free_port()
    with LoginServer(config={"redis": {"url": f"redis://127.0.0.1:{dead}/0"}}) as rg:
        m = scrape(rg)
        assert ("rolegate_redis_up", frozenset()) in m, sorted(k[0] for k in m)
        assert val(m, "rolegate_redis_up") == 0
        assert val(m, "rolegate_redis_configured") == 1


if __name__ == "__main__":
    run_all()
