"""swaks --tls (STARTTLS) and --tls-on-connect against mocksrv, verifying the server certificate
chain against the ready line's ca_file (--tls-verify --tls-ca-path; swaks 20201014 checks the
chain only, not the host name: openssl, curl and Python check names in their own tests): the
message is spooled with "tls": true; AUTH over STARTTLS on a tls: required listener; --tls
against a listener without STARTTLS fails. test_tls_client_cert.py has swaks --tls-cert.

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
class TlsSwaksTest(MocksrvCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.spawn_shared(scenario("tls-interop.yaml"))
        cls.ca = cls.srv.ca_file

    def swaks(self, listener, *args):
        host, port = self.srv.addr(listener)
        argv = [SWAKS, "--server", host, "--port", str(port),
                "--to", "alice@mock.test", "--from", "x@client.example",
                "--helo", "client.example", "--timeout", "10",
                "--tls-verify", "--tls-ca-path", self.ca,
                "--body", "hello from swaks over TLS"] + list(args)
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")

    def test_starttls(self):
        rc, out = self.swaks("smtp", "--tls")
        self.assertEqual(rc, 0, out)
        self.assertIn("-> STARTTLS", out)
        self.assertIn("TLS started", out)
        [(data, env)] = self.new_messages()
        self.assertIn(b"\r\n\r\nhello from swaks over TLS\r\n", data)
        self.assertIs(env["tls"], True)
        self.assertEqual(env["listener"], "smtp")
        # swaks says EHLO again after the handshake (RFC 3207 4.2)
        self.assertEqual(env["helo"], "client.example")

    def test_starttls_auth_on_required_listener(self):
        rc, out = self.swaks("submission", "--tls", "--auth", "PLAIN",
                             "--auth-user", "alice", "--auth-password", "secret")
        self.assertEqual(rc, 0, out)
        [(_, env)] = self.new_messages()
        self.assertEqual(env["auth_user"], "alice")
        self.assertIs(env["tls"], True)

    def test_tls_on_connect(self):
        for listener in ("smtps", "smtps6"):
            with self.subTest(listener=listener):
                self.before = set(self.srv.spool_ids())
                rc, out = self.swaks(listener, "--tls-on-connect")
                self.assertEqual(rc, 0, out)
                [(_, env)] = self.new_messages()
                self.assertIs(env["tls"], True)
                self.assertEqual(env["listener"], listener)

    def test_tls_without_starttls_offer_fails(self):
        rc, out = self.swaks("plain", "--tls")
        self.assertNotEqual(rc, 0, out)
        self.new_messages(0)


if __name__ == "__main__":
    unittest.main()
