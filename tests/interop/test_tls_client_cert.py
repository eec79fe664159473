"""Client certificates (tls.client_ca) against mocksrv, with Python's ssl, openssl s_client, curl
and swaks: a certificate from the trusted CA (certs/client.pem, CN alice) is accepted, and its
subject is in the tls.done event ("client") and in the spool envelope ("tls_client"); one from
another CA (certs/other-client.pem, CN mallory) is refused with tls.fail and nothing is
delivered; a client without a certificate may still go on (SPEC 3: "request and verify"). The
server keeps serving after every refusal.

The server certificate is the fixed one (--cert/--key certs/server.pem), so everything here is
verified against certs/ca.pem. The scenario's client_ca path is relative to the scenario file,
and the certificates are made at build time: the test copies fixtures/scenarios/
tls-client-cert.yaml and certs/ca.pem (as client-ca.pem) into one temporary directory."""
import os
import shutil
import poplib
import smtplib
import ssl
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (MocksrvCase, cert, client_context, code,  # noqa: E402
                             last_session_id, scenario, smtp_client)

HOST = "127.0.0.1"
BODY = b"Subject: with a client certificate\r\n\r\nhello\r\n"
TOOL_TIMEOUT = 30
OPENSSL = shutil.which("openssl") or "openssl"
CURL = shutil.which("curl") or "curl"
SWAKS = shutil.which("swaks")


class TlsClientCertTest(MocksrvCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = cls.shared_tmpdir()
        path = os.path.join(cls.tmp, "tls-client-cert.yaml")
        shutil.copyfile(scenario("tls-client-cert.yaml"), path)
        shutil.copyfile(cert("ca.pem"), os.path.join(cls.tmp, "client-ca.pem"))
        cls.srv = cls.spawn_shared(path, args=["--cert", cert("server.pem"),
                                      "--key", cert("server.key")])

    def ctx(self, who=None, max_version=None):
        ctx = client_context(cert("ca.pem"),
                             who and cert(who + ".pem"), who and cert(who + ".key"))
        if max_version:
            ctx.maximum_version = max_version
        return ctx

    def event(self, kind, session):
        return self.srv.wait_event(lambda e: e["event"] == kind and e.get("session") == session,
                                   what="%s of session %d" % (kind, session))

    def assert_refused(self, listener, sid=None):
        sid = sid or last_session_id(self.srv, listener)
        fail = self.event("tls.fail", sid)
        self.assertEqual(fail["listener"], listener)
        self.assertIn("certificate verify failed", fail["reason"])
        self.assertNotIn("tls.done", [e["event"] for e in self.srv.events()
                                      if e.get("session") == sid])
        self.event("session.close", sid)
        self.new_messages(0)
        self.still_serving()

    def still_serving(self):
        s = smtplib.SMTP_SSL("localhost", self.srv.port("smtps"), context=self.ctx("client"),
                             timeout=5)
        self.addCleanup(s.close)
        self.assertEqual(s.noop()[0], 250)
        s.quit()

    # ---- accepted ----

    def test_smtp_ssl_with_client_certificate(self):
        for version in (None, ssl.TLSVersion.TLSv1_2):
            with self.subTest(max_version=version):
                self.before = set(self.srv.spool_ids())
                s = smtplib.SMTP_SSL("localhost", self.srv.port("smtps"),
                                     context=self.ctx("client", version), timeout=5)
                self.addCleanup(s.close)
                self.assertEqual(s.sendmail("x@client.example", ["alice@mock.test"], BODY), {})
                s.quit()
                [(data, env)] = self.new_messages()
                self.assertEqual(data, BODY)
                self.assertIs(env["tls"], True)
                self.assertEqual(env["tls_client"], "CN=alice")
                done = self.event("tls.done", env["session"])
                self.assertEqual(done["client"], "CN=alice")
                self.assertEqual(done["version"], "TLSv1.2" if version else "TLSv1.3")
                self.assertTrue(done["cipher"])

    def test_starttls_with_client_certificate(self):
        c = smtp_client(self.srv.port("smtp"))
        self.addCleanup(c.close)
        c.cmd("EHLO client.example")
        self.assertEqual(c.cmd("STARTTLS"), "220 2.0.0 Ready to start TLS")
        c.start_tls(self.ctx("client"), "mock.test")
        self.assertEqual(code(c.cmd("EHLO client.example")), 250)
        self.assertEqual(code(c.cmd("MAIL FROM:<x@client.example>")), 250)
        self.assertEqual(code(c.cmd("RCPT TO:<alice@mock.test>")), 250)
        self.assertEqual(code(c.cmd("DATA")), 354)
        c.send(BODY + b".\r\n")
        self.assertEqual(code(c.reply()), 250)
        c.cmd("QUIT")
        [(_, env)] = self.new_messages()
        self.assertEqual(env["tls_client"], "CN=alice")
        self.assertEqual(env["listener"], "smtp")
        self.assertEqual(self.event("tls.done", env["session"])["client"], "CN=alice")

    def test_pop3s_with_client_certificate(self):
        p = poplib.POP3_SSL("localhost", self.srv.port("pop3s"), context=self.ctx("client"),
                            timeout=5)
        self.addCleanup(p.close)
        p.user("alice")
        p.pass_("secret")
        p.quit()
        sid = last_session_id(self.srv, "pop3s")
        self.assertEqual(self.event("tls.done", sid)["client"], "CN=alice")

    def test_no_client_certificate_goes_on(self):
        s = smtplib.SMTP_SSL("localhost", self.srv.port("smtps"), context=self.ctx(), timeout=5)
        self.addCleanup(s.close)
        s.sendmail("x@client.example", ["alice@mock.test"], BODY)
        s.quit()
        [(_, env)] = self.new_messages()
        self.assertIs(env["tls"], True)
        self.assertIsNone(env["tls_client"])
        self.assertIsNone(self.event("tls.done", env["session"])["client"])

    # ---- refused ----

    def test_other_ca_refused_python(self):
        # TLS 1.3: the client's handshake ends before the server has checked the certificate,
        # so the refusal (alert unknown_ca) arrives at the first read. TLS 1.2: in the handshake.
        for version in (None, ssl.TLSVersion.TLSv1_2):
            with self.subTest(max_version=version):
                with self.assertRaises((ssl.SSLError, smtplib.SMTPServerDisconnected,
                                        ConnectionError)) as cm:
                    s = smtplib.SMTP_SSL("localhost", self.srv.port("smtps"),
                                         context=self.ctx("other-client", version), timeout=5)
                    self.addCleanup(s.close)
                    s.sendmail("x@client.example", ["alice@mock.test"], BODY)
                self.assertIn("UNKNOWN_CA", str(cm.exception).upper().replace(" ", "_"))
                self.assert_refused("smtps")

    def test_other_ca_refused_after_starttls(self):
        c = smtp_client(self.srv.port("smtp"))
        self.addCleanup(c.close)
        c.cmd("EHLO client.example")
        self.assertEqual(c.cmd("STARTTLS"), "220 2.0.0 Ready to start TLS")
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            c.start_tls(self.ctx("other-client"), "mock.test")
            c.cmd("EHLO client.example")
        self.assert_refused("smtp")

    def test_openssl_s_client(self):
        argv = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % self.srv.port("smtps"),
                "-ign_eof", "-crlf", "-nocommands", "-verify_return_error",
                "-CAfile", cert("ca.pem"), "-verify_hostname", "mock.test"]
        ok = subprocess.run(argv + ["-cert", cert("client.pem"), "-key", cert("client.key")],
                            input=b"EHLO client.example\nQUIT\n", capture_output=True,
                            timeout=TOOL_TIMEOUT)
        out = (ok.stdout + ok.stderr).decode("utf-8", "replace")
        self.assertEqual(ok.returncode, 0, out)
        self.assertIn("Verification: OK", out)
        self.assertIn("221 2.0.0 Bye", out)
        self.assertIn("Acceptable client certificate CA names\nCN = mocksrv test CA", out)
        self.assertEqual(self.event("tls.done", last_session_id(self.srv, "smtps"))["client"],
                         "CN=alice")
        bad = subprocess.run(argv + ["-cert", cert("other-client.pem"),
                                     "-key", cert("other-client.key")],
                             input=b"EHLO client.example\nQUIT\n", capture_output=True,
                             timeout=TOOL_TIMEOUT)
        out = (bad.stdout + bad.stderr).decode("utf-8", "replace")
        self.assertNotEqual(bad.returncode, 0, out)
        self.assertIn("alert unknown ca", out)
        self.assertNotIn("\n250", out)
        self.assert_refused("smtps")

    def test_curl(self):
        def curl(who):
            argv = [CURL, "-sS", "--max-time", "20", "--cacert", cert("ca.pem"),
                    "--cert", cert(who + ".pem"), "--key", cert(who + ".key"),
                    "smtps://localhost:%d/" % self.srv.port("smtps"),
                    "--mail-from", "x@client.example", "--mail-rcpt", "alice@mock.test",
                    "-T", "-"]
            return subprocess.run(argv, input=BODY, capture_output=True, timeout=TOOL_TIMEOUT)
        r = curl("client")
        self.assertEqual(r.returncode, 0, r.stderr)
        [(_, env)] = self.new_messages()
        self.assertEqual(env["tls_client"], "CN=alice")
        self.before = set(self.srv.spool_ids())
        r = curl("other-client")
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assert_refused("smtps")

    @unittest.skipIf(SWAKS is None, "swaks is not installed (ci/setup.sh installs it)")
    def test_swaks(self):
        def swaks(who):
            argv = [SWAKS, "--server", HOST, "--port", str(self.srv.port("smtp")), "--tls",
                    "--tls-verify", "--tls-ca-path", cert("ca.pem"),
                    "--tls-cert", cert(who + ".pem"), "--tls-key", cert(who + ".key"),
                    "--to", "alice@mock.test", "--from", "x@client.example",
                    "--helo", "client.example", "--timeout", "10"]
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=TOOL_TIMEOUT)
            return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")
        rc, out = swaks("client")
        self.assertEqual(rc, 0, out)
        [(_, env)] = self.new_messages()
        self.assertEqual(env["tls_client"], "CN=alice")
        self.before = set(self.srv.spool_ids())
        rc, out = swaks("other-client")
        self.assertNotEqual(rc, 0, out)
        self.assert_refused("smtp")


if __name__ == "__main__":
    unittest.main()
