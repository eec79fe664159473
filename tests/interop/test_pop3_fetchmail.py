"""fetchmail (a POP3 client we did not write) against mocksrv: every message of alice's maildrop
delivered through an MDA that writes each one to a numbered file, compared with the fixture;
with `keep` the maildrop is unchanged, without it fetchmail's DELE + QUIT empties it; with `uidl`
a second poll fetches nothing new; APOP works as well as USER/PASS.

What fetchmail changes, per its manual: it adds one Received header ("generates a Received
header into each message", section "The --invisible option"; first, or after a leading
Return-Path) and, with an MDA, strips CRs unless
told `no stripcr`. The rcfile says `no stripcr` and `no rewrite` (no address rewriting), so each
delivered file must be exactly that Received header followed by the message as served.
fetchmail 6.4 insists on STLS unless `sslproto ''` (the listener offers no TLS).

fetchmail is required: ci/setup.sh installs it, so CI never skips; the skip is only for a
developer machine without it."""
import getpass
import os
import poplib
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import MocksrvCase, pop3_alice_fixed, pop3_wire, scenario  # noqa: E402

FETCHMAIL = shutil.which("fetchmail")
N_MESSAGES = 7

# fetchmail's Received header for a single-drop poll over POP3 (folded with tabs; with
# `no stripcr` it keeps the CRLF line ends of the message).
RECEIVED = re.compile(rb"\AReceived: from 127\.0\.0\.1 \[127\.0\.0\.1\]\r\n"
                      rb"\tby [^\r\n]+ with POP3 \(fetchmail-[0-9][^)\r\n]*\)\r\n"
                      rb"\tfor <[^>\r\n]+> \(single-drop\); [^\r\n]+\r\n")

MDA = """#!/bin/sh
# Test MDA: the message on stdin to the next numbered file in $1 (fetchmail delivers serially).
n=$(ls "$1" | wc -l)
exec cat > "$1/$(printf '%04d' $((n + 1))).eml"
"""


@unittest.skipIf(FETCHMAIL is None, "fetchmail is not installed (ci/setup.sh installs it)")
class Pop3FetchmailTest(MocksrvCase):
    def setUp(self):
        self.srv = self.spawn(scenario("pop3-interop.yaml"), spool=False)
        self.port = self.srv.port("pop3")

        self.tmp = tempfile.mkdtemp(prefix="mocksrv-fetchmail-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.mda = os.path.join(self.tmp, "mda.sh")
        with open(self.mda, "w") as f:
            f.write(MDA)
        os.chmod(self.mda, 0o755)
        # What mocksrv serves, read with poplib first (generated messages have no fixture file).
        p = poplib.POP3("127.0.0.1", self.port, timeout=5)
        try:
            p.user("alice")
            p.pass_("secret")
            self.served = [b"\r\n".join(p.retr(i)[1]) + b"\r\n"
                           for i in range(1, N_MESSAGES + 1)]
            p.quit()
        finally:
            p.close()
        for got, want in zip(self.served, pop3_alice_fixed()):
            self.assertEqual(got, pop3_wire(want))

    def fetchmail(self, name, options="keep fetchall", protocol="pop3", server="",
                  want_status=0):
        out = os.path.join(self.tmp, name)
        os.makedirs(out, exist_ok=True)
        rc = os.path.join(self.tmp, "fetchmailrc")
        with open(rc, "w") as f:
            f.write("set no bouncemail\n"
                    "poll 127.0.0.1 service %d protocol %s timeout 10 %s\n"
                    "  user \"alice\" there with password \"secret\" is \"%s\" here\n"
                    "  options %s no rewrite no stripcr sslproto ''\n"
                    "  mda \"%s %s\"\n"
                    % (self.port, protocol, server, getpass.getuser(), options, self.mda, out))
        os.chmod(rc, 0o600)  # fetchmail refuses a readable rcfile with a password
        env = dict(os.environ, HOME=self.tmp)
        r = subprocess.run([FETCHMAIL, "-f", rc, "--nosyslog", "-v", "--nodetach",
                            "--pidfile", os.path.join(self.tmp, "fetchmail.pid"),
                            "--idfile", os.path.join(self.tmp, "fetchids")],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60, env=env)
        self.assertEqual(r.returncode, want_status,
                         "fetchmail status %d:\n%s" % (r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")))
        files = sorted(os.listdir(out))
        return [open(os.path.join(out, n), "rb").read() for n in files], r

    def check_delivered(self, delivered):
        self.assertEqual(len(delivered), N_MESSAGES)
        for i, (got, want) in enumerate(zip(delivered, self.served), 1):
            with self.subTest(message=i):
                # A leading Return-Path stays first (trace fields, RFC 5322 3.6.7): fetchmail
                # puts its Received header after it.
                keep = b""
                if want.startswith(b"Return-Path:"):
                    keep = want[:want.index(b"\r\n") + 2]
                self.assertTrue(got.startswith(keep), got[:300])
                m = RECEIVED.match(got[len(keep):])
                self.assertIsNotNone(m, got[:300])
                self.assertEqual(keep + got[len(keep) + m.end():], want)

    def maildrop(self):
        p = poplib.POP3("127.0.0.1", self.port, timeout=5)
        try:
            p.user("alice")
            p.pass_("secret")
            uidl = p.uidl()[1]
            p.quit()
            return uidl
        finally:
            p.close()

    def commands(self):
        return [e["line"] for e in self.srv.events() if e["event"] == "command"]

    def test_keep_delivers_every_message_unchanged(self):
        before = self.maildrop()
        delivered, _ = self.fetchmail("keep")
        self.check_delivered(delivered)
        self.assertEqual(self.maildrop(), before)
        self.assertNotIn("DELE 1", self.commands())

    def test_delete_mode_empties_the_maildrop(self):
        delivered, _ = self.fetchmail("flush", options="no keep fetchall")
        self.check_delivered(delivered)
        self.assertEqual(self.maildrop(), [])
        cmds = self.commands()
        for i in range(1, N_MESSAGES + 1):
            self.assertIn("DELE %d" % i, cmds)
        # fetchmail's session ended with QUIT, which expunged (the UPDATE state).
        closes = [e for e in self.srv.events() if e["event"] == "session.close"]
        self.assertTrue(all(e["reason"] == "quit" for e in closes), closes)

    def test_uidl_second_poll_fetches_nothing(self):
        delivered, _ = self.fetchmail("first", options="keep", server="uidl")
        self.check_delivered(delivered)
        # fetchmail's status 1: no mail (every UIDL seen before).
        delivered, r = self.fetchmail("second", options="keep", server="uidl",
                                      want_status=1)
        self.assertEqual(delivered, [])
        self.assertIn("UIDL", self.commands())

    def test_apop(self):
        delivered, _ = self.fetchmail("apop", protocol="apop")
        self.check_delivered(delivered)
        self.assertTrue(any(c.startswith("APOP alice ") for c in self.commands()))


if __name__ == "__main__":
    unittest.main()
