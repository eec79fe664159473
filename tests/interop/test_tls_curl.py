"""curl (a client we did not write) over TLS against mocksrv, always verifying (curl's default) with
--cacert set to the ready line's ca_file: smtp:// and pop3:// with --ssl-reqd (STARTTLS / STLS),
smtps:// and pop3s:// (implicit), by the names mock.test (through --resolve), localhost,
127.0.0.1 and [::1]. Also the failures that show the checks are real: --ssl-reqd against a
listener that offers no TLS, no --cacert, a name the certificate does not carry.

curl is required (ci/setup.sh installs it): no skip."""
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import MocksrvCase, scenario  # noqa: E402

CURL = shutil.which("curl") or "curl"
TOOL_TIMEOUT = 30
BODY = b"From: x@client.example\r\nSubject: curl over TLS\r\n\r\nhello\r\n"

# curl exit codes (libcurl errors)
CURLE_PEER_FAILED_VERIFICATION = 60
CURLE_USE_SSL_FAILED = 64


class TlsCurlTest(MocksrvCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.spawn_shared(scenario("tls-interop.yaml"))
        cls.ca = cls.srv.ca_file
        cls.tmp = cls.shared_tmpdir()
        cls.body = os.path.join(cls.tmp, "body.eml")
        with open(cls.body, "wb") as f:
            f.write(BODY)

    def curl(self, *args):
        argv = [CURL, "-sS", "--max-time", "20", "--connect-timeout", "10"] + list(args)
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=TOOL_TIMEOUT)
        return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")

    def url(self, scheme, name, listener, path=""):
        port = self.srv.port(listener)
        host = "[%s]" % name if ":" in name else name
        return "%s://%s:%d/%s" % (scheme, host, port, path)

    def resolve(self, name, listener):
        """--resolve for names that do not resolve (mock.test), so the URL carries the name the
        certificate is checked against."""
        if name != "mock.test":
            return []
        return ["--resolve", "mock.test:%d:127.0.0.1" % self.srv.port(listener)]

    def send(self, scheme, name, listener, *extra):
        return self.curl(*(self.resolve(name, listener) + list(extra) + [
            "--cacert", self.ca, self.url(scheme, name, listener),
            "--mail-from", "x@client.example", "--mail-rcpt", "bob@mock.test",
            "-T", self.body]))

    # ---- SMTP ----

    def test_smtp_ssl_reqd(self):
        for name in ("mock.test", "localhost", "127.0.0.1"):
            with self.subTest(name=name):
                self.before = set(self.srv.spool_ids())
                rc, _, err = self.send("smtp", name, "smtp", "--ssl-reqd")
                self.assertEqual(rc, 0, err)
                [(data, env)] = self.new_messages()
                self.assertEqual(data, BODY)
                self.assertIs(env["tls"], True)
                self.assertEqual(env["listener"], "smtp")
                self.assertEqual(env["rcpt_to"], ["bob@mock.test"])

    def test_smtp_ssl_reqd_auth_on_required_listener(self):
        rc, _, err = self.send("smtp", "mock.test", "submission", "--ssl-reqd",
                               "-u", "alice:secret")
        self.assertEqual(rc, 0, err)
        [(data, env)] = self.new_messages()
        self.assertEqual(env["auth_user"], "alice")
        self.assertIs(env["tls"], True)
        self.assertEqual(env["listener"], "submission")

    def test_smtps(self):
        for name, listener in (("mock.test", "smtps"), ("localhost", "smtps"),
                               ("127.0.0.1", "smtps"), ("::1", "smtps6")):
            with self.subTest(name=name):
                self.before = set(self.srv.spool_ids())
                rc, _, err = self.send("smtps", name, listener)
                self.assertEqual(rc, 0, err)
                [(data, env)] = self.new_messages()
                self.assertEqual(data, BODY)
                self.assertIs(env["tls"], True)
                self.assertEqual(env["listener"], listener)

    def test_ssl_reqd_refused_without_starttls(self):
        rc, _, err = self.send("smtp", "127.0.0.1", "plain", "--ssl-reqd")
        self.assertEqual(rc, CURLE_USE_SSL_FAILED, err)
        self.new_messages(0)

    def test_verification_failures(self):
        # curl verifies by default: without --cacert the generated CA is unknown
        rc, _, err = self.curl(self.url("smtps", "127.0.0.1", "smtps"), "--mail-from", "x@y",
                               "--mail-rcpt", "bob@mock.test", "-T", self.body)
        self.assertEqual(rc, CURLE_PEER_FAILED_VERIFICATION, err)
        # a name the certificate does not carry
        rc, _, err = self.curl("--resolve", "wrong.example:%d:127.0.0.1" % self.srv.port("smtps"),
                               "--cacert", self.ca,
                               "smtps://wrong.example:%d/" % self.srv.port("smtps"),
                               "--mail-from", "x@y", "--mail-rcpt", "bob@mock.test",
                               "-T", self.body)
        self.assertEqual(rc, CURLE_PEER_FAILED_VERIFICATION, err)
        self.new_messages(0)

    # ---- POP3 ----

    def test_pop3_ssl_reqd(self):
        for name in ("mock.test", "localhost", "127.0.0.1"):
            with self.subTest(name=name):
                rc, out, err = self.curl(*(self.resolve(name, "pop3") + [
                    "--ssl-reqd", "--cacert", self.ca, "-u", "alice:secret",
                    self.url("pop3", name, "pop3", "1")]))
                self.assertEqual(rc, 0, err)
                self.assertIn(b"Subject: over TLS\r\n\r\nhello through TLS\r\n", out)

    def test_pop3_ssl_reqd_required_listener(self):
        rc, out, err = self.curl("--ssl-reqd", "--cacert", self.ca, "-u", "alice:secret",
                                 self.url("pop3", "localhost", "pop3req"))
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, rb"^1 \d+\r\n")  # LIST

    def test_pop3s(self):
        for name in ("mock.test", "localhost", "127.0.0.1"):
            with self.subTest(name=name):
                rc, out, err = self.curl(*(self.resolve(name, "pop3s") + [
                    "--cacert", self.ca, "-u", "alice:secret",
                    self.url("pop3s", name, "pop3s", "1")]))
                self.assertEqual(rc, 0, err)
                self.assertIn(b"hello through TLS", out)

    def test_pop3s_wrong_password_still_tls(self):
        rc, _, err = self.curl("--cacert", self.ca, "-u", "alice:wrong",
                               self.url("pop3s", "localhost", "pop3s"))
        self.assertEqual(rc, 67, err)  # CURLE_LOGIN_DENIED


if __name__ == "__main__":
    unittest.main()
