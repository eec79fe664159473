#!/usr/bin/env python3
"""test_fd_exhaustion.py - out of file descriptors, the server serves its backlog as they free up.

mocksrv runs with RLIMIT_NOFILE 64 and gets 100 plain SMTP connections on one listener: the
kernel completes them all (the listen backlog), the server accepts what its descriptors allow
and greets those. The test then closes the greeted clients and, WITHOUT making any new
connection, every client still waiting in the backlog must get its 220 greeting within a
bounded wait (each is closed once greeted, which frees a descriptor for the next). A server
that only accepts on a new connection's edge would leave them waiting forever. Then a message
is sent normally with smtplib, and the "Too many open files" error was logged a few times at
most, not once per attempt.
"""

import os
import resource
import select
import smtplib
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import Mocksrv, MocksrvCase, wait_for  # noqa: E402

SCENARIO = """version: 1
hostname: fd.test
listeners:
  smtp: { protocol: smtp, port: 0 }
"""

SERVER_FDS = 64
CLIENTS = 100
WAIT = 30.0  # bound for the backlog to be served after the first clients left


class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setblocking(False)
        self.buf = b""

    def fileno(self):
        return self.sock.fileno()

    def read(self):
        """Reads what is there; returns the greeting line once complete, else None."""
        try:
            chunk = self.sock.recv(4096)
        except BlockingIOError:
            return None
        if not chunk:
            raise AssertionError("closed by the server before a greeting; got %r" % self.buf)
        self.buf += chunk
        if b"\r\n" in self.buf:
            return self.buf.split(b"\r\n", 1)[0].decode("utf-8", "replace")
        return None

    def close(self):
        self.sock.close()


def greetings(clients, timeout):
    """Waits up to timeout for a first greeting, then takes those readable without waiting
    more. Returns the clients greeted (each checked to be a 220), maybe none."""
    greeted = []
    deadline = time.monotonic() + timeout
    while True:
        pending = [c for c in clients if c not in greeted]
        wait = 0 if greeted else deadline - time.monotonic()
        if not pending or wait < 0:
            return greeted
        ready, _, _ = select.select(pending, [], [], wait)
        if not ready:
            return greeted
        for c in ready:
            line = c.read()
            if line is None:
                continue
            if not line.startswith("220 fd.test"):
                raise AssertionError("want a 220 greeting, got %r" % line)
            greeted.append(c)


class FdExhaustionTest(MocksrvCase):
    def start_server(self, path):
        """Starts mocksrv with a soft RLIMIT_NOFILE of SERVER_FDS (inherited through exec); this
        process gets its own limit back right after."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < CLIENTS + 64:
            self.skipTest("this process may open only %d descriptors" % soft)
        resource.setrlimit(resource.RLIMIT_NOFILE, (SERVER_FDS, hard))
        try:
            srv = Mocksrv(path)
            srv.start()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        return self.adopt(srv)

    def test_backlog_served_when_descriptors_free(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "s.yaml")
            with open(path, "w") as f:
                f.write(SCENARIO)
            srv = self.start_server(path)
            port = srv.port("smtp")
            with open("/proc/%d/limits" % srv.proc.pid) as f:
                limits = f.read()
            self.assertRegex(limits, r"Max open files\s+%d\s" % SERVER_FDS)

            clients = []
            self.addCleanup(lambda: [c.close() for c in clients])
            for _ in range(CLIENTS):
                clients.append(Client(port))
            # the server ran out: it says so once its accept fails
            wait_for(lambda: "Too many open files" in srv.stderr_text(), timeout=10,
                     what="the accept error on stderr")
            first = greetings(clients, timeout=10)
            self.assertGreater(len(first), 0, "no client was greeted at all")
            stuck = [c for c in clients if c not in first]
            self.assertGreater(len(stuck), 0, "every client was greeted: no descriptor shortage")

            # the greeted ones leave; nobody connects any more
            for c in first:
                c.close()
                clients.remove(c)
            served = 0
            deadline = time.monotonic() + WAIT
            while stuck and time.monotonic() < deadline:
                for c in greetings(stuck, timeout=deadline - time.monotonic()):
                    c.close()
                    clients.remove(c)
                    stuck.remove(c)
                    served += 1
            self.assertEqual(len(stuck), 0, "%d of %d clients left in the backlog never got a "
                             "greeting within %.0fs (%d did)"
                             % (len(stuck), len(stuck) + served, WAIT, served))

            # back to normal: a message goes through
            s = smtplib.SMTP("127.0.0.1", port, timeout=10)
            s.ehlo("client.fd.test")
            s.sendmail("a@client.fd.test", ["b@fd.test"], "Subject: after\r\n\r\nok\r\n")
            s.quit()
            msgs = srv.wait_messages(1)
            self.assertEqual(msgs[0][0], b"Subject: after\r\n\r\nok\r\n")

            # logged, but not once per attempt
            elapsed = time.monotonic() - srv.started_at
            lines = [l for l in srv.stderr_text().splitlines() if "Too many open files" in l]
            self.assertLessEqual(len(lines), 2 + int(elapsed / 10),
                                 "the accept error was logged %d times in %.0fs:\n%s"
                                 % (len(lines), elapsed, "\n".join(lines[:10])))
            self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    unittest.main()
