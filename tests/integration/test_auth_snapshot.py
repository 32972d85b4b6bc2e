#!/usr/bin/env python3
"""R25 (issue 13 wording): a role change reaches the user within
refresh_after. Until then a token's claims are a snapshot: a role change made
through the admin API does not change what /auth reports for a token younger
than refresh_after (default 60 s); a new session carries the new roles at
once. test_session_refresh.py shows the change arriving by refresh."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import run_all, Rolegate  # noqa: E402
from test_auth_common import MS, auth, new_session, ok, setup_member  # noqa: E402

test = harness.test


@test
def test_R25_token_younger_than_refresh_after_is_a_snapshot_new_session_is_current():
    with Rolegate() as rg:
        ids = setup_member(rg)
        ok(rg.admin("POST", "/authorization/permissions",
                    {"slug": "billing:manage", "name": "billing"}), 201)
        ok(rg.admin("POST", "/authorization/roles", {"slug": "biller", "name": "Biller"}), 201)
        ok(rg.admin("PUT", "/authorization/roles/biller/permissions",
                    {"permissions": ["billing:manage"]}), 200)
        old = new_session(rg, ids["om"])["token"]
        st, h, _ = auth(rg, old)
        assert st == 200 and h["x-rolegate-role"] == ids["role"], (st, h)

        ok(rg.admin("PUT", f"{MS}/{ids['om']}", {"role_slug": "biller"}), 200)
        # the issued token still says what it said (snapshot) ...
        st, h, _ = auth(rg, old)
        assert st == 200, st
        assert h["x-rolegate-role"] == ids["role"], h
        assert h["x-rolegate-permissions"] == ",".join(ids["perms"]), h
        # ... and a new session carries the new role and its permissions
        new = new_session(rg, ids["om"])["token"]
        st, h, _ = auth(rg, new)
        assert st == 200, st
        assert h["x-rolegate-role"] == "biller", h
        assert h["x-rolegate-permissions"] == "billing:manage", h


if __name__ == "__main__":
    run_all()
