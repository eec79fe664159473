"""STARTTLS command injection and broken handshakes against mocksrv.

Injection (RFC 3207 4.2, RFC 2595 3.1; the class of CVE-2011-0411): plaintext pipelined behind
STARTTLS/STLS in the same packet must not survive into the encrypted session. The test sends
"STARTTLS\\r\\nEHLO injected\\r\\n" in one write, reads the go-ahead, does the handshake with
Python's ssl on the same socket, and checks that the first thing the server says over TLS is the
reply to its own next command, not to the injected one; likewise "STLS\\r\\nUSER injected\\r\\n".

Garbage instead of a ClientHello, on an implicit listener and after STARTTLS/STLS: the server
closes the connection within the deadline (EOF, possibly after a TLS alert), emits tls.fail with a
reason, and goes on serving: a new verifying client succeeds afterwards."""
import os
import poplib
import random
import smtplib
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (IO_TIMEOUT, MocksrvCase, client_context, code,  # noqa: E402
                             last_session_id, pop3_client, scenario, smtp_client)

HOST = "127.0.0.1"


def garbage_inputs():
    """(name, bytes) sent instead of a ClientHello: random bytes from a fixed seed (first byte
    kept off the TLS record types, so no record header asks for more), a plaintext command, and a
    well-formed handshake record header whose body is random."""
    rnd = random.Random(20240501)
    noise = bytes([0x47]) + rnd.randbytes(1023)
    body = rnd.randbytes(200)
    record = b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body
    return [("random", noise), ("plaintext", b"EHLO not-tls.example\r\n"),
            ("bad-handshake-record", record)]


def read_to_close(sock, timeout=IO_TIMEOUT):
    """Reads until EOF (or a reset) with a deadline; returns the bytes seen before it. Fails if
    the server keeps the connection open."""
    deadline = time.monotonic() + timeout
    got = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("the server kept the connection open; got %r" % got)
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return got
        if not chunk:
            return got
        got += chunk


class TlsInjectionTest(MocksrvCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.spawn_shared(scenario("tls-interop.yaml"))
        cls.ca = cls.srv.ca_file

    def ctx(self):
        return client_context(self.ca)

    def session_events(self, sid):
        return [e for e in self.srv.events() if e.get("session") == sid]

    # ---- injection ----

    def test_smtp_starttls_injection_is_discarded(self):
        c = smtp_client(self.srv.port("smtp"))
        self.addCleanup(c.close)
        self.assertEqual(code(c.cmd("EHLO client.example")), 250)
        c.send(b"STARTTLS\r\nEHLO injected\r\n")  # one write: one segment on loopback
        self.assertEqual(c.reply(), "220 2.0.0 Ready to start TLS")
        # start_tls fails if any plaintext followed the go-ahead (a reply to the injection)
        c.start_tls(self.ctx(), "mock.test")
        # The first reply over TLS answers NOOP: "250 Ok" without an enhanced code, since the
        # session starts over and no EHLO has been seen. A reply to "EHLO injected" would be
        # the multi-line "250-mock.test ...".
        self.assertEqual(c.cmd("NOOP"), "250 Ok")
        # The injected EHLO did not count: MAIL still wants one.
        self.assertEqual(code(c.cmd("MAIL FROM:<a@client.example>")), 503)
        self.assertEqual(code(c.cmd("EHLO mine.example")), 250)
        self.assertEqual(c.cmd("QUIT"), "221 2.0.0 Bye")
        sid = last_session_id(self.srv, "smtp")
        self.srv.wait_event(lambda e: e["event"] == "session.close" and e.get("session") == sid,
                            what="session.close")
        lines = [e.get("line") for e in self.session_events(sid) if e["event"] == "command"]
        self.assertNotIn("EHLO injected", lines, "the injected command was processed: %r"
                         % lines)
        self.assertEqual(lines, ["EHLO client.example", "STARTTLS", "NOOP",
                                 "MAIL FROM:<a@client.example>", "EHLO mine.example", "QUIT"])

    def test_pop3_stls_injection_is_discarded(self):
        c = pop3_client(self.srv.port("pop3"))
        self.addCleanup(c.close)
        c.send(b"STLS\r\nUSER injected\r\n")
        self.assertEqual(c.reply(), "+OK Begin TLS negotiation now.")
        c.start_tls(self.ctx(), "mock.test")
        # The first reply over TLS answers CAPA (a reply to "USER injected" would be "+OK" or
        # "-ERR ...").
        status, capa = c.cmd_multi("CAPA")
        self.assertEqual(status, "+OK Capability list follows")
        self.assertNotIn(b"\r\nSTLS\r\n", b"\r\n" + capa)
        # The injected USER did not count: PASS without USER is refused ...
        self.assertTrue(c.cmd("PASS secret").startswith("-ERR"))
        # ... and a real login works.
        self.assertEqual(c.cmd("USER alice"), "+OK")
        self.assertTrue(c.cmd("PASS secret").startswith("+OK"))
        self.assertTrue(c.cmd("QUIT").startswith("+OK"))
        sid = last_session_id(self.srv, "pop3")
        self.srv.wait_event(lambda e: e["event"] == "session.close" and e.get("session") == sid,
                            what="session.close")
        lines = [e.get("line") for e in self.session_events(sid) if e["event"] == "command"]
        self.assertNotIn("USER injected", lines, "the injected command was processed: %r"
                         % lines)

    def test_smtp_injection_on_required_listener(self):
        # With tls: required the stakes are AUTH: an injected AUTH must not log anyone in.
        c = smtp_client(self.srv.port("submission"))
        self.addCleanup(c.close)
        c.cmd("EHLO client.example")
        c.send(b"STARTTLS\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n")
        self.assertEqual(c.reply(), "220 2.0.0 Ready to start TLS")
        c.start_tls(self.ctx(), "mock.test")
        self.assertEqual(c.cmd("NOOP"), "250 Ok")
        self.assertEqual(code(c.cmd("EHLO mine.example")), 250)
        self.assertEqual(code(c.cmd("MAIL FROM:<a@client.example>")), 250)
        c.cmd("QUIT")
        sid = last_session_id(self.srv, "submission")
        self.srv.wait_event(lambda e: e["event"] == "session.close" and e.get("session") == sid,
                            what="session.close")
        self.assertEqual([e for e in self.session_events(sid) if e["event"] == "auth"], [])

    # ---- garbage instead of a ClientHello ----

    def check_refused(self, listener, sid, what):
        fail = self.srv.wait_event(lambda e: e["event"] == "tls.fail" and e.get("session") == sid,
                                   what="tls.fail of session %d (%s)" % (sid, what))
        self.assertEqual(fail["listener"], listener)
        self.assertIsInstance(fail.get("reason"), str)
        self.assertTrue(fail["reason"], fail)
        close = self.srv.wait_event(lambda e: e["event"] == "session.close"
                                    and e.get("session") == sid,
                                    what="session.close of session %d" % sid)
        self.assertIn(close["reason"], ("error", "peer-closed"), close)
        self.assertNotIn("tls.done", [e["event"] for e in self.session_events(sid)])

    def check_alert_then_eof(self, got, what):
        # Nothing but (optionally) a TLS alert record: content type 21, then EOF.
        if got:
            self.assertEqual(got[0], 0x15, "%s: not a TLS alert before EOF: %r" % (what, got))
            self.assertEqual(len(got), 5 + int.from_bytes(got[3:5], "big"),
                             "%s: more than one alert record: %r" % (what, got))

    def still_serving(self):
        s = smtplib.SMTP_SSL("localhost", self.srv.port("smtps"), context=self.ctx(), timeout=5)
        self.addCleanup(s.close)
        self.assertEqual(s.ehlo()[0], 250)
        s.quit()
        p = poplib.POP3_SSL("localhost", self.srv.port("pop3s"), context=self.ctx(), timeout=5)
        self.addCleanup(p.close)
        p.user("alice")
        p.pass_("secret")
        p.quit()

    def test_garbage_on_implicit_listener(self):
        for listener in ("smtps", "pop3s"):
            for name, data in garbage_inputs():
                with self.subTest(listener=listener, garbage=name):
                    sock = socket.create_connection(self.srv.addr(listener), timeout=5)
                    self.addCleanup(sock.close)
                    sock.sendall(data)
                    got = read_to_close(sock)
                    self.check_alert_then_eof(got, name)
                    self.check_refused(listener, last_session_id(self.srv, listener), name)
                    self.still_serving()

    def test_garbage_after_starttls(self):
        for name, data in garbage_inputs():
            with self.subTest(protocol="smtp", garbage=name):
                c = smtp_client(self.srv.port("smtp"))
                self.addCleanup(c.close)
                c.cmd("EHLO client.example")
                self.assertEqual(c.cmd("STARTTLS"), "220 2.0.0 Ready to start TLS")
                c.send(data)
                self.check_alert_then_eof(read_to_close(c.sock), name)
                self.check_refused("smtp", last_session_id(self.srv, "smtp"), name)
                self.still_serving()
            with self.subTest(protocol="pop3", garbage=name):
                c = pop3_client(self.srv.port("pop3"))
                self.addCleanup(c.close)
                self.assertEqual(c.cmd("STLS"), "+OK Begin TLS negotiation now.")
                c.send(data)
                self.check_alert_then_eof(read_to_close(c.sock), name)
                self.check_refused("pop3", last_session_id(self.srv, "pop3"), name)
                self.still_serving()

    def test_garbage_while_another_session_is_open(self):
        # A session in the middle of its dialogue is not disturbed by a broken handshake.
        s = smtplib.SMTP_SSL("localhost", self.srv.port("smtps"), context=self.ctx(), timeout=5)
        self.addCleanup(s.close)
        s.ehlo()
        s.mail("a@client.example")
        sock = socket.create_connection(self.srv.addr("smtps"), timeout=5)
        self.addCleanup(sock.close)
        sock.sendall(garbage_inputs()[0][1])
        read_to_close(sock)
        self.assertEqual(s.rcpt("alice@mock.test")[0], 250)
        self.assertEqual(s.data(b"Subject: still here\r\n\r\nx\r\n")[0], 250)
        s.quit()

    def test_client_closes_mid_handshake(self):
        # The first bytes of a ClientHello, then EOF: tls.fail, and the server goes on.
        sock = socket.create_connection(self.srv.addr("smtps"), timeout=5)
        sock.sendall(b"\x16\x03\x01\x00\xc8\x01\x00\x00")
        sock.shutdown(socket.SHUT_WR)
        read_to_close(sock)
        sock.close()
        self.check_refused("smtps", last_session_id(self.srv, "smtps"), "half a ClientHello")
        self.still_serving()


if __name__ == "__main__":
    unittest.main()
