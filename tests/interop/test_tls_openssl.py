"""openssl s_client (a client we did not write) against mocksrv: -starttls smtp, -starttls pop3 and
implicit TLS (SMTP and POP3, on 127.0.0.1 and on ::1), each verifying the chain against the ready
line's ca_file and the host name (-verify_hostname / -verify_ip with -verify_return_error, so a
failed check ends the handshake); a wrong name fails; tls.min_version "1.3" refuses a TLS 1.2-only
client (-tls1_2) and accepts -tls1_3; --cert/--key with the fixed test certificate is what
s_client sees and verifies against the test CA.

openssl is required (the build runs it to make certs/): no skip."""
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import MocksrvCase, cert, scenario  # noqa: E402

OPENSSL = shutil.which("openssl") or "openssl"
TOOL_TIMEOUT = 30


def s_client(host, port, args, stdin=b""):
    """Runs openssl s_client against host:port with a deadline; returns (status, output with
    stderr). -ign_eof: stay until the server closes (after our QUIT); -crlf: LF -> CRLF;
    -nocommands: a line starting with Q or R is data, not a command."""
    connect = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
    argv = [OPENSSL, "s_client", "-connect", connect, "-ign_eof", "-crlf", "-nocommands",
            "-verify_return_error"] + list(args)
    r = subprocess.run(argv, input=stdin, capture_output=True, timeout=TOOL_TIMEOUT)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


class Base(MocksrvCase):
    SCENARIO = "tls-interop.yaml"
    ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls.srv = cls.spawn_shared(scenario(cls.SCENARIO), args=cls.ARGS)

    def assert_verified(self, rc, out):
        self.assertEqual(rc, 0, out)
        self.assertIn("Verification: OK", out)
        self.assertIn("Verify return code: 0 (ok)", out)


SMTP_DIALOGUE = (b"EHLO client.example\nMAIL FROM:<a@client.example>\nRCPT TO:<alice@mock.test>\n"
                 b"DATA\nSubject: s_client\n\nhello from openssl\n.\nQUIT\n")
POP3_DIALOGUE = b"USER alice\nPASS secret\nSTAT\nRETR 1\nQUIT\n"


class OpensslGeneratedCertTest(Base):
    """The certificate mocksrv generates, checked against ca_file from the ready line."""

    def verify_args(self, name):
        kind = "-verify_ip" if name[0].isdigit() or ":" in name else "-verify_hostname"
        args = ["-CAfile", self.srv.ca_file, kind, name]
        if kind == "-verify_hostname":
            args += ["-servername", name]
        return args

    def test_starttls_smtp(self):
        for name in ("mock.test", "localhost", "127.0.0.1"):
            with self.subTest(name=name):
                self.before = set(self.srv.spool_ids())
                rc, out = s_client("127.0.0.1", self.srv.port("smtp"),
                                   ["-starttls", "smtp"] + self.verify_args(name), SMTP_DIALOGUE)
                self.assert_verified(rc, out)
                if name[0].isalpha():
                    self.assertIn("Verified peername: %s" % name, out)
                self.assertIn("250 2.0.0 Ok: queued as", out)
                self.assertIn("221 2.0.0 Bye", out)
                [(data, env)] = self.new_messages()
                self.assertEqual(data, b"Subject: s_client\r\n\r\nhello from openssl\r\n")
                self.assertIs(env["tls"], True)
                self.assertEqual(env["listener"], "smtp")

    def test_starttls_smtp_required_listener(self):
        rc, out = s_client("127.0.0.1", self.srv.port("submission"),
                           ["-starttls", "smtp"] + self.verify_args("mock.test"),
                           b"EHLO client.example\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\nQUIT\n")
        self.assert_verified(rc, out)
        self.assertIn("235 2.7.0 Authentication successful", out)

    def test_starttls_pop3(self):
        for name in ("mock.test", "localhost", "127.0.0.1"):
            with self.subTest(name=name):
                rc, out = s_client("127.0.0.1", self.srv.port("pop3"),
                                   ["-starttls", "pop3"] + self.verify_args(name), POP3_DIALOGUE)
                self.assert_verified(rc, out)
                self.assertRegex(out, r"\+OK \d+ \d+\r\n")  # STAT
                self.assertIn("hello through TLS", out)  # RETR 1
                self.assertIn("+OK Logging out", out)

    def test_implicit_smtps_and_pop3s(self):
        cases = [("smtps", "mock.test"), ("smtps", "localhost"), ("smtps", "127.0.0.1"),
                 ("smtps6", "::1"), ("smtps6", "mock.test"), ("pop3s", "mock.test"),
                 ("pop3s", "127.0.0.1")]
        for listener, name in cases:
            with self.subTest(listener=listener, name=name):
                host, port = self.srv.addr(listener)
                dialogue = POP3_DIALOGUE if listener.startswith("pop3") else SMTP_DIALOGUE
                rc, out = s_client(host, port, self.verify_args(name), dialogue)
                self.assert_verified(rc, out)
                if listener.startswith("pop3"):
                    self.assertIn("+OK mocksrv POP3 server ready", out)
                    self.assertIn("hello through TLS", out)
                else:
                    self.assertIn("220 mock.test ESMTP", out)
                    self.assertIn("250 2.0.0 Ok: queued as", out)
        self.assertEqual(self.srv.listener("smtps6")["host"], "::1")

    def test_wrong_name_fails_verification(self):
        for args in (["-verify_hostname", "wrong.example"], ["-verify_ip", "10.1.2.3"]):
            with self.subTest(args=args):
                rc, out = s_client("127.0.0.1", self.srv.port("smtps"),
                                   ["-CAfile", self.srv.ca_file] + args, b"QUIT\n")
                self.assertNotEqual(rc, 0, out)
                self.assertIn("mismatch", out)
                self.assertNotIn("220 mock.test", out)

    def test_untrusted_ca_fails_verification(self):
        # the generated certificate does not chain to the fixed test CA
        rc, out = s_client("127.0.0.1", self.srv.port("smtps"),
                           ["-CAfile", cert("ca.pem"), "-verify_hostname", "mock.test"],
                           b"QUIT\n")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("unable to get local issuer certificate", out)


class OpensslMinVersionTest(Base):
    """tls.min_version "1.3": a client capped at TLS 1.2 is refused, one with 1.3 is served."""
    SCENARIO = "tls-min13.yaml"

    def test_tls12_only_client_refused(self):
        for listener, extra in (("smtps", []), ("smtp", ["-starttls", "smtp"])):
            with self.subTest(listener=listener):
                before = len([e for e in self.srv.events() if e["event"] == "tls.fail"])
                rc, out = s_client("127.0.0.1", self.srv.port(listener),
                                   extra + ["-CAfile", self.srv.ca_file, "-tls1_2"], b"QUIT\n")
                self.assertNotEqual(rc, 0, out)
                self.assertIn("alert protocol version", out)
                self.assertNotIn("\n221 ", out)
                fails = self.srv.wait_event(
                    lambda e: e["event"] == "tls.fail" and e.get("listener") == listener
                    and len([x for x in self.srv.events() if x["event"] == "tls.fail"]) > before,
                    what="tls.fail on %s" % listener)
                self.assertIn("protocol", fails["reason"])

    def test_tls13_client_served(self):
        for listener, extra in (("smtps", []), ("smtp", ["-starttls", "smtp"])):
            with self.subTest(listener=listener):
                rc, out = s_client("127.0.0.1", self.srv.port(listener),
                                   extra + ["-CAfile", self.srv.ca_file, "-verify_hostname",
                                            "mock.test", "-tls1_3"], b"QUIT\n")
                self.assert_verified(rc, out)
                self.assertIn("TLSv1.3", out)
                self.assertIn("\n221 ", out)


class OpensslFixedCertTest(Base):
    """--cert/--key: the fixed test certificate (certs/server.pem, by the test CA) is served."""

    @classmethod
    def setUpClass(cls):
        cls.ARGS = ("--cert", cert("server.pem"), "--key", cert("server.key"))
        super().setUpClass()

    def test_fixed_certificate_verifies_against_test_ca(self):
        for listener, name, extra in (("smtps", "mock.test", []),
                                      ("smtp", "localhost", ["-starttls", "smtp"]),
                                      ("pop3", "mock.test", ["-starttls", "pop3"]),
                                      ("smtps6", "::1", [])):
            with self.subTest(listener=listener):
                host, port = self.srv.addr(listener)
                kind = "-verify_ip" if ":" in name else "-verify_hostname"
                rc, out = s_client(host, port, extra + ["-CAfile", cert("ca.pem"), kind, name],
                                   b"QUIT\n")
                self.assert_verified(rc, out)
                self.assertIn("subject=CN = mock.test", out)
                self.assertIn("issuer=CN = mocksrv test CA", out)


if __name__ == "__main__":
    unittest.main()
