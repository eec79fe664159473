"""Python's smtplib and poplib (clients we did not write) over TLS against mocksrv, every one with a
verifying context (chain against the ready line's ca_file, host name checked): smtplib starttls()
and SMTP_SSL, poplib stls() and POP3_SSL; the generated certificate verifies for the scenario's
hostname, localhost, 127.0.0.1 and ::1. Also what STARTTLS means for a session (RFC 3207 4.2,
RFC 2595 4): the SMTP session starts over (MAIL before EHLO is 503, AUTH is forgotten, STARTTLS
is no longer offered and a second one is 503), POP3 CAPA lists STLS before and not after; tls:
required refuses AUTH, MAIL and USER before TLS; the tls.start/tls.done events and the spool
envelope's "tls"; a close_notify after QUIT."""
import base64
import hashlib
import os
import poplib
import re
import signal
import smtplib
import ssl
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (Mocksrv, MocksrvCase, client_context, code,  # noqa: E402
                             last_session_id, pop3_client, scenario, smtp_client)

HOST = "127.0.0.1"
BODY = b"Subject: over TLS\r\n\r\nhello\r\n"


def plain_b64(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()


class TlsPythonTest(MocksrvCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.spawn_shared(scenario("tls-interop.yaml"))
        cls.ca = cls.srv.ca_file
        if not cls.ca or not os.path.exists(cls.ca):
            cls.srv.stop()
            cls.srv.cleanup()
            raise AssertionError("ready line without a readable ca_file: %r" % cls.srv.ready)

    def ctx(self):
        return client_context(self.ca)

    def tls_done(self, session):
        return self.srv.wait_event(lambda e: e["event"] == "tls.done"
                                   and e.get("session") == session,
                                   what="tls.done of session %d" % session)

    # ---- smtplib ----

    def test_smtplib_starttls_verifies_and_delivers(self):
        s = smtplib.SMTP(local_hostname="client.example", timeout=5)
        self.addCleanup(s.close)
        s.connect(HOST, self.srv.port("smtp"))
        # mock.test does not resolve: connect by address, verify by the certificate's name
        # (SAN DNS:mock.test); starttls() checks the name in _host, which connect() set
        s._host = "mock.test"
        s.ehlo()
        self.assertTrue(s.has_extn("starttls"))
        self.assertEqual(s.starttls(context=self.ctx()), (220, b"2.0.0 Ready to start TLS"))
        self.assertIsInstance(s.sock, ssl.SSLSocket)
        s.ehlo()
        self.assertFalse(s.has_extn("starttls"), "STARTTLS still advertised over TLS")
        self.assertEqual(s.sendmail("a@client.example", ["alice@mock.test"], BODY), {})
        s.quit()
        [(data, env)] = self.new_messages()
        self.assertEqual(data, BODY)
        self.assertIs(env["tls"], True)
        self.assertIsNone(env["tls_client"])
        self.assertEqual(env["listener"], "smtp")
        ev = self.tls_done(env["session"])
        self.assertEqual(ev["listener"], "smtp")
        self.assertIn(ev["version"], ("TLSv1.2", "TLSv1.3"))
        self.assertTrue(ev["cipher"])
        self.assertIsNone(ev["client"])
        # tls.start comes before tls.done, in the same session
        kinds = [e["event"] for e in self.srv.events() if e.get("session") == env["session"]]
        self.assertLess(kinds.index("tls.start"), kinds.index("tls.done"))

    def test_smtp_ssl_every_name_of_the_certificate(self):
        # SPEC 6: the generated certificate is for hostname, localhost, 127.0.0.1 and ::1.
        self.assertEqual(self.srv.listener("smtps6")["host"], "::1")
        for name, listener in (("localhost", "smtps"), ("127.0.0.1", "smtps"), ("::1", "smtps6")):
            with self.subTest(name=name):
                s = smtplib.SMTP_SSL(name, self.srv.port(listener),
                                     local_hostname="client.example", context=self.ctx(),
                                     timeout=5)
                self.addCleanup(s.close)
                self.assertEqual(s.sock.server_hostname, name)
                self.assertEqual(s.ehlo()[0], 250)
                self.assertFalse(s.has_extn("starttls"))
                self.assertEqual(s.noop()[0], 250)
                s.quit()
        # mock.test does not resolve: connect by address, check the name
        for listener in ("smtps", "smtps6"):
            with self.subTest(name="mock.test", listener=listener):
                host, port = self.srv.addr(listener)
                c = smtp_client(port, host=host, tls=self.ctx(), server_hostname="mock.test")
                self.addCleanup(c.close)
                self.assertEqual(c.greeting, "220 mock.test ESMTP mocksrv")
                self.assertEqual(c.cmd("QUIT"), "221 Bye")  # no EHLO: no enhanced code

    def test_smtp_ssl_sendmail_envelope(self):
        s = smtplib.SMTP_SSL("localhost", self.srv.port("smtps"), local_hostname="client.example",
                             context=self.ctx(), timeout=5)
        self.addCleanup(s.close)
        s.login("alice", "secret")
        s.sendmail("alice@mock.test", ["bob@mock.test"], BODY)
        s.quit()
        [(data, env)] = self.new_messages()
        self.assertEqual(data, BODY)
        self.assertIs(env["tls"], True)
        self.assertEqual(env["auth_user"], "alice")
        self.assertEqual(env["listener"], "smtps")

    def test_verifying_client_refuses_a_wrong_name(self):
        # The check is not vacuous: a name the certificate does not carry fails verification.
        with self.assertRaises(ssl.SSLCertVerificationError):
            c = smtp_client(self.srv.port("smtps"), tls=self.ctx(), server_hostname="wrong.example")
            c.close()
        # ... and the server keeps serving.
        s = smtplib.SMTP_SSL(HOST, self.srv.port("smtps"), context=self.ctx(), timeout=5)
        self.addCleanup(s.close)
        self.assertEqual(s.noop()[0], 250)
        s.quit()

    # ---- STARTTLS starts the SMTP session over (RFC 3207 4.2) ----

    def test_starttls_resets_smtp_session(self):
        c = smtp_client(self.srv.port("smtp"))
        self.addCleanup(c.close)
        ehlo = c.cmd("EHLO client.example")
        self.assertIn("250-STARTTLS", ehlo.split("\n"))
        self.assertEqual(c.cmd("AUTH PLAIN " + plain_b64("alice", "secret")),
                         "235 2.7.0 Authentication successful")
        self.assertEqual(c.cmd("STARTTLS"), "220 2.0.0 Ready to start TLS")
        c.start_tls(self.ctx(), "mock.test")
        # no EHLO since the handshake: the session starts over (no enhanced codes either)
        self.assertEqual(code(c.cmd("MAIL FROM:<alice@mock.test>")), 503)
        ehlo = c.cmd("EHLO client.example").split("\n")
        self.assertEqual(ehlo[0], "250-mock.test")
        self.assertNotIn("STARTTLS", [l[4:] for l in ehlo])
        self.assertIn("AUTH PLAIN LOGIN", [l[4:] for l in ehlo])
        # a second STARTTLS is refused
        self.assertEqual(c.cmd("STARTTLS"), "503 5.5.1 Error: TLS already active")
        # the AUTH from before TLS is forgotten: a message goes without auth_user ...
        self.assertEqual(code(c.cmd("MAIL FROM:<x@client.example>")), 250)
        self.assertEqual(code(c.cmd("RCPT TO:<alice@mock.test>")), 250)
        self.assertEqual(code(c.cmd("DATA")), 354)
        c.send(BODY + b".\r\n")
        self.assertEqual(code(c.reply()), 250)
        [(data, env)] = self.new_messages()
        self.assertIsNone(env["auth_user"])
        self.assertIs(env["tls"], True)
        self.assertEqual(env["helo"], "client.example")
        # ... and AUTH works again (not "already authenticated")
        self.assertEqual(c.cmd("AUTH PLAIN " + plain_b64("bob", "secret")),
                         "235 2.7.0 Authentication successful")
        self.assertEqual(c.cmd("QUIT"), "221 2.0.0 Bye")

    def test_smtplib_second_starttls_is_503(self):
        s = smtplib.SMTP(HOST, self.srv.port("smtp"), timeout=5)
        self.addCleanup(s.close)
        s.ehlo()
        s._host = "mock.test"
        s.starttls(context=self.ctx())
        s.ehlo()
        self.assertEqual(s.docmd("STARTTLS"), (503, b"5.5.1 Error: TLS already active"))
        s.quit()

    def test_starttls_not_offered_on_plain_listener(self):
        s = smtplib.SMTP(HOST, self.srv.port("plain"), timeout=5)
        self.addCleanup(s.close)
        s.ehlo()
        self.assertFalse(s.has_extn("starttls"))
        with self.assertRaises(smtplib.SMTPNotSupportedError):
            s.starttls(context=self.ctx())
        self.assertEqual(s.docmd("STARTTLS")[0], 500)
        s.quit()

    # ---- tls: required (SPEC 3.1) ----

    def test_required_refuses_auth_and_mail_before_tls(self):
        c = smtp_client(self.srv.port("submission"))
        self.addCleanup(c.close)
        ehlo = [l[4:] for l in c.cmd("EHLO client.example").split("\n")]
        self.assertIn("STARTTLS", ehlo)
        self.assertFalse([l for l in ehlo if l.startswith("AUTH")], "AUTH offered before TLS")
        must = "530 5.7.0 Must issue a STARTTLS command first"
        self.assertEqual(c.cmd("AUTH PLAIN " + plain_b64("alice", "secret")), must)
        self.assertEqual(c.cmd("AUTH LOGIN"), must)
        self.assertEqual(c.cmd("MAIL FROM:<alice@mock.test>"), must)
        self.assertEqual(c.cmd("STARTTLS"), "220 2.0.0 Ready to start TLS")
        c.start_tls(self.ctx(), "localhost")
        ehlo = [l[4:] for l in c.cmd("EHLO client.example").split("\n")]
        self.assertIn("AUTH PLAIN LOGIN", ehlo)
        self.assertNotIn("STARTTLS", ehlo)
        self.assertEqual(c.cmd("AUTH PLAIN " + plain_b64("alice", "secret")),
                         "235 2.7.0 Authentication successful")
        self.assertEqual(code(c.cmd("MAIL FROM:<alice@mock.test>")), 250)
        c.cmd("QUIT")
        # no credentials were checked in plaintext: the only auth event is the one over TLS
        sid = last_session_id(self.srv, "submission")
        auths = [e for e in self.srv.events() if e["event"] == "auth" and e.get("session") == sid]
        self.assertEqual(len(auths), 1, auths)

    def test_required_smtplib_login_fails_then_works_after_starttls(self):
        s = smtplib.SMTP(HOST, self.srv.port("submission"), timeout=5)
        self.addCleanup(s.close)
        s.ehlo()
        with self.assertRaises(smtplib.SMTPNotSupportedError):
            s.login("alice", "secret")  # AUTH is not advertised before TLS
        with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
            s.sendmail("alice@mock.test", ["bob@mock.test"], BODY)
        self.assertEqual(cm.exception.smtp_code, 530)
        s._host = "mock.test"
        s.starttls(context=self.ctx())
        s.ehlo()
        self.assertEqual(s.login("alice", "secret")[0], 235)
        self.assertEqual(s.sendmail("alice@mock.test", ["bob@mock.test"], BODY), {})
        s.quit()
        [(_, env)] = self.new_messages()
        self.assertEqual(env["listener"], "submission")
        self.assertIs(env["tls"], True)
        self.assertEqual(env["auth_user"], "alice")

    # ---- poplib ----

    def test_poplib_stls_verifies_and_capa(self):
        p = poplib.POP3(HOST, self.srv.port("pop3"), timeout=5)
        self.addCleanup(p.close)
        self.assertIn("STLS", p.capa())
        self.assertEqual(p.stls(context=client_context(self.ca, hostname_check=False)),
                         b"+OK Begin TLS negotiation now.")
        self.assertIsInstance(p.sock, ssl.SSLSocket)
        self.assertNotIn("STLS", p.capa(), "STLS still listed over TLS")
        # a second STLS is refused
        with self.assertRaises(poplib.error_proto) as cm:
            p._shortcmd("STLS")
        self.assertEqual(cm.exception.args[0], b"-ERR TLS is already active.")
        p.user("alice")
        p.pass_("secret")
        count, _ = p.stat()
        self.assertGreaterEqual(count, 1)  # the scenario's message, + mail of other tests
        _, lines, _ = p.retr(1)
        self.assertIn(b"hello through TLS", lines)
        p.quit()

    def test_poplib_stls_verifies_hostname(self):
        # poplib's stls() checks the host it connected to: connect by name for the SAN check
        for name in ("localhost", "127.0.0.1"):
            with self.subTest(name=name):
                p = poplib.POP3(name, self.srv.port("pop3"), timeout=5)
                self.addCleanup(p.close)
                p.stls(context=self.ctx())
                self.assertEqual(p.sock.server_hostname, name)
                p.quit()

    def test_pop3_ssl(self):
        for name, listener in (("localhost", "pop3s"), ("127.0.0.1", "pop3s")):
            with self.subTest(name=name):
                p = poplib.POP3_SSL(name, self.srv.port(listener), context=self.ctx(), timeout=5)
                self.addCleanup(p.close)
                self.assertTrue(p.getwelcome().startswith(b"+OK "))
                self.assertNotIn("STLS", p.capa())
                p.user("alice")
                p.pass_("secret")
                self.assertGreaterEqual(p.stat()[0], 1)  # + mail delivered by other tests
                p.quit()

    def test_pop3_required_refuses_credentials_before_stls(self):
        c = pop3_client(self.srv.port("pop3req"))
        self.addCleanup(c.close)
        status, capa = c.cmd_multi("CAPA")
        self.assertIn(b"\r\nSTLS\r\n", b"\r\n" + capa)
        refused = "-ERR Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
        self.assertEqual(c.cmd("USER alice"), refused)
        self.assertEqual(c.cmd("PASS secret"), refused)
        self.assertEqual(c.cmd("AUTH PLAIN " + plain_b64("alice", "secret")), refused)
        # APOP (pop3.apop in the scenario): a digest is a credential too
        stamp = re.search(r"<[^>]*>", c.greeting)
        self.assertIsNotNone(stamp, c.greeting)
        digest = hashlib.md5((stamp.group(0) + "secret").encode()).hexdigest()
        self.assertEqual(c.cmd("APOP alice " + digest), refused)
        self.assertEqual(c.cmd("STLS"), "+OK Begin TLS negotiation now.")
        c.start_tls(self.ctx(), "mock.test")
        status, capa = c.cmd_multi("CAPA")
        self.assertNotIn(b"\r\nSTLS\r\n", b"\r\n" + capa)
        self.assertEqual(c.cmd("USER alice"), "+OK")
        self.assertTrue(c.cmd("PASS secret").startswith("+OK"))
        self.assertTrue(c.cmd("QUIT").startswith("+OK"))

    def test_stls_forgets_user(self):
        # RFC 2595 4: the session stays in AUTHORIZATION, but a USER given in plaintext does
        # not carry over into TLS.
        c = pop3_client(self.srv.port("pop3"))
        self.addCleanup(c.close)
        self.assertEqual(c.cmd("USER alice"), "+OK")
        self.assertEqual(c.cmd("STLS"), "+OK Begin TLS negotiation now.")
        c.start_tls(self.ctx(), "mock.test")
        self.assertTrue(c.cmd("PASS secret").startswith("-ERR"))
        self.assertEqual(c.cmd("USER alice"), "+OK")
        self.assertTrue(c.cmd("PASS secret").startswith("+OK"))
        self.assertTrue(c.cmd("QUIT").startswith("+OK"))

    def test_poplib_required_stls(self):
        p = poplib.POP3(HOST, self.srv.port("pop3req"), timeout=5)
        self.addCleanup(p.close)
        with self.assertRaises(poplib.error_proto):
            p.user("alice")
        p.stls(context=client_context(self.ca, hostname_check=False))
        p.user("alice")
        p.pass_("secret")
        self.assertGreaterEqual(p.stat()[0], 1)  # + mail delivered by other tests
        p.quit()

    # ---- the end of a TLS session ----

    def test_quit_gets_close_notify(self):
        for listener, quit_cmd, cls in (("smtps", "QUIT", smtp_client),
                                        ("pop3s", "QUIT", pop3_client)):
            with self.subTest(listener=listener):
                c = cls(self.srv.port(listener), read_greeting=False)
                self.addCleanup(c.close)
                # suppress_ragged_eofs=False: an EOF without close_notify raises SSLEOFError
                c.start_tls(self.ctx(), "localhost", suppress_ragged_eofs=False)
                c.greeting = c.reply()
                c.cmd(quit_cmd)
                try:
                    rest = c.wait_closed()
                except ssl.SSLEOFError as e:
                    self.fail("the server closed the TLS session without close_notify: %s" % e)
                self.assertEqual(rest, b"")

    # ---- volume and pipelining through the TLS layer ----

    def test_pipelined_commands_over_tls(self):
        c = smtp_client(self.srv.port("smtps"), tls=self.ctx(), server_hostname="localhost")
        self.addCleanup(c.close)
        c.send(b"EHLO client.example\r\nNOOP\r\nMAIL FROM:<a@client.example>\r\n"
               b"RCPT TO:<alice@mock.test>\r\nRSET\r\nQUIT\r\n")  # one TLS record
        self.assertEqual([c.reply().split("\n")[-1] for _ in range(6)],
                         ["250 8BITMIME", "250 2.0.0 Ok", "250 2.1.0 Ok", "250 2.1.5 Ok",
                          "250 2.0.0 Ok", "221 2.0.0 Bye"])

    def test_large_message_both_ways(self):
        # 5 MB: many TLS records in each direction, partial socket writes on the server
        body = b"Subject: big over TLS\r\n\r\n" + (b"x" * 998 + b"\r\n") * 5000
        s = smtplib.SMTP_SSL("localhost", self.srv.port("smtps"), context=self.ctx(), timeout=10)
        self.addCleanup(s.close)
        self.assertEqual(s.sendmail("a@client.example", ["bob@mock.test"], body), {})
        s.quit()
        [(data, _)] = self.new_messages()
        self.assertEqual(data, body)
        p = poplib.POP3_SSL("localhost", self.srv.port("pop3s"), context=self.ctx(), timeout=10)
        self.addCleanup(p.close)
        p.user("bob")
        p.pass_("secret")
        count, _ = p.stat()
        _, lines, _ = p.retr(count)
        self.assertEqual(b"\r\n".join(lines) + b"\r\n", body)
        p.quit()


class TlsShutdownTest(MocksrvCase):
    """SIGTERM closes open TLS sessions with the protocol's shutdown reply, encrypted."""

    def test_sigterm_with_tls_sessions_open(self):
        srv = Mocksrv(scenario("tls-interop.yaml")).start()
        self.addCleanup(srv.cleanup)
        self.addCleanup(srv.stop)
        ctx = client_context(srv.ca_file)
        smtps = smtp_client(srv.port("smtps"), tls=ctx, server_hostname="localhost")
        self.addCleanup(smtps.close)
        self.assertEqual(code(smtps.cmd("EHLO client.example")), 250)
        pop3 = pop3_client(srv.port("pop3"))
        self.addCleanup(pop3.close)
        self.assertEqual(pop3.cmd("STLS"), "+OK Begin TLS negotiation now.")
        pop3.start_tls(ctx, "localhost")
        self.assertEqual(pop3.cmd("USER alice"), "+OK")  # the handshake is done on both ends
        srv.signal(signal.SIGTERM)
        self.assertEqual(smtps.wait_closed(), b"421 4.3.2 mock.test Service shutting down\r\n")
        self.assertEqual(pop3.wait_closed(), b"-ERR [SYS/TEMP] Server shutting down.\r\n")
        self.assertEqual(srv.wait(), 0, srv.stderr_text())


if __name__ == "__main__":
    unittest.main()
