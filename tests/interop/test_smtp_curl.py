"""curl's SMTP client against mocksrv: the spooled bytes equal the uploaded file (curl dot-stuffs
on the wire, mocksrv unstuffs), the envelope is right, AUTH with every mechanism curl can pick.

curl is required: ci/setup.sh installs it, so CI never skips; the skip is only for a developer
machine without it."""
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import MocksrvCase, crlf, fixtures, mail, scenario  # noqa: E402

CURL = shutil.which("curl")


@unittest.skipIf(CURL is None, "curl is not installed (ci/setup.sh installs it)")
class CurlTest(MocksrvCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.spawn_shared(scenario("interop.yaml"))
        cls.port = cls.srv.port("smtp")
        cls.tmp = cls.shared_tmpdir()

    def curl(self, upload, *args, rcpts=("alice@mock.test",)):
        # The URL path is the EHLO name; without one curl would append the file name.
        argv = [CURL, "-sS", "--max-time", "10",
                "smtp://127.0.0.1:%d/client.example" % self.port,
                "--mail-from", "sender@client.example", "--upload-file", upload]
        for r in rcpts:
            argv += ["--mail-rcpt", r]
        argv += list(args)
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)

    def write(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_upload_crlf_file(self):
        body = crlf(mail("simple.eml"))
        r = self.curl(self.write("crlf.eml", body), rcpts=("alice@mock.test", "bob@mock.test"))
        self.assertEqual(r.returncode, 0, r.stderr)
        [(data, env)] = self.new_messages()
        self.assertEqual(data, body)
        self.assertEqual(env["mail_from"], "sender@client.example")
        self.assertEqual(env["mail_params"], "SIZE=%d" % len(body))
        self.assertEqual(env["rcpt_to"], ["alice@mock.test", "bob@mock.test"])
        self.assertEqual(env["helo"], "client.example")
        self.assertEqual(env["size"], len(body))
        self.assertIsNone(env["auth_user"])

    def test_upload_lf_file_with_crlf_option(self):
        # --crlf: curl turns the LF-only fixture into CRLF lines, then dot-stuffs.
        path = os.path.join(fixtures(), "mail", "simple.eml")
        r = self.curl(path, "--crlf")
        self.assertEqual(r.returncode, 0, r.stderr)
        [(data, env)] = self.new_messages()
        self.assertEqual(data, crlf(mail("simple.eml")))
        self.assertEqual(env["size"], len(data))

    def test_dot_lines_are_unstuffed(self):
        body = b"Subject: dots\r\n\r\n.\r\n..\r\n...x\r\n. \r\nend\r\n"
        r = self.curl(self.write("dots.eml", body))
        self.assertEqual(r.returncode, 0, r.stderr)
        [(data, _)] = self.new_messages()
        self.assertEqual(data, body)

    def test_auth_default_mechanism(self):
        body = crlf(mail("simple.eml"))
        r = self.curl(self.write("auth.eml", body), "--user", "alice:secret")
        self.assertEqual(r.returncode, 0, r.stderr)
        [(data, env)] = self.new_messages()
        self.assertEqual(data, body)
        self.assertEqual(env["auth_user"], "alice")
        auth = [e for e in self.srv.events() if e["event"] == "auth"
                and e["session"] == env["session"]]
        self.assertEqual([(e["user"], e["ok"]) for e in auth], [("alice", True)])

    def test_auth_each_mechanism(self):
        path = self.write("mech.eml", b"Subject: mech\r\n\r\nx\r\n")
        mechs = ("PLAIN", "LOGIN", "CRAM-MD5")
        for mech in mechs:
            with self.subTest(mech=mech):
                r = self.curl(path, "--user", "bob:secret", "--login-options", "AUTH=" + mech)
                self.assertEqual(r.returncode, 0, r.stderr)
        msgs = self.new_messages(len(mechs))
        self.assertEqual([env["auth_user"] for _, env in msgs], ["bob"] * len(mechs))
        sessions = {env["session"] for _, env in msgs}
        used = [e["mechanism"] for e in self.srv.events()
                if e["event"] == "auth" and e["session"] in sessions]
        self.assertEqual(used, list(mechs))

    def test_auth_bearer_token(self):
        # curl --oauth2-bearer picks OAUTHBEARER; mocksrv takes the password as the token.
        r = self.curl(self.write("oauth.eml", b"Subject: oauth\r\n\r\nx\r\n"),
                      "--user", "alice", "--oauth2-bearer", "secret")
        self.assertEqual(r.returncode, 0, r.stderr)
        [(_, env)] = self.new_messages()
        self.assertEqual(env["auth_user"], "alice")

    def test_auth_wrong_password(self):
        r = self.curl(self.write("bad.eml", b"Subject: no\r\n\r\nx\r\n"), "--user", "alice:bad")
        self.assertEqual(r.returncode, 67, r.stderr)  # CURLE_LOGIN_DENIED
        self.new_messages(0)


if __name__ == "__main__":
    unittest.main()
