"""Content actions at `at: data` (FAULTS.md 1, 4 last row, 5): the payload of a command is the SMTP
DATA body, a BDAT chunk, or the SASL continuation lines of AUTH (SMTP and POP3).

What clients observe:
- SASL: a reply at data answers every continuation line instead of the mechanism: a raw client
  gets "334 QnVHZ1liVWdHeQ==" for each of its lines (CPython's _auth_buggy), Python's smtplib
  gives up with SMTPException "infinite loop" after five challenges, POP3 AUTH gets "+ ..."
  the same way; "*" still cancels. close at data ends the exchange with EOF and no reply; delay
  at data makes the next challenge and the final reply late.
- DATA: a reply at `received: 1MiB` (smtp-sink -A, FAULTS.md example H) arrives while the
  client is still sending, before its final "."; without close, the "." gets no second reply
  and the transaction is reset (a new MAIL works, nothing was stored); with
  close: {how: fin, delay} the connection ends (EOF) after the delay.
- BDAT: `received` counts per chunk; close: rst resets the connection mid-chunk; a reply answers
  the chunk early and the transaction is reset (the next chunk gets 503).
"""
import os
import smtplib
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (HOST, MocksrvCase, Wire, code, fault_events,  # noqa: E402
                             wait_closed_event)

SLACK = 0.005  # the server's timers count whole milliseconds
BUGGY = "334 QnVHZ1liVWdHeQ=="

SCENARIO = r"""version: 1
hostname: mock.test
listeners:
  auth: { protocol: smtp, port: 0 }
  authclose: { protocol: smtp, port: 0 }
  authslow: { protocol: smtp, port: 0 }
  pop3: { protocol: pop3, port: 0 }
  early: { protocol: smtp, port: 0 }
  earlyclose: { protocol: smtp, port: 0 }
  bdat: { protocol: smtp, port: 0 }
  bdatreply: { protocol: smtp, port: 0 }
smtp:
  max_size: 10MiB
  auth: [LOGIN]
  extensions: [SIZE, PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES, CHUNKING]
pop3:
  auth: [PLAIN, LOGIN]
users:
  alice: { password: secret, addresses: [alice@mock.test] }
faults:
  - name: buggy-auth
    when: { listener: auth, command: AUTH, at: data }
    reply: "334 QnVHZ1liVWdHeQ=="
  - name: auth-close
    when: { listener: authclose, command: AUTH, at: data }
    close: fin
  - name: auth-slow
    when: { listener: authslow, command: AUTH, at: data }
    delay: 300ms
  - name: buggy-pop3
    when: { listener: pop3, command: AUTH, at: data }
    reply: "+ QnVHZ1liVWdHeQ=="
  - name: early-552
    when: { listener: early, at: data, received: 1MiB }
    reply: "552 5.3.4 Message too big"
  - name: early-552-close
    when: { listener: earlyclose, at: data, received: 1MiB }
    reply: "552 5.3.4 Message too big"
    close: { how: fin, delay: 300ms }
  - name: bdat-rst
    when: { listener: bdat, command: BDAT, at: data, received: 1000 }
    close: rst
  - name: bdat-552
    when: { listener: bdatreply, command: BDAT, at: data, received: 1000 }
    reply: "552 5.3.4 Chunk too big"
"""

SMALL = b"Subject: small\r\n\r\nfits\r\n"


class BodySender(threading.Thread):
    """Sends 2 MiB of body lines on its own handle of the connection, then waits until told
    whether to send the end of data "." (bounded waits; transport errors end it quietly)."""

    def __init__(self, sock, size=2 * 1024 * 1024):
        super().__init__(daemon=True)
        self.sock = sock.dup()
        self.sock.settimeout(10)
        self.size = size
        self.sent = 0
        self.go = threading.Event()
        self.send_end = False
        self.end_sent = threading.Event()
        self.error = None

    def run(self):
        line = b"x" * 1022 + b"\r\n"
        try:
            while self.sent < self.size:
                self.sock.sendall(line)
                self.sent += len(line)
            if self.go.wait(10) and self.send_end:
                self.sock.sendall(b".\r\n")
                self.end_sent.set()
        except OSError as e:
            self.error = e
        finally:
            self.sock.close()

    def finish(self, send_end):
        self.send_end = send_end
        self.go.set()
        self.join(15)
        assert not self.is_alive(), "body sender did not finish"


class DataContentTest(MocksrvCase):
    def setUp(self):
        self.srv = self.spawn(self.scenario_text(SCENARIO, "data-content.yaml"))

    def envelope(self, w):
        self.assertEqual(code(w.cmd("EHLO client.example")), 250)
        self.assertEqual(w.cmd("MAIL FROM:<a@client.example>"), "250 2.1.0 Ok")
        self.assertEqual(w.cmd("RCPT TO:<alice@mock.test>"), "250 2.1.5 Ok")

    # ---- SASL continuation lines ----

    def test_smtp_auth_endless_334_raw(self):
        with Wire(self.srv.port("auth")) as w:
            w.line()
            self.assertEqual(code(w.cmd("EHLO client.example")), 250)
            self.assertEqual(w.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6")  # the mechanism's
            for _ in range(5):
                self.assertEqual(w.cmd("YWxpY2U="), BUGGY)
            # "*" is a cancel, not payload: RFC 4954 4 still holds
            self.assertEqual(w.cmd("*"), "501 5.7.0 Authentication aborted")
            self.assertEqual(w.cmd("NOOP"), "250 2.0.0 Ok")
            self.assertEqual(w.cmd("QUIT"), "221 2.0.0 Bye")
        wait_closed_event(self.srv, 1)
        evs = fault_events(self.srv, "buggy-auth")
        self.assertEqual([(e["at"], e["command"], e["counters"]["match"]) for e in evs],
                         [("data", "AUTH", n) for n in range(1, 6)])
        # the mechanism never saw a line: no auth attempt was reported
        self.assertEqual([e for e in self.srv.events() if e["event"] == "auth"], [])

    def test_smtplib_login_gives_up(self):
        s = smtplib.SMTP(HOST, self.srv.port("auth"), timeout=5)
        try:
            s.ehlo("client.example")
            with self.assertRaises(smtplib.SMTPException) as cm:
                s.login("alice", "secret")
            # not an authentication failure: Python detects the loop after 5 challenges
            self.assertNotIsInstance(cm.exception, smtplib.SMTPAuthenticationError)
            self.assertIn("infinite loop", str(cm.exception))
            self.assertIn("QnVHZ1liVWdHeQ==", str(cm.exception))
        finally:
            s.close()
        wait_closed_event(self.srv, 1)
        # AUTH LOGIN with the user name as initial response, the mechanism's "Password:",
        # then five password lines, each answered by the rule
        self.assertEqual(len(fault_events(self.srv, "buggy-auth")), 5)

    def test_pop3_auth_endless_plus(self):
        with Wire(self.srv.port("pop3")) as w:
            self.assertTrue(w.line().startswith("+OK"))
            w.send("AUTH PLAIN\r\n")
            self.assertEqual(w.line(), "+ ")
            for _ in range(3):
                w.send("AGFsaWNlAHNlY3JldA==\r\n")
                self.assertEqual(w.line(), "+ QnVHZ1liVWdHeQ==")
            w.send("*\r\n")
            self.assertTrue(w.line().startswith("-ERR"))
            w.send("USER alice\r\n")
            self.assertTrue(w.line().startswith("+OK"))
            w.send("QUIT\r\n")
            self.assertTrue(w.line().startswith("+OK"))
        wait_closed_event(self.srv, 1)
        self.assertEqual(len(fault_events(self.srv, "buggy-pop3")), 3)

    def test_auth_close_mid_exchange(self):
        with Wire(self.srv.port("authclose")) as w:
            w.line()
            self.assertEqual(code(w.cmd("EHLO client.example")), 250)
            self.assertEqual(w.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6")
            w.send("YWxpY2U=\r\n")
            self.assertEqual(w.read_to_end(), (b"", "eof"))
        self.assertEqual(wait_closed_event(self.srv, 1)["reason"], "fault")

    def test_auth_delay_makes_next_challenge_and_reply_late(self):
        with Wire(self.srv.port("authslow")) as w:
            w.line()
            self.assertEqual(code(w.cmd("EHLO client.example")), 250)
            self.assertEqual(w.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6")
            self.assertEqual(w.cmd("YWxpY2U="), "334 UGFzc3dvcmQ6")
            self.assertGreaterEqual(w.reads[-1][0] - w.sent_at, 0.3 - SLACK)
            self.assertEqual(w.cmd("c2VjcmV0"), "235 2.7.0 Authentication successful")
            self.assertGreaterEqual(w.reads[-1][0] - w.sent_at, 0.3 - SLACK)
            self.assertEqual(w.cmd("QUIT"), "221 2.0.0 Bye")
        wait_closed_event(self.srv, 1)
        self.assertEqual(len(fault_events(self.srv, "auth-slow")), 2)

    # ---- DATA ----

    def test_early_552_then_transaction_reset(self):
        with Wire(self.srv.port("early"), timeout=15) as w:
            w.line()
            self.envelope(w)
            self.assertEqual(code(w.cmd("DATA")), 354)
            sender = BodySender(w.sock)
            sender.start()
            try:
                reply = w.reply()
                # the answer came while the end of data had not been sent
                self.assertFalse(sender.end_sent.is_set())
            finally:
                sender.finish(send_end=True)
            self.assertEqual(reply, "552 5.3.4 Message too big")
            self.assertIsNone(sender.error)
            self.assertTrue(sender.end_sent.is_set())
            # the "." got no second reply: the next reply is MAIL's, and MAIL is not nested
            self.assertEqual(w.cmd("MAIL FROM:<b@client.example>"), "250 2.1.0 Ok")
            self.assertEqual(w.cmd("RCPT TO:<alice@mock.test>"), "250 2.1.5 Ok")
            self.assertEqual(code(w.cmd("DATA")), 354)
            w.send(SMALL + b".\r\n")
            self.assertRegex(w.reply(), r"^250 2\.0\.0 Ok: queued as \d{6}$")
            self.assertEqual(w.cmd("QUIT"), "221 2.0.0 Bye")
        [(data, env)] = self.srv.wait_messages(1)
        self.assertEqual((data, env["mail_from"]), (SMALL, "b@client.example"))
        wait_closed_event(self.srv, 1)
        [ev] = fault_events(self.srv, "early-552")
        self.assertEqual((ev["at"], ev["command"], ev["actions"]), ("data", "DATA", ["reply"]))

    def test_early_552_with_delayed_close(self):
        with Wire(self.srv.port("earlyclose"), timeout=15) as w:
            w.line()
            self.envelope(w)
            self.assertEqual(code(w.cmd("DATA")), 354)
            sender = BodySender(w.sock)
            sender.start()
            try:
                self.assertEqual(w.reply(), "552 5.3.4 Message too big")
                got_reply = w.reads[-1][0]
                self.assertFalse(sender.end_sent.is_set())
                rest, end = w.read_to_end()
            finally:
                sender.finish(send_end=False)
            self.assertEqual((rest, end), (b"", "eof"))
            self.assertGreaterEqual(w.end_at - got_reply, 0.3 - SLACK)
        self.assertEqual(wait_closed_event(self.srv, 1)["reason"], "fault")
        self.assertEqual(self.srv.spool_ids(), [])

    # ---- BDAT ----

    def test_bdat_received_counts_per_chunk_then_rst(self):
        with Wire(self.srv.port("bdat")) as w:
            w.line()
            self.envelope(w)
            # two chunks of 800: no chunk reaches 1000 bytes
            w.send(b"BDAT 800\r\n" + b"a" * 800)
            self.assertEqual(w.reply(), "250 2.0.0 800 bytes received")
            w.send(b"BDAT 800 LAST\r\n" + b"b" * 800)
            self.assertRegex(w.reply(), r"^250 2\.0\.0 Ok: queued as \d{6}$")
            self.assertEqual(w.cmd("MAIL FROM:<a@client.example>"), "250 2.1.0 Ok")
            self.assertEqual(w.cmd("RCPT TO:<alice@mock.test>"), "250 2.1.5 Ok")
            w.send(b"BDAT 1500 LAST\r\n" + b"c" * 1500)
            self.assertEqual(w.read_to_end(), (b"", "rst"))
        [(data, _)] = self.srv.wait_messages(1)
        self.assertEqual(data, b"a" * 800 + b"b" * 800)
        self.assertEqual(wait_closed_event(self.srv, 1)["reason"], "fault")
        [ev] = fault_events(self.srv, "bdat-rst")
        self.assertEqual((ev["at"], ev["command"]), ("data", "BDAT"))

    def test_bdat_early_reply_resets_transaction(self):
        with Wire(self.srv.port("bdatreply")) as w:
            w.line()
            self.envelope(w)
            w.send(b"BDAT 3000\r\n" + b"d" * 3000)
            self.assertEqual(w.reply(), "552 5.3.4 Chunk too big")
            w.send(b"BDAT 10 LAST\r\n" + b"e" * 10)
            self.assertEqual(w.reply(), "503 5.5.1 Error: need MAIL command")
            self.assertEqual(w.cmd("MAIL FROM:<a@client.example>"), "250 2.1.0 Ok")
            self.assertEqual(w.cmd("RCPT TO:<alice@mock.test>"), "250 2.1.5 Ok")
            w.send(b"BDAT 5 LAST\r\nhello")
            self.assertRegex(w.reply(), r"^250 2\.0\.0 Ok: queued as \d{6}$")
            self.assertEqual(w.cmd("QUIT"), "221 2.0.0 Bye")
        [(data, _)] = self.srv.wait_messages(1)
        self.assertEqual(data, b"hello")
        wait_closed_event(self.srv, 1)


if __name__ == "__main__":
    unittest.main()
