#!/usr/bin/env python3
"""Acceptance: SAML logins through an INDEPENDENT IdP implementation, the npm
package samlify (tests/saml-idp/idp.js, started here on loopback): it checks
our signed HTTP-Redirect AuthnRequest and answers with its own signed
response. /auth then shows the right roles for a single-role environment, a
multiple-roles environment (R12, R16), an organization with its own roles
(R9, R11, R15) and a user with no mapped group (R17 default role)."""
import json
import os
import sys
import urllib.parse

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import test, run_all, ROOT, NodeHelper  # noqa: E402
from test_saml_common import (Browser, LoginServer, setup_roles, roles_of,  # noqa: E402
                              reason_of, FIX)

IDP_DIR = os.path.join(ROOT, "tests", "saml-idp")
USERS = {
    "alice": {"email": "alice@example.com", "groups": ["admins", "engineering"]},
    "vera": {"email": "vera@example.com", "groups": ["viewers", "engineering"]},
    "bob": {"email": "bob@example.com", "groups": ["billing", "viewers"]},
    "nora": {"email": "nora@example.com", "groups": ["marketing"]},
}


class SamlifyIdp(NodeHelper):
    def __init__(self):
        super().__init__(IDP_DIR, "samlify", "rg-samlify-")
        self.sp_path = os.path.join(self.dir, "sp.xml")
        users = os.path.join(self.dir, "users.json")
        with open(users, "w") as f:
            json.dump(USERS, f)
        line = self.spawn(["node", "idp.js", "--sp-metadata", self.sp_path, "--users", users,
                           "--key", os.path.join(FIX, "idp.key"), "--cert",
                           os.path.join(FIX, "idp.crt")], "ready port=", "samlify IdP")
        self.port = int(line.split("=")[1])
        self.base = f"http://127.0.0.1:{self.port}"

    def metadata(self):
        b = Browser()
        st, _, data = b.get(self.base + "/metadata")
        assert st == 200, st
        return data.decode()


class Env:
    def __init__(self, multiple=False):
        self.rg = LoginServer()
        self.idp = None
        try:
            self.idp = SamlifyIdp()
            setup_roles(self.rg, multiple)
            self.org = self.rg.ok("POST", "/organizations", {"name": "Globex"})["id"]
        except BaseException:
            self.__exit__(Exception, None, None)
            raise

    def connect(self, mappings):
        conn = self.rg.ok("POST", f"/organizations/{self.org}/connections",
                          {"type": "saml", "name": "samlify"})["id"]
        st, info = self.rg.api("PUT", f"/connections/{conn}/metadata", self.idp.metadata(),
                               {"Content-Type": "application/samlmetadata+xml"})
        assert st == 200, (st, info)
        assert info["entity_id"] == "https://samlify-idp.rolegate.test/metadata", info
        self.rg.ok("PUT", f"/connections/{conn}/role_mappings", mappings)
        st, _, sp = self.rg.public("GET", f"/saml/metadata/{conn}")
        assert st == 200
        with open(self.idp.sp_path, "w") as f:
            f.write(sp)
        self.conn = conn

    def login(self, user):
        b = Browser()
        st, hd, data = b.get(f"{self.rg.base}/login?organization={self.org}&return_to=/home")
        assert st == 302, (st, data[:300])
        loc = Browser.location(hd)
        assert loc.startswith(self.idp.base + "/sso?SAMLRequest="), loc
        st, _, data = b.get(loc + "&user=" + urllib.parse.quote(user))
        assert st == 200, (st, data[:500])
        action, fields = Browser.form(data)
        assert action == f"{self.rg.base}/saml/acs/{self.conn}", action
        st, hd, data = b.post_form(action, fields)
        assert st == 302, (st, reason_of(data), data[:400])
        assert Browser.location(hd) == "/home"
        return b

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb):
        if self.idp:
            self.idp.stop()
        self.rg.__exit__(et, e, tb)
        return False


MAPPINGS = [{"idp_group": "admins", "role_slug": "admin"},
            {"idp_group": "engineering", "role_slug": "member"},
            {"idp_group": "viewers", "role_slug": "viewer"}]


@test
def test_R16_samlify_single_role_environment():
    with Env() as env:
        env.connect(MAPPINGS)
        assert roles_of(env.login("alice"), env.rg) == ["admin"]
        assert roles_of(env.login("vera"), env.rg) == ["member"]   # member > viewer


@test
def test_R16_samlify_multiple_roles_environment():
    with Env(multiple=True) as env:
        env.connect(MAPPINGS)
        assert roles_of(env.login("alice"), env.rg) == ["admin", "member"]
        assert roles_of(env.login("vera"), env.rg) == ["member", "viewer"]


@test
def test_R15_samlify_organization_with_its_own_roles():
    with Env() as env:
        env.rg.ok("POST", f"/authorization/organizations/{env.org}/roles",
                  {"slug": "org-billing", "name": "Billing"})
        env.rg.ok("PUT", f"/authorization/organizations/{env.org}/roles/priority",
                  {"slugs": ["org-billing", "admin", "member", "viewer"]})
        env.connect(MAPPINGS + [{"idp_group": "billing", "role_slug": "org-billing"}])
        b = env.login("bob")   # billing and viewers: the org role is first
        assert roles_of(b, env.rg) == ["org-billing"]
        ms = env.rg.memberships(env.org)
        assert [m["role_source"] for m in ms] == ["idp"], ms


@test
def test_R17_samlify_user_with_no_mapped_group_gets_default_role():
    with Env() as env:
        env.connect(MAPPINGS)
        assert roles_of(env.login("nora"), env.rg) == ["member"]
        ms = env.rg.memberships(env.org)
        assert ms[0]["role_source"] == "default", ms


if __name__ == "__main__":
    run_all()
