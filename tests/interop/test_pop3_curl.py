"""curl's POP3 client against mocksrv: LIST, RETR of every message (curl un-stuffs the dots and
stops at the end marker, so its output is the message bytes plus the CRLF the wire needs at the
end), UIDL as a custom command, DELE, and the SASL login curl picks from CAPA.

curl is required: ci/setup.sh installs it, so CI never skips; the skip is only for a developer
machine without it."""
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import MocksrvCase, mail, pop3_alice_fixed, pop3_wire, scenario  # noqa: E402

CURL = shutil.which("curl")
UIDVALIDITY = 1700000000


@unittest.skipIf(CURL is None, "curl is not installed (ci/setup.sh installs it)")
class Pop3CurlTest(MocksrvCase):
    def setUp(self):
        self.srv = self.spawn(scenario("pop3-interop.yaml"), spool=False)
        self.port = self.srv.port("pop3")

    def curl(self, path="", *args, user="alice:secret", ok=True):
        argv = [CURL, "-sS", "--max-time", "10", "pop3://127.0.0.1:%d/%s" % (self.port, path),
                "-u", user] + list(args)
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        if ok:
            self.assertEqual(r.returncode, 0, "curl %s: %s" % (args, r.stderr))
        return r

    def sessions_commands(self):
        """Command lines per session, from the events."""
        out = {}
        for e in self.srv.events():
            if e["event"] == "command":
                out.setdefault(e["session"], []).append(e["line"])
        return out

    def test_list(self):
        out = self.curl().stdout
        sizes = [len(m) for m in pop3_alice_fixed()]
        lines = out.split(b"\r\n")
        self.assertEqual(lines[-1], b"")
        self.assertEqual(len(lines) - 1, 7, out)
        self.assertEqual(lines[:4], [b"%d %d" % (i, n) for i, n in enumerate(sizes, 1)])
        self.assertRegex(out.decode(), r"^(\d \d+\r\n){7}$")
        # curl read CAPA, logged in with SASL (PLAIN is offered), listed and quit.
        [cmds] = self.sessions_commands().values()
        self.assertEqual(cmds[0], "CAPA")
        self.assertTrue(cmds[1].startswith("AUTH PLAIN"), cmds)
        self.assertEqual(cmds[-2:], ["LIST", "QUIT"])
        auth = [e for e in self.srv.events() if e["event"] == "auth"]
        self.assertEqual([(e["user"], e["ok"]) for e in auth], [("alice", True)])

    def test_retr_every_message(self):
        fixed = pop3_alice_fixed()
        listing = self.curl().stdout.split(b"\r\n")[:-1]
        for i, line in enumerate(listing, 1):
            with self.subTest(message=i):
                data = self.curl(str(i)).stdout
                if i <= len(fixed):
                    self.assertEqual(data, pop3_wire(fixed[i - 1]))
                else:  # generated: all CRLF lines, so exactly LIST's size
                    self.assertEqual(len(data), int(line.split()[1]))
                    self.assertTrue(data.startswith(b"Return-Path: "))
        self.assertEqual(len(self.sessions_commands()), 1 + len(listing))

    def test_retr_binary_message(self):
        # Bare CR and LF, NUL and 8-bit bytes, dots after CRLF and after a bare LF: curl gives
        # back exactly the stored bytes (plus the final CRLF the wire adds).
        data = self.curl("1", user="bob:secret").stdout
        self.assertEqual(data, mail("pop3-binary.eml") + b"\r\n")

    def test_uidl_custom_command(self):
        out = self.curl("", "-X", "UIDL").stdout
        self.assertEqual(out, b"".join(b"%d %d.%d\r\n" % (i, UIDVALIDITY, i)
                                       for i in range(1, 8)))

    def test_dele(self):
        # -X DELE with a message in the URL sends "DELE 3"; -I: no body expected back.
        r = self.curl("3", "-X", "DELE", "-I")
        self.assertEqual(r.stdout, b"")
        cmds = list(self.sessions_commands().values())[-1]
        self.assertEqual(cmds[-2:], ["DELE 3", "QUIT"])
        out = self.curl().stdout
        self.assertEqual(out.count(b"\r\n"), 6)
        fixed = pop3_alice_fixed()
        self.assertEqual(out.split(b"\r\n")[:3],
                         [b"1 %d" % len(fixed[0]), b"2 %d" % len(fixed[1]), b"3 %d" % len(fixed[3])])
        # The message after it moved up: what was 4 ("headers only") is now 3.
        self.assertEqual(self.curl("3").stdout, pop3_alice_fixed()[3])

    def test_wrong_password_and_absent_message(self):
        r = self.curl("", user="alice:wrong", ok=False)
        self.assertEqual(r.returncode, 67, r.stderr)  # CURLE_LOGIN_DENIED
        r = self.curl("99", ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout, b"")
        # Neither left the maildrop locked.
        self.assertEqual(self.curl("1").stdout, pop3_wire(pop3_alice_fixed()[0]))


if __name__ == "__main__":
    unittest.main()
