"""Issue 7 wiring against a real redis-server on loopback: /readyz reports
Redis down as degraded (not dead) and recovers without restarting rolegate.
(Steps 2-6 of issue 7 -- cross-instance invalidation, replay, revocation and
login state -- are not wired yet; their tests come with them.)"""
import os
import shutil
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Rolegate, test, wait_until  # noqa: E402


class Redis:
    def __init__(self, port=None):
        self.port = port or harness.free_port()
        self.proc = None
        self.start()

    def start(self):
        exe = shutil.which("redis-server")
        assert exe, "redis-server not installed"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False
        wait_until(up, 10, "redis-server listening")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"


@test
def test_readyz_ready_with_redis_then_degraded_when_killed_then_ready_again():
    r = Redis()
    try:
        with Rolegate(config={"redis": {"url": r.url()}}) as rg:
            wait_until(lambda: rg.public("GET", "/readyz")[2] == {"status": "ready"},
                       10, "readyz ready with redis up")
            r.kill()
            wait_until(lambda: rg.public("GET", "/readyz")[2] ==
                       {"status": "degraded", "redis": "down"}, 10, "readyz degraded")
            st, _, _ = rg.public("GET", "/readyz")
            assert st == 200, st            # degraded, not dead
            assert rg.public("GET", "/healthz")[0] == 200
            r.start()                       # same port
            wait_until(lambda: rg.public("GET", "/readyz")[2] == {"status": "ready"},
                       15, "readyz ready after redis restart")
            assert rg.proc.poll() is None
    finally:
        r.kill()


@test
def test_readyz_ready_without_redis_url():
    with Rolegate() as rg:
        st, _, body = rg.public("GET", "/readyz")
        assert st == 200 and body == {"status": "ready"}, (st, body)


if __name__ == "__main__":
    harness.run_all()
