"""Shared helpers: start the built `insights` binary and find where it listens."""

import os
import re
import subprocess
import threading

import pytest


class Server:
    def __init__(self, args, env=None):
        binary = os.environ.get("INSIGHTS_BIN")
        assert binary and os.path.exists(binary), "set INSIGHTS_BIN to the built insights binary (scripts/test does)"
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0"] + args,
            env=dict(os.environ, RUST_LOG="info", **(env or {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log = []
        self.url = None
        for line in self.proc.stderr:
            self.log.append(line)
            m = re.search(r"serving addr=(\S+)", line)
            if m:
                self.url = "http://" + m.group(1)
                break
        assert self.url, "the server did not start:\n" + "".join(self.log)
        # Keep draining its log so that it never blocks on a full pipe.
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()

    def stdout_until(self, marker):
        """What the server printed on stdout, up to the line containing `marker`."""
        out = []
        for line in self.proc.stdout:
            out.append(line)
            if marker in line:
                return "".join(out)
        raise AssertionError("the server exited before printing %r:\n%s" % (marker, "".join(out)))

    def stop(self):
        """SIGTERM, as an operator would; the server must exit cleanly."""
        self.proc.terminate()
        assert self.proc.wait(timeout=60) == 0, "".join(self.log)


@pytest.fixture
def start_server():
    started = []

    def start(args, env=None):
        s = Server(args, env)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
