"""Faults at the edges of a session (fixtures/faults/edges.yaml, one listener per case): at accept
(RST before any greeting; bytes sent before the greeting), at greeting (a fixed and a drawn
delay, a cut, a replaced multi-line banner), at end (`send` after QUIT's reply and after the
client's EOF), and POP3 CAPA without hidden lines."""
import os
import poplib
import smtplib
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (HOST, IO_TIMEOUT, MocksrvCase, Wire, fault_events,  # noqa: E402
                             fault_fixture, last_session_id, pop3_client,
                             wait_closed_event)

GREETING = b"220 mock.test ESMTP mocksrv\r\n"


class EdgesTest(MocksrvCase):
    SERVE = fault_fixture("edges.yaml")

    def wire(self, listener):
        w = Wire(self.srv.port(listener))
        self.addCleanup(w.close)
        return w

    def test_accept_rst_before_greeting(self):
        for _ in range(3):  # every session of that listener
            w = self.wire("rst")
            self.assertEqual(w.read_to_end(), (b"", "rst"))
            self.assertEqual(w.reads, [])
        sid = last_session_id(self.srv, "rst")
        self.assertEqual(wait_closed_event(self.srv, sid)["reason"], "fault")
        evs = fault_events(self.srv, "accept-rst")
        self.assertEqual(len(evs), 3)
        self.assertEqual([(e["at"], e["actions"]) for e in evs], [("accept", ["close"])] * 3)
        self.assertEqual([e["counters"]["session"] for e in evs], [1, 2, 3])
        replies = [e for e in self.srv.events() if e["event"] == "reply"
                   and e["listener"] == "rst"]
        self.assertEqual(replies, [])

    def test_smtplib_on_accept_rst(self):
        with self.assertRaises((smtplib.SMTPServerDisconnected, ConnectionResetError)):
            smtplib.SMTP(HOST, self.srv.port("rst"), timeout=IO_TIMEOUT)

    def test_send_at_accept_comes_before_greeting(self):
        w = self.wire("pregreet")
        self.assertEqual(w.take(len(b"pre-greeting junk\r\n") + len(GREETING)),
                         b"pre-greeting junk\r\n" + GREETING)
        self.assertEqual(w.cmd("QUIT"), "221 Bye")

    def test_greeting_delay_fixed(self):
        w = self.wire("slow")
        self.assertEqual(w.take(len(GREETING)), GREETING)
        self.assertGreaterEqual(w.first_byte_at() - w.connected_at, 0.300)
        # only the greeting: commands are answered at once (no other fault event)
        self.assertEqual(w.cmd("NOOP"), "250 Ok")
        self.assertEqual(w.cmd("QUIT"), "221 Bye")
        sid = last_session_id(self.srv, "slow")
        wait_closed_event(self.srv, sid)
        [ev] = fault_events(self.srv, session=sid)
        self.assertEqual((ev["rule"], ev["at"], ev["drawn"], ev["actions"]),
                         ("greeting-delay", "greeting", {"delay_ms": 300}, ["delay"]))

    def test_greeting_delay_smtplib(self):
        start = time.monotonic()
        with smtplib.SMTP(HOST, self.srv.port("slow"), timeout=IO_TIMEOUT) as s:
            self.assertGreaterEqual(time.monotonic() - start, 0.300)
            self.assertEqual(s.noop()[0], 250)

    def test_greeting_delay_range(self):
        for _ in range(3):
            w = self.wire("range")
            self.assertEqual(w.take(len(GREETING)), GREETING)
            waited = w.first_byte_at() - w.connected_at
            self.assertEqual(w.cmd("QUIT"), "221 Bye")
            sid = last_session_id(self.srv, "range")
            wait_closed_event(self.srv, sid)
            [ev] = fault_events(self.srv, session=sid)
            d = ev["drawn"]["delay_ms"]
            self.assertTrue(200 <= d <= 400, d)
            self.assertGreaterEqual(waited, d / 1000.0, "drawn %d ms" % d)

    def test_greeting_cut_then_rst(self):
        w = self.wire("greetcut")
        self.assertEqual(w.read_to_end(), (b"220", "rst"))

    def test_greeting_replaced_multiline(self):
        w = self.wire("greetreply")
        want = b"220-mx.mock.test ESMTP (please wait)\r\n220 mx.mock.test ESMTP\r\n"
        self.assertEqual(w.take(len(want)), want)
        self.assertEqual(w.cmd("QUIT"), "221 Bye")
        with smtplib.SMTP(HOST, self.srv.port("greetreply"), timeout=IO_TIMEOUT) as s:
            self.assertEqual(s.noop()[0], 250)

    def test_end_send_after_quit_reply(self):
        w = self.wire("endsend")
        self.assertEqual(w.take(len(GREETING)), GREETING)
        w.send("QUIT\r\n")
        self.assertEqual(w.read_to_end(), (b"221 Bye\r\n421 4.3.2 after the end\r\n", "eof"))
        sid = last_session_id(self.srv, "endsend")
        wait_closed_event(self.srv, sid)
        [ev] = fault_events(self.srv, session=sid)
        self.assertEqual((ev["rule"], ev["at"], ev["actions"]), ("end-send", "end", ["send"]))

    def test_end_send_after_client_eof(self):
        # FAULTS.md 1: end = the session is ending "after QUIT/LOGOUT reply or peer EOF"
        w = self.wire("endsend")
        self.assertEqual(w.take(len(GREETING)), GREETING)
        self.assertEqual(w.cmd("NOOP"), "250 Ok")
        w.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(w.read_to_end(), (b"421 4.3.2 after the end\r\n", "eof"))

    def test_pop3_capa_hide(self):
        port = self.srv.port("pop3")
        c = pop3_client(port)
        self.addCleanup(c.close)
        status, body = c.cmd_multi("CAPA")
        self.assertTrue(status.startswith("+OK"), status)
        lines = body.decode().split("\r\n")
        self.assertEqual(lines[-2:], [".", ""])
        names = [l.split(" ")[0] for l in lines[:-2]]
        self.assertIn("TOP", names)
        self.assertIn("USER", names)
        self.assertIn("IMPLEMENTATION", names)
        self.assertNotIn("UIDL", names)
        self.assertNotIn("SASL", names)
        c.cmd("QUIT")
        p = poplib.POP3(HOST, port, timeout=IO_TIMEOUT)
        try:
            capa = p.capa()
            self.assertNotIn("UIDL", capa)
            self.assertNotIn("SASL", capa)
            self.assertIn("TOP", capa)
            # hide changes what is advertised, not what is served: UIDL still works
            p.user("alice")
            p.pass_("secret")
            self.assertTrue(p.uidl()[0].startswith(b"+OK"))
        finally:
            p.quit()
        evs = fault_events(self.srv, "capa-hide")
        self.assertEqual([(e["command"], e["actions"]) for e in evs], [("CAPA", ["hide"])] * 2)


if __name__ == "__main__":
    unittest.main()
