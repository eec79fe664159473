#!/usr/bin/env python3
"""test_reload_memory.py - a reload frees the scenario and store it replaces.

A scenario with 2,000 generated 4 KiB messages (about 8 MiB of mail plus the model around it) is
reloaded 100 times with SIGHUP, each time waiting for the reload event; the server's VmRSS
(/proc/PID/status) after the last reload must stay below twice what it was after the first one
(a server that kept every replaced model grew by about 15 MB per reload). The test stops at the
first reload past that bound, so a leaking server fails fast.

A POP3 session opened before the reloads keeps working through them: the messages it listed are
the ones it retrieves afterwards, its deletion is carried out at QUIT, and the next session sees
that (its session keeps the scenario it started with alive until it ends; under ASan a use after
free or a leak fails the run).
"""

import base64
import os
import poplib
import signal
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import Mocksrv, smtp_client, wait_for  # noqa: E402

SCENARIO = """version: 1
hostname: reload-memory.test
seed: 7
listeners:
  smtp: { protocol: smtp, port: 0 }
  pop3: { protocol: pop3, port: 0 }
smtp:
  auth: [PLAIN, LOGIN]
users:
  alice:
    password: secret
    mailboxes:
      INBOX:
        messages:
          - generate: { count: 2000, size: 4KiB }
  bob:
    password: secret
    mailboxes:
      INBOX:
        messages:
          - raw: "Subject: one\\n\\nfirst\\n"
          - raw: "Subject: two\\n\\nsecond\\n"
          - raw: "Subject: three\\n\\nthird\\n"
"""

RELOADS = 100


def asan_env():
    """Under ASan (ci/sanitize.sh) freed memory waits in a quarantine of 256 MB by default, which
    RSS would count as growth: keep it small. Harmless for a build without ASan."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    return {"ASAN_OPTIONS": (opts + ":" if opts else "") + "quarantine_size_mb=1"}


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/%d/status" % pid)


class ReloadMemoryTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.path = os.path.join(tmp.name, "s.yaml")
        with open(self.path, "w") as f:
            f.write(SCENARIO)

    def reload(self, srv, count):
        """SIGHUP, then waits for the COUNT-th reload event, which must say ok."""
        srv.signal(signal.SIGHUP)
        reloads = wait_for(lambda: [e for e in srv.events() if e["event"] == "reload"][count - 1:],
                           timeout=60, what="reload event %d" % count)
        self.assertTrue(reloads[0]["ok"], reloads[0])

    def test_rss_stays_flat_over_reloads(self):
        with Mocksrv(self.path, env=asan_env()) as srv:
            pid = srv.proc.pid
            start = rss_kib(pid)
            self.reload(srv, 1)
            first = rss_kib(pid)
            bound = 2 * first
            for n in range(2, RELOADS + 1):
                self.reload(srv, n)
                now = rss_kib(pid)
                self.assertLess(now, bound,
                                "VmRSS %d KiB after reload %d, %d KiB after the first (at start "
                                "%d KiB): the replaced models are kept" % (now, n, first, start))
            last = rss_kib(pid)
            sys.stderr.write("VmRSS: %d KiB at start, %d KiB after reload 1, %d KiB after "
                             "reload %d\n" % (start, first, last, RELOADS))
        self.assertEqual(srv.returncode, 0)

    def test_pop3_session_survives_reloads(self):
        with Mocksrv(self.path, env=asan_env()) as srv:
            port = srv.port("pop3")
            old = poplib.POP3("127.0.0.1", port, timeout=30)
            old.user("bob")
            old.pass_("secret")
            self.assertEqual(old.stat()[0], 3)
            before = [old.retr(i)[1] for i in (1, 2, 3)]
            smtp = smtp_client(srv.port("smtp"), timeout=30)
            self.addCleanup(smtp.close)
            self.assertEqual(smtp.cmd("EHLO client.test")[:3], "250")
            self.reload(srv, 1)
            # an AUTH exchange that began after a reload and goes on across more of them: the
            # scenario current at its start is not the session's, and is replaced meanwhile
            self.assertEqual(smtp.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6")
            for n in range(2, 6):
                self.reload(srv, n)
            self.assertEqual(smtp.cmd(base64.b64encode(b"bob").decode()), "334 UGFzc3dvcmQ6")
            self.assertEqual(smtp.cmd(base64.b64encode(b"secret").decode())[:3], "235")
            self.assertEqual(smtp.cmd("NOOP")[:3], "250")
            self.assertEqual(smtp.cmd("QUIT")[:3], "221")
            # the session opened before the reloads: same listing, same bytes, same commands
            self.assertIn("USER", old.capa())
            self.assertEqual(old.stat()[0], 3)
            self.assertEqual([old.retr(i)[1] for i in (1, 2, 3)], before)
            self.assertEqual(old.retr(2)[1], [b"Subject: two", b"", b"second"])
            old.dele(1)
            old.quit()
            # its deletion reached the store of the last reload, which new sessions see
            new = poplib.POP3("127.0.0.1", port, timeout=30)
            new.user("bob")
            new.pass_("secret")
            self.assertEqual(new.stat()[0], 2)
            self.assertEqual([new.retr(i)[1] for i in (1, 2)], before[1:])
            new.quit()
            # and alice's generated INBOX is there after all those reloads
            a = poplib.POP3("127.0.0.1", port, timeout=30)
            a.user("alice")
            a.pass_("secret")
            self.assertEqual(a.stat()[0], 2000)
            a.quit()
        self.assertEqual(srv.returncode, 0)


if __name__ == "__main__":
    unittest.main()
