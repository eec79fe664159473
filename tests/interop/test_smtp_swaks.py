"""swaks (the Swiss army knife for SMTP) against mocksrv: AUTH PLAIN, LOGIN and CRAM-MD5 succeed
and record auth_user, the spooled message carries swaks's headers, a wrong password makes swaks
fail and spools nothing. Also swaks's pipelining mode and raw --data with dots and 8-bit text.

swaks is required: ci/setup.sh installs it, so CI never skips; the skip is only for a developer
machine without it."""
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import MocksrvCase, scenario  # noqa: E402

SWAKS = shutil.which("swaks")


@unittest.skipIf(SWAKS is None, "swaks is not installed (ci/setup.sh installs it)")
class SwaksTest(MocksrvCase):
    SERVE = scenario("interop.yaml")
    SERVE_PORT = "smtp"

    def swaks(self, *args):
        argv = [SWAKS, "--server", "127.0.0.1", "--port", str(self.port),
                "--to", "alice@mock.test", "--from", "x@client.example",
                "--helo", "client.example", "--timeout", "10",
                "--header", "X-Interop: swaks", "--body", "hello from swaks"] + list(args)
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)

    def check_message(self, data, env):
        text = data.decode("utf-8")
        for header in ("Date: ", "To: alice@mock.test", "From: x@client.example",
                       "Subject: test ", "Message-Id: ", "X-Mailer: swaks", "X-Interop: swaks"):
            self.assertIn("\r\n" + header, "\r\n" + text)
        self.assertIn("\r\n\r\nhello from swaks\r\n", text)
        self.assertNotIn(b"\n", data.replace(b"\r\n", b""), "bare LF in %r" % data)
        self.assertEqual(env["mail_from"], "x@client.example")
        self.assertEqual(env["rcpt_to"], ["alice@mock.test"])
        self.assertEqual(env["helo"], "client.example")
        self.assertEqual(env["size"], len(data))

    def test_no_auth(self):
        r = self.swaks()
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        [(data, env)] = self.new_messages()
        self.check_message(data, env)
        self.assertIsNone(env["auth_user"])

    def test_auth_mechanisms(self):
        for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
            with self.subTest(mech=mech):
                before = set(self.srv.spool_ids())
                r = self.swaks("--auth", mech, "--auth-user", "alice",
                               "--auth-password", "secret")
                out = r.stdout.decode() + r.stderr.decode()
                self.assertEqual(r.returncode, 0, out)
                self.assertIn("235 2.7.0 Authentication successful", out)
                [new] = [i for i in self.srv.spool_ids() if i not in before]
                data, env = self.srv.message(new)
                self.check_message(data, env)
                self.assertEqual(env["auth_user"], "alice")
                auth = [e for e in self.srv.events()
                        if e["event"] == "auth" and e["session"] == env["session"]]
                self.assertEqual([(e["mechanism"], e["user"], e["ok"]) for e in auth],
                                 [(mech, "alice", True)])

    def test_wrong_password(self):
        for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
            with self.subTest(mech=mech):
                r = self.swaks("--auth", mech, "--auth-user", "alice",
                               "--auth-password", "wrong")
                out = r.stdout.decode() + r.stderr.decode()
                self.assertNotEqual(r.returncode, 0, out)
                self.assertIn("535 5.7.8 Error: authentication failed", out)
        self.new_messages(0)

    def test_pipelining(self):
        r = self.swaks("--pipeline")
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        [(data, env)] = self.new_messages()
        self.check_message(data, env)

    def test_8bit_data_and_dots(self):
        body = "gr\u00fc\u00dfe\r\n.leading dot\r\n..two\r\nend"
        r = subprocess.run(
            [SWAKS, "--server", "127.0.0.1", "--port", str(self.port), "--to", "alice@mock.test",
             "--from", "x@client.example", "--helo", "client.example", "--timeout", "10",
             "--data", "Subject: raw\r\n\r\n" + body + "\r\n"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        [(data, _)] = self.new_messages()
        self.assertIn(("\r\n\r\n" + body + "\r\n").encode(), data)


if __name__ == "__main__":
    unittest.main()
