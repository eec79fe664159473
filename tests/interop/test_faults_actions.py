"""Fault actions that change what the client reads (fixtures/faults/smtp-actions.yaml, one rule
per NOOP/EHLO argument, and FAULTS.md example C in fixtures/faults/starttls-family.yaml): reply
(string and list), raw, inject, append, hide, tls (refuse, plaintext, alert, stall), delay (fixed
and drawn from a range), and the precedence of rules per action key.

Each case checks the exact bytes a raw client receives (and, for inject/append, that they came
in the same read as the reply), that the session goes on with normal replies afterwards, and the
fault event of the rule."""
import os
import smtplib
import socket
import ssl
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (HOST, MocksrvCase, Wire, client_context, code,  # noqa: E402
                             fault_events, fault_fixture, last_session_id,
                             wait_closed_event)

NOOP_OK = b"250 2.0.0 Ok\r\n"


class ServerCase(MocksrvCase):
    SERVE = fault_fixture("smtp-actions.yaml")
    SERVE_PORT = "smtp"

    def client(self, ehlo=True):
        w = Wire(self.port)
        self.addCleanup(w.close)
        self.assertEqual(w.reply(), "220 mock.test ESMTP mocksrv")
        if ehlo:
            self.assertEqual(code(w.cmd("EHLO client.example")), 250)
        self.sid = last_session_id(self.srv)
        return w

    def quit(self, w):
        """QUIT, its normal reply, EOF; returns the session's fault events."""
        self.assertIn(w.cmd("QUIT"), ("221 2.0.0 Bye", "221 Bye"))
        self.assertEqual(w.read_to_end(), (b"", "eof"))
        wait_closed_event(self.srv, self.sid)
        return fault_events(self.srv, session=self.sid)

    def exact(self, w, command, want):
        """Sends COMMAND; exactly WANT arrives (nothing more before the next command)."""
        w.send(command + "\r\n")
        got = w.take(len(want))
        self.assertEqual(got, want)
        # nothing else came with it: the next NOOP's reply is the next thing on the wire
        # (without enhanced status codes when a replaced EHLO left the session without EHLO)
        self.assertIn(w.cmd("NOOP"), ("250 2.0.0 Ok", "250 Ok"))
        return got


class ContentTest(ServerCase):
    def test_raw_bare_lf(self):
        w = self.client()
        self.exact(w, "NOOP raw", b"250 OK\n")
        [ev] = self.quit(w)
        self.assertEqual((ev["rule"], ev["command"], ev["actions"]), ("raw-lf", "NOOP", ["raw"]))

    def test_raw_half_line(self):
        w = self.client()
        w.send("NOOP halfline\r\nNOOP\r\n")
        self.assertEqual(w.take(len(b"250 no end" + NOOP_OK)), b"250 no end" + NOOP_OK)
        self.quit(w)

    def test_raw_with_smtplib(self):
        # smtplib accepts a bare-LF line: it reads lines with readline() and strips b" \t\r\n"
        with smtplib.SMTP(HOST, self.port, timeout=5) as s:
            self.assertEqual(s.docmd("NOOP", "raw"), (250, b"OK"))
            self.assertEqual(s.noop(), (250, b"Ok"))

    def test_reply_list_gets_continuation_dashes(self):
        w = self.client()
        self.exact(w, "NOOP multi", b"250-first\r\n250-second\r\n250 last\r\n")
        with smtplib.SMTP(HOST, self.port, timeout=5) as s:
            self.assertEqual(s.docmd("NOOP", "multi"), (250, b"first\nsecond\nlast"))
        self.quit(w)

    def test_inject_before_reply_same_read(self):
        w = self.client()
        w.send("NOOP inject\r\n")
        want = b"250-injected\r\n" + NOOP_OK
        got = w.batch()
        while len(got) < len(want):  # only if TCP split it after all; the bytes still count
            got += w.batch()
        self.assertEqual(got, want)
        self.assertEqual(len(w.reads[-1][1]), len(want), "inject and reply in one read")
        self.assertEqual(w.cmd("NOOP"), "250 2.0.0 Ok")
        [ev] = self.quit(w)
        self.assertEqual((ev["rule"], ev["actions"]), ("inject", ["inject"]))

    def test_append_after_reply_same_read(self):
        w = self.client()
        w.send("NOOP append\r\n")
        want = NOOP_OK + b"250 appended\r\n"
        self.assertEqual(w.batch(), want)
        self.assertEqual(w.reads[-1][1], want, "reply and append in one read")
        # the appended line is a reply the client never asked for: the next NOOP's reply
        # is now behind it (the client is out of step, as with STARTTLS injection)
        self.assertEqual(w.cmd("NOOP"), "250 2.0.0 Ok")
        [ev] = self.quit(w)
        self.assertEqual((ev["rule"], ev["actions"]), ("append", ["append"]))

    def test_inject_and_append_together(self):
        w = self.client()
        w.send("NOOP both\r\n")
        want = b"220-before\r\n" + NOOP_OK + b"220 after\r\n"
        self.assertEqual(w.take(len(want)), want)
        self.assertEqual(w.cmd("NOOP"), "250 2.0.0 Ok")
        self.quit(w)

    def test_append_after_ehlo(self):
        w = self.client(ehlo=False)
        w.send("EHLO append.test\r\n")
        got = w.batch()
        self.assertTrue(got.startswith(b"250-mock.test\r\n"), got)
        self.assertTrue(got.endswith(b"250 CHUNKING\r\n250 AUTH EVIL\r\n"), got)
        self.assertEqual(w.reads[-1][1], got, "EHLO reply and append in one read")
        # smtplib reading the EHLO reply stops at "250 CHUNKING"; the injected line is then
        # taken as the reply to its next command
        s = smtplib.SMTP(HOST, self.port, timeout=5)
        try:
            s.ehlo("append.test")
            self.assertEqual(s.esmtp_features["auth"], " PLAIN LOGIN")
            self.assertEqual(s.noop(), (250, b"AUTH EVIL"))
            self.assertEqual(s.noop(), (250, b"2.0.0 Ok"))  # one reply behind from now on
        finally:
            s.close()
        self.quit(w)

    def test_hide_ehlo_keywords(self):
        w = self.client(ehlo=False)
        normal = w.cmd("EHLO normal.test").split("\n")
        hidden = w.cmd("EHLO hide.test").split("\n")
        for kw in ("250-PIPELINING", "250-AUTH PLAIN LOGIN", "250 CHUNKING"):
            self.assertIn(kw, normal)
        self.assertEqual([l for l in hidden if l[4:].split(" ")[0] in
                          ("PIPELINING", "AUTH", "CHUNKING")], [])
        # everything else unchanged and in order, last line with a space
        kept = [l[4:] for l in normal if l[4:].split(" ")[0] not in
                ("PIPELINING", "AUTH", "CHUNKING")]
        self.assertEqual([l[4:] for l in hidden], kept)
        self.assertEqual(hidden[-1][:4], "250 ")
        self.assertTrue(all(l[:4] == "250-" for l in hidden[:-1]))
        with smtplib.SMTP(HOST, self.port, timeout=5) as s:
            s.ehlo("hide.test")
            self.assertFalse(s.has_extn("pipelining"))
            self.assertFalse(s.has_extn("auth"))
            self.assertFalse(s.has_extn("chunking"))
            self.assertTrue(s.has_extn("size"))
            self.assertTrue(s.has_extn("enhancedstatuscodes"))
        [ev] = self.quit(w)
        self.assertEqual((ev["rule"], ev["command"], ev["actions"]), ("ehlo-hide", "EHLO",
                                                                      ["hide"]))

    def test_reply_wins_over_hide(self):
        # FAULTS.md 5: hide edits the normal reply; combined with reply, the replacement wins
        w = self.client(ehlo=False)
        self.exact(w, "EHLO hidereply.test", b"250-mock.test\r\n250 SIZE 1\r\n")
        self.quit(w)

    def test_first_firing_rule_wins_per_action_key(self):
        # prec-first gives the reply; prec-second's reply loses, its append (no earlier rule
        # has one) is used; both fire and both are reported
        w = self.client()
        self.exact(w, "NOOP prec", b"250 first rule\r\n250 second append\r\n")
        evs = self.quit(w)
        self.assertEqual([(e["rule"], e["actions"]) for e in evs],
                         [("prec-first", ["reply"]), ("prec-second", ["append"])])


class DelayTest(ServerCase):
    def test_fixed_delay(self):
        w = self.client()
        w.send("NOOP delay\r\n")
        sent = w.sent_at
        self.assertEqual(w.reply(), "250 2.0.0 Ok")
        self.assertGreaterEqual(w.first_byte_at_after(sent) - sent, 0.300)
        # only that reply: the next NOOP is not delayed by the rule (no fault event for it)
        self.assertEqual(w.cmd("NOOP"), "250 2.0.0 Ok")
        [ev] = self.quit(w)
        self.assertEqual((ev["rule"], ev["drawn"], ev["actions"]),
                         ("delay-fixed", {"delay_ms": 300}, ["delay"]))

    def test_delay_never_shorter_than_configured(self):
        # "delay: 50ms" must hold the reply back at least 50 ms after the command arrived, so
        # at least 50 ms after the client sent it. Twenty tries, no slack at all.
        w = self.client()
        short = []
        for _ in range(20):
            w.send("NOOP short\r\n")
            sent = w.sent_at
            self.assertEqual(w.reply(), "250 2.0.0 Ok")
            waited = w.first_byte_at_after(sent) - sent
            if waited < 0.050:
                short.append(round(waited * 1000, 3))
        self.quit(w)
        self.assertEqual(short, [], "replies of a 50 ms delay that came sooner (ms)")

    def test_range_delay_drawn_within_range(self):
        w = self.client()
        waited = []
        for _ in range(5):
            w.send("NOOP range\r\n")
            sent = w.sent_at
            self.assertEqual(w.reply(), "250 2.0.0 Ok")
            waited.append(w.first_byte_at_after(sent) - sent)
        evs = self.quit(w)
        self.assertEqual([e["rule"] for e in evs], ["delay-range"] * 5)
        drawn = [e["drawn"]["delay_ms"] for e in evs]
        for d, t in zip(drawn, waited):
            self.assertGreaterEqual(d, 200)
            self.assertLessEqual(d, 400)
            self.assertGreaterEqual(t, d / 1000.0, "drawn %d ms, waited %.4f s" % (d, t))
        self.assertEqual([e["counters"]["match"] for e in evs], [1, 2, 3, 4, 5])
        self.assertGreater(len(set(drawn)), 1, "per event: a new draw each time: %r" % drawn)

    def test_delay_in_pipelined_batch_flushes_earlier_replies(self):
        # FAULTS.md 5: the replies already computed leave first, the delayed one 300 ms later
        w = self.client()
        w.send("NOOP\r\nNOOP delay\r\nNOOP\r\n")
        self.assertEqual(w.take(len(NOOP_OK)), NOOP_OK)
        k = len(w.reads) - 1
        self.assertEqual(w.buf, b"", "the delayed reply came with the first one")
        self.assertEqual(w.take(2 * len(NOOP_OK)), NOOP_OK * 2)
        # the read after the partial batch brought the delayed reply
        self.assertGreaterEqual(w.reads[k + 1][0] - w.reads[k][0], 0.25)
        self.quit(w)


class StarttlsFamilyTest(ServerCase):
    """FAULTS.md example C in full, one variant per connection in accept order: 1 tls: refuse,
    2 EHLO without STARTTLS, 3 tls: plaintext, 4 STARTTLS + append, 5 tls: alert, 6 tls:
    {stall: after-client-hello}, while session 7 is served normally."""
    SERVE = fault_fixture("starttls-family.yaml")

    def go_ahead(self, n):
        """A raw session n up to the STARTTLS go-ahead (checked)."""
        w = Wire(self.port)
        self.addCleanup(w.close)
        w.reply()
        self.assertIn("250-STARTTLS", w.cmd("EHLO s%d.example" % n).split("\n"))
        self.assertEqual(w.cmd("STARTTLS"), "220 2.0.0 Ready to start TLS")
        return w

    def test_sessions_in_order(self):
        # session 1: refused, and the session goes on in plaintext
        with smtplib.SMTP(HOST, self.port, timeout=5) as s:
            s.ehlo("s1.example")
            self.assertTrue(s.has_extn("starttls"))
            with self.assertRaises(smtplib.SMTPResponseException) as cm:
                s.starttls()
            self.assertEqual((cm.exception.smtp_code, cm.exception.smtp_error),
                             (454, b"4.7.0 TLS not available"))
            self.assertEqual(s.noop(), (250, b"2.0.0 Ok"))
        # session 2: STARTTLS stripped from EHLO
        with smtplib.SMTP(HOST, self.port, timeout=5) as s:
            s.ehlo("s2.example")
            self.assertFalse(s.has_extn("starttls"))
            self.assertTrue(s.has_extn("auth"))
        # session 3: the go-ahead, then the next bytes are read as plaintext commands
        w = self.go_ahead(3)
        ehlo = w.cmd("EHLO s3.example").split("\n")
        self.assertEqual(ehlo[0], "250-mock.test")
        self.assertIn(w.cmd("QUIT"), ("221 2.0.0 Bye", "221 Bye"))
        self.assertEqual(w.read_to_end(), (b"", "eof"))

        # session 4: the go-ahead, then the appended plaintext in the same read
        w = Wire(self.port)
        self.addCleanup(w.close)
        w.reply()
        self.assertIn("250-STARTTLS", w.cmd("EHLO s4.example").split("\n"))
        w.send("STARTTLS\r\n")
        want = b"220 2.0.0 Ready to start TLS\r\n250-mock.test\r\n250 AUTH PLAIN LOGIN\r\n"
        self.assertEqual(w.batch(), want)
        self.assertEqual(w.reads[-1][1], want, "go-ahead and injection in one read")
        # a client that ignores the extra bytes (as it must) still gets its TLS session
        ctx = client_context(self.srv.ca_file)
        tls = ctx.wrap_socket(w.sock, server_hostname="mock.test")
        tls.settimeout(5)
        tls.sendall(b"EHLO s4.example\r\n")
        got = b""
        while not got.endswith(b"\r\n") or b"\r\n250 " not in b"\r\n" + got:
            chunk = tls.recv(65536)
            self.assertTrue(chunk, "EOF over TLS; have %r" % got)
            got += chunk
        self.assertTrue(got.startswith(b"250-mock.test\r\n"), got)
        self.assertNotIn(b"STARTTLS", got)
        tls.sendall(b"QUIT\r\n")
        tls.close()

        # session 5: the go-ahead, then a fatal handshake_failure alert answers the ClientHello
        w = self.go_ahead(5)
        with self.assertRaises(ssl.SSLError) as cm:
            client_context(self.srv.ca_file).wrap_socket(w.sock, server_hostname="mock.test")
        self.assertEqual(cm.exception.reason, "SSLV3_ALERT_HANDSHAKE_FAILURE", cm.exception)

        # session 6: the go-ahead, the ClientHello, then nothing; session 7 is served meanwhile
        w6 = self.go_ahead(6)
        hello = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls6 = client_context(self.srv.ca_file).wrap_bio(*hello, server_hostname="mock.test")
        with self.assertRaises(ssl.SSLWantReadError):
            tls6.do_handshake()
        w6.send(hello[1].read())
        sent_at = time.monotonic()
        with smtplib.SMTP(HOST, self.port, timeout=5) as s:
            s.ehlo("s7.example")
            self.assertTrue(s.has_extn("starttls"))
            self.assertEqual(s.noop(), (250, b"2.0.0 Ok"))
        w6.sock.settimeout(max(0.1, sent_at + 1.5 - time.monotonic()))
        with self.assertRaises(socket.timeout):
            data = w6.sock.recv(65536)
            self.fail("the stalled handshake got %r" % data)

        evs = [e for e in fault_events(self.srv)]
        self.assertEqual([(e["session"], e["command"], e["actions"]) for e in evs],
                         [(1, "STARTTLS", ["tls"]), (2, "EHLO", ["hide"]),
                          (3, "STARTTLS", ["tls"]), (4, "STARTTLS", ["append"]),
                          (5, "STARTTLS", ["tls"]), (6, "STARTTLS", ["tls"])])
        self.assertEqual([e["counters"]["session"] for e in evs], [1, 2, 3, 4, 5, 6])
        fails = [(e["session"], e["reason"]) for e in self.srv.events()
                 if e["event"] == "tls.fail"]
        self.assertEqual(fails, [(5, "fault: alert"), (6, "fault: stall after-client-hello")])
        closes = {e["session"]: e["reason"] for e in self.srv.events()
                  if e["event"] == "session.close"}
        self.assertEqual(closes.get(5), "fault")
        self.assertNotIn(6, closes, "the stalled session stays open until the idle timeout")


if __name__ == "__main__":
    unittest.main()
