"""How a fault ends a connection, as the client sees it: close fin (EOF: recv() returns b""), rst
(ConnectionResetError), half (the server stops writing but keeps reading until the client's
EOF), after_bytes (exactly N bytes of the reply, then EOF or RST), close.delay, and a reply
followed by a close.

CloseTest uses fixtures/faults/smtp-actions.yaml (one rule per NOOP argument); ExampleETest runs
FAULTS.md example E (fixtures/faults/pop3-smtp-cuts.yaml) session by session."""
import os
import poplib
import socket
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (IO_TIMEOUT, MocksrvCase, Wire, code, fault_events,  # noqa: E402
                             fault_fixture, last_session_id, pop3_client,
                             wait_closed_event, wait_for)


class ServerCase(MocksrvCase):
    FIXTURE = "smtp-actions.yaml"

    def setUp(self):
        self.srv = self.spawn(fault_fixture(self.FIXTURE))

    def wire(self, listener="smtp", greeting=True):
        w = Wire(self.srv.port(listener))
        self.addCleanup(w.close)
        if greeting:
            w.line()
        return w


class CloseTest(ServerCase):
    def smtp(self):
        w = self.wire()
        self.assertEqual(code(w.cmd("EHLO client.example")), 250)
        return w, last_session_id(self.srv)

    def test_bare_close_fin_instead_of_reply(self):
        w, sid = self.smtp()
        w.send("NOOP fin\r\n")
        self.assertEqual(w.read_to_end(), (b"", "eof"))
        self.assertEqual(wait_closed_event(self.srv, sid)["reason"], "fault")
        [ev] = fault_events(self.srv, "close-fin")
        self.assertEqual(ev["actions"], ["close"])
        replies = [e for e in self.srv.events() if e["event"] == "reply"
                   and e["session"] == sid and e["lines"]]
        self.assertEqual(len(replies), 2, "greeting and EHLO only: %r" % replies)

    def test_bare_close_rst(self):
        w, sid = self.smtp()
        w.send("NOOP rst\r\n")
        self.assertEqual(w.read_to_end(), (b"", "rst"))
        self.assertEqual(wait_closed_event(self.srv, sid)["reason"], "fault")

    def test_reply_then_fin(self):
        w, sid = self.smtp()
        w.send("NOOP bye\r\n")
        self.assertEqual(w.read_to_end(), (b"421 4.3.2 Bye now\r\n", "eof"))

    def test_after_bytes_fin_cuts_normal_reply(self):
        w, sid = self.smtp()
        w.send("NOOP cutfin\r\n")
        self.assertEqual(w.read_to_end(), (b"250 2", "eof"))
        ev = wait_closed_event(self.srv, sid)
        self.assertEqual(ev["reason"], "fault")

    def test_after_bytes_rst_cuts_replaced_reply(self):
        w, sid = self.smtp()
        w.send("NOOP cutrst\r\n")
        self.assertEqual(w.read_to_end(), (b"250 0123", "rst"))

    def test_close_delay(self):
        w, sid = self.smtp()
        w.send("NOOP slowclose\r\n")
        sent = w.sent_at
        self.assertEqual(w.take_until(b"\r\n"), b"250 2.0.0 Ok\r\n")
        got_reply = w.reads[-1][0]
        self.assertEqual(w.read_to_end(), (b"", "eof"))
        self.assertGreaterEqual(w.end_at - sent, 0.300)
        self.assertGreaterEqual(w.end_at - got_reply, 0.25)
        [ev] = fault_events(self.srv, "slow-close")
        self.assertEqual(ev["actions"], ["close"])

    def test_half_close_server_keeps_reading(self):
        w, sid = self.smtp()
        w.send("NOOP half\r\n")
        # the reply, then the server's FIN
        self.assertEqual(w.read_to_end(), (b"250 half-closing\r\n", "eof"))
        # our side is still open: what we send is read and logged by the server, command after
        # command (each reply the server writes now goes nowhere)
        for line in ("NOOP", "NOOP after-half", "RSET"):
            w.send(line + "\r\n")
            self.srv.wait_event(lambda e: e["event"] == "command" and e["session"] == sid
                                and e["line"] == line, what="%r after the half-close" % line)
        # and the session is not over before the client's EOF
        closes = [e for e in self.srv.events() if e["event"] == "session.close"
                  and e["session"] == sid]
        self.assertEqual(closes, [], "session ended before the client's EOF")
        w.sock.shutdown(socket.SHUT_WR)
        ev = wait_closed_event(self.srv, sid)
        self.assertEqual(ev["reason"], "peer-closed")
        self.assertEqual(ev["bytes_in"], len(b"EHLO client.example\r\nNOOP half\r\n"
                                             b"NOOP\r\nNOOP after-half\r\nRSET\r\n"))


class ExampleETest(ServerCase):
    """FAULTS.md example E, in session order (the POP3 rules count POP3 connections)."""
    FIXTURE = "pop3-smtp-cuts.yaml"

    def test_pop3_sessions_1_to_4(self):
        # session 1: RST at accept, before any greeting
        w = self.wire("pop3", greeting=False)
        self.assertEqual(w.read_to_end(), (b"", "rst"))
        self.assertEqual(w.reads, [])
        # session 2: "+OK " (4 bytes of the greeting) then EOF
        w = self.wire("pop3", greeting=False)
        self.assertEqual(w.read_to_end(), (b"+OK ", "eof"))
        # session 3: USER gets no reply, EOF
        w = self.wire("pop3")
        self.assertEqual(w.received, b"+OK mocksrv POP3 server ready\r\n")
        w.send("USER alice\r\n")
        self.assertEqual(w.read_to_end(), (b"", "eof"))
        # session 4: RETR 2 cut with RST after exactly 100 bytes; RETR 1 is whole
        w = self.wire("pop3")
        for cmd in ("USER alice", "PASS secret"):
            w.send(cmd + "\r\n")
            self.assertTrue(w.line().startswith("+OK"))
        w.send("RETR 1\r\n")
        self.assertTrue(w.line().startswith("+OK"))
        w.take_until(b"\r\n.\r\n")
        w.send("RETR 2\r\n")
        cut, how = w.read_to_end()
        self.assertEqual(how, "rst")
        self.assertEqual(len(cut), 100, cut)
        # session 5 (no rule): the whole RETR 2, whose first 100 bytes are what session 4 got
        c = pop3_client(self.srv.port("pop3"))
        self.addCleanup(c.close)
        c.cmd("USER alice")
        c.cmd("PASS secret")
        status, body = c.cmd_multi("RETR 2")
        whole = (status + "\r\n").encode() + body
        self.assertGreater(len(whole), 200)
        self.assertEqual(cut, whole[:100])
        self.assertEqual(c.cmd("QUIT")[:3], "+OK")

        wait_for(lambda: len([e for e in self.srv.events() if e["event"] == "session.close"])
                 >= 5, what="5 sessions closed")
        closes = {e["session"]: e["reason"] for e in self.srv.events()
                  if e["event"] == "session.close"}
        self.assertEqual([closes[i] for i in (1, 2, 3, 4)], ["fault"] * 4)
        evs = fault_events(self.srv)
        self.assertEqual([(e["session"], e["at"], e.get("command"), e["counters"]["session"])
                          for e in evs],
                         [(1, "accept", None, 1), (2, "greeting", None, 2),
                          (3, "command", "USER", 3), (4, "command", "RETR", 4)])
        self.assertEqual([e["actions"] for e in evs], [["close"]] * 4)

    def test_poplib_sees_the_cuts(self):
        port = self.srv.port("pop3")
        with self.assertRaises((ConnectionResetError, poplib.error_proto)):
            poplib.POP3("127.0.0.1", port, timeout=IO_TIMEOUT)          # session 1: RST
        p = poplib.POP3("127.0.0.1", port, timeout=IO_TIMEOUT)          # session 2: "+OK ", EOF
        self.addCleanup(p.close)
        # poplib takes "+OK " as a greeting (dropping its last byte as if it were the LF)
        self.assertEqual(p.getwelcome(), b"+OK")
        with self.assertRaises(poplib.error_proto) as cm:
            p.noop()
        self.assertEqual(cm.exception.args[0], "-ERR EOF")
        p = poplib.POP3("127.0.0.1", port, timeout=IO_TIMEOUT)          # session 3
        self.addCleanup(p.close)
        with self.assertRaises(poplib.error_proto) as cm:               # USER: EOF, no reply
            p.user("alice")
        self.assertEqual(cm.exception.args[0], "-ERR EOF")

    def smtp_to_data(self):
        w = self.wire("smtp")
        self.assertEqual(code(w.cmd("EHLO client.example")), 250)
        self.assertEqual(w.cmd("MAIL FROM:<a@client.example>"), "250 2.1.0 Ok")
        self.assertEqual(w.cmd("RCPT TO:<alice@mock.test>"), "250 2.1.5 Ok")
        self.assertEqual(code(w.cmd("DATA")), 354)
        return w, last_session_id(self.srv, "smtp")

    def test_smtp_mid_data_eof(self):
        w, sid = self.smtp_to_data()
        line = b"x" * 1022 + b"\r\n"
        sent = 0
        try:
            for _ in range(70):  # 70 KiB, no end of data
                w.sock.sendall(line)
                sent += len(line)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may already be gone; what matters is what we read
        self.assertGreaterEqual(sent, 64 * 1024)
        self.assertEqual(w.read_to_end(), (b"", "eof"))
        self.assertEqual(wait_closed_event(self.srv, sid)["reason"], "fault")
        [ev] = fault_events(self.srv, session=sid)
        self.assertEqual((ev["at"], ev["actions"]), ("data", ["close"]))
        self.assertEqual(self.srv.spool_ids(), [])

    def test_smtp_end_of_data_250_then_slow_close(self):
        w, sid = self.smtp_to_data()
        w.send(b"Subject: e\r\n\r\nsmall\r\n.\r\n")
        sent = w.sent_at
        self.assertRegex(w.reply(), r"^250 2\.0\.0 Ok: queued as \d{6}$")
        got_reply = w.reads[-1][0]
        self.assertEqual(w.read_to_end(), (b"", "eof"))
        self.assertGreaterEqual(w.end_at - sent, 0.500)
        self.assertGreaterEqual(w.end_at - got_reply, 0.45)
        [(data, _)] = self.srv.wait_messages(1)
        self.assertEqual(data, b"Subject: e\r\n\r\nsmall\r\n")

    def test_smtp_quit_221_then_half_close(self):
        w = self.wire("smtp")
        sid = last_session_id(self.srv, "smtp")
        w.send("QUIT\r\n")
        self.assertEqual(w.read_to_end(), (b"221 Bye\r\n", "eof"))
        ev = wait_closed_event(self.srv, sid)
        self.assertIn(ev["reason"], ("quit", "peer-closed"))
        [fe] = fault_events(self.srv, session=sid)
        self.assertEqual(fe["actions"], ["close"])


if __name__ == "__main__":
    unittest.main()
