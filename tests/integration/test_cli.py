#!/usr/bin/env python3
"""Issue 11 item 8: the command line a newcomer types first. `rolegate
--help` and `rolegate CMD --help` exit 0 with the text on stdout;
`rolegate --version` prints rolegate's version and the versions of the
linked libraries (checked against pkg-config, an independent source);
an unknown command or option says so on stderr and exits non-zero."""
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import test, run_all  # noqa: E402

BIN = os.environ.get("ROLEGATE_BIN", "build/rolegate")


def run(*args):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def pkg_version(name):
    return subprocess.run(["pkg-config", "--modversion", name], capture_output=True,
                          text=True, check=True).stdout.strip()


@test
def test_issue11_item8_help_exits_0():
    for args in (["--help"], ["-h"], ["help"]):
        rc, out, err = run(*args)
        assert rc == 0, (args, rc, err)
        for cmd in ("serve", "keygen", "check-config", "--version"):
            assert cmd in out, (args, cmd, out)
    for cmd, needle in (("serve", "--config FILE"), ("check-config", "FILE:LINE"),
                        ("keygen", "--alg ES256|RS256")):
        for args in ([cmd, "--help"], ["help", cmd]):
            rc, out, err = run(*args)
            assert rc == 0, (args, rc, out, err)
            assert out.startswith(f"usage: rolegate {cmd}"), (args, out)
            assert needle in out, (args, out)


@test
def test_issue11_item8_version_names_linked_libraries():
    rc, out, err = run("--version")
    assert rc == 0, (rc, err)
    lines = out.splitlines()
    assert re.fullmatch(r"rolegate \d+\.\d+\.\d+", lines[0]), lines[0]
    got = {ln.split(" ", 1)[0]: ln.split(" ", 2)[1] for ln in lines[1:]}
    for lib, pc in (("lasso", "lasso"), ("xmlsec1", "xmlsec1"), ("libcurl", "libcurl"),
                    ("libjwt", "libjwt"), ("hiredis", "hiredis"), ("SQLite", "sqlite3")):
        assert lib in got, (lib, out)
        assert got[lib] == pkg_version(pc), (lib, got[lib], pkg_version(pc))
    rc2, out2, _ = run("version")
    assert rc2 == 0 and out2 == out


@test
def test_issue11_item8_unknown_command_says_so():
    rc, out, err = run("frobnicate")
    assert rc != 0 and out == "", (rc, out)
    assert "unknown command 'frobnicate'" in err, err
    rc, out, err = run("help", "frobnicate")
    assert rc != 0 and "unknown command 'frobnicate'" in err, (rc, err)
    rc, out, err = run("serve", "--bogus")
    assert rc != 0 and "unknown option '--bogus'" in err, (rc, err)
    rc, out, err = run()
    assert rc != 0 and "usage:" in err, (rc, err)


if __name__ == "__main__":
    run_all()
