"""The scripted protocol (`protocol: script`, SPEC 3.4) against a real mocksrv: python smtplib
talking to a scripted odd SMTP server, the scripted delay as the client measures it, close fin
(EOF), rst (ECONNRESET) and half, raw bytes exactly as written (a bare LF, half a line), a
starttls step (smtplib's STARTTLS, the reply after the handshake read through TLS), an implicit
TLS script listener (smtplib.SMTP_SSL), fault rules on a script listener (a replaced reply, a
greeting delay, an inject on the next send), and a client that does not follow the script: the
session ends with EOF, an expect.fail event names the step, and SIGTERM then exits with
status 3.

Every scenario is written by the test into a temporary file; the fixture
fixtures/scenarios/script-odd-smtp.yaml is checked with `mocksrv --check` and driven once."""
import os
import smtplib
import socket
import ssl
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (Mocksrv, MocksrvCase, Wire, client_context,  # noqa: E402
                             fault_events, last_session_id, run_check, scenario,
                             wait_closed_event)

SCENARIO = r"""
version: 1
hostname: localhost
listeners:
  odd:
    protocol: script
    script:
      - send: "220 odd.example ESMTP ready"
      - expect: "EHLO *"
      - send: ["250-odd.example greets you", "250-AUTH=LOGIN PLAIN", "250-X-ODD-CAPA one two",
               "250 8bitmime"]
      - expect: "QUIT"
      - send: "221 odd.example closing"
  replaced:
    protocol: script
    script:
      - send: "220 replaced.example ESMTP"
      - expect: "EHLO *"
      - send: ["250-replaced.example", "250 SIZE 1000"]
      - expect: "QUIT"
      - send: "221 bye"
  slow:
    protocol: script
    script:
      - send: "220 slow.example"
      - expect: "PING"
      - delay: 400ms
      - send: "250 PONG"
      - expect: "QUIT"
      - send: "221 bye"
  greet:
    protocol: script
    script:
      - send: "220 greet.example"
      - expect: "QUIT"
      - send: "221 bye"
  inject:
    protocol: script
    script:
      - send: "220 inject.example"
      - expect: "QUIT"
      - send: "221 bye"
  fin:
    protocol: script
    script:
      - send: "220 fin.example"
      - expect: "QUIT"
      - send: "221 bye"
      - close: fin
  rst:
    protocol: script
    script:
      - send: "220 rst.example"
      - expect: "QUIT"
      - send: "221 bye"
      - close: reset
  half:
    protocol: script
    script:
      - send: "220 half.example"
      - close: half
  raw:
    protocol: script
    script:
      - raw: "220 bare LF\n"
      - expect: "go"
      - raw: "half a li"
      - delay: 200ms
      - raw: "ne\r\n\x00\xe9\n"
  tls:
    protocol: script
    script:
      - send: "220 tls.example ESMTP"
      - expect: "EHLO *"
      - send: ["250-tls.example", "250 STARTTLS"]
      - expect: "STARTTLS"
      - send: "220 2.0.0 go ahead"
      - starttls: true
      - expect: "EHLO *"
      - send: ["250-tls.example after TLS", "250 AUTH PLAIN"]
      - expect: "QUIT"
      - send: "221 bye"
  tlsi:
    protocol: script
    tls: implicit
    script:
      - send: "220 implicit.example"
      - expect: "EHLO *"
      - send: "250 implicit.example"
      - expect: "QUIT"
      - send: "221 bye"
faults:
  - name: ehlo-554
    when: { listener: replaced, command: EHLO }
    reply: "554 5.7.1 no"
  - name: slow-greeting
    when: { listener: greet, at: greeting }
    delay: 300ms
  - name: quit-inject
    when: { protocol: script, listener: inject, command: QUIT }
    inject: "100-injected\r\n"
"""

# The client does not follow these scripts: every session here is an expectation not met.
STRICT = r"""
version: 1
listeners:
  strict:
    protocol: script
    script:
      - send: "220 strict.example"
      - expect: "EHLO *"
      - send: "250 strict.example"
      - expect: "QUIT"
      - send: "221 bye"
"""


def events_of(srv, sid, name):
    return [e for e in srv.events() if e["event"] == name and e.get("session") == sid]


class ScriptTest(MocksrvCase):
    """One server for the dialogues that go as scripted: its exit status must be 0."""

    @classmethod
    def setUpClass(cls):
        cls.srv = cls.spawn_shared(cls.shared_scenario_text(SCENARIO, "script.yaml"))

    def wire(self, listener):
        w = Wire(self.srv.port(listener))
        self.addCleanup(w.close)
        return w

    def test_smtplib_odd_ehlo_then_quit(self):
        s = smtplib.SMTP("127.0.0.1", self.srv.port("odd"), timeout=5)
        try:
            code, text = s.ehlo("client.example")
            self.assertEqual(code, 250)
            self.assertEqual(text, b"odd.example greets you\nAUTH=LOGIN PLAIN\n"
                                   b"X-ODD-CAPA one two\n8bitmime")
            self.assertTrue(s.does_esmtp)
            self.assertEqual(s.esmtp_features.get("x-odd-capa"), "one two")
            self.assertIn("8bitmime", s.esmtp_features)
            self.assertIn("PLAIN", s.esmtp_features.get("auth", ""))
        finally:
            self.assertEqual(s.quit(), (221, b"odd.example closing"))
        sid = last_session_id(self.srv, "odd")
        self.assertEqual(wait_closed_event(self.srv, sid)["reason"], "quit")
        lines = [e["line"] for e in events_of(self.srv, sid, "command")]
        self.assertEqual(lines, ["ehlo client.example", "quit"])  # smtplib spells it so
        replies = [e["lines"] for e in events_of(self.srv, sid, "reply")]
        self.assertEqual(replies[0], ["220 odd.example ESMTP ready"])
        self.assertEqual(replies[-1], ["221 odd.example closing"])

    def test_fault_replaces_scripted_reply(self):
        s = smtplib.SMTP("127.0.0.1", self.srv.port("replaced"), timeout=5)
        try:
            self.assertEqual(s.ehlo("client.example"), (554, b"5.7.1 no"))
        finally:
            self.assertEqual(s.quit(), (221, b"bye"))
        sid = last_session_id(self.srv, "replaced")
        self.assertEqual(wait_closed_event(self.srv, sid)["reason"], "quit")
        [ev] = fault_events(self.srv, "ehlo-554", sid)
        self.assertEqual(ev["at"], "command")
        replies = [e["lines"] for e in events_of(self.srv, sid, "reply")]
        self.assertNotIn(["250-replaced.example", "250 SIZE 1000"], replies)

    def test_delay_step(self):
        w = self.wire("slow")
        self.assertEqual(w.line(), "220 slow.example")
        w.send("PING\r\n")
        sent = w.sent_at
        self.assertEqual(w.line(), "250 PONG")
        self.assertGreaterEqual(w.reads[-1][0] - sent, 0.400)
        self.assertEqual(w.cmd("QUIT"), "221 bye")
        self.assertEqual(w.read_to_end(), (b"", "eof"))

    def test_expect_word_matches_line_with_arguments(self):
        # as in expect: sequences, "PING" matches "PING with arguments" (a word, then a blank)
        w = self.wire("slow")
        self.assertEqual(w.line(), "220 slow.example")
        self.assertEqual(w.cmd("ping with arguments"), "250 PONG")
        self.assertEqual(w.cmd("QUIT now"), "221 bye")
        self.assertEqual(w.read_to_end(), (b"", "eof"))

    def test_greeting_fault_delay(self):
        w = self.wire("greet")
        self.assertEqual(w.line(), "220 greet.example")
        self.assertGreaterEqual(w.first_byte_at() - w.connected_at, 0.300)
        self.assertEqual(w.cmd("QUIT"), "221 bye")
        sid = last_session_id(self.srv, "greet")
        [ev] = fault_events(self.srv, "slow-greeting", sid)
        self.assertEqual(ev["at"], "greeting")

    def test_fault_inject_goes_with_the_next_send(self):
        w = self.wire("inject")
        self.assertEqual(w.line(), "220 inject.example")
        w.send("QUIT\r\n")
        self.assertEqual(w.read_to_end(), (b"100-injected\r\n221 bye\r\n", "eof"))

    def test_close_fin_is_eof(self):
        w = self.wire("fin")
        self.assertEqual(w.line(), "220 fin.example")
        w.send("QUIT\r\n")
        self.assertEqual(w.read_to_end(), (b"221 bye\r\n", "eof"))
        sid = last_session_id(self.srv, "fin")
        self.assertEqual(wait_closed_event(self.srv, sid)["reason"], "quit")

    def test_close_reset_is_econnreset(self):
        w = self.wire("rst")
        self.assertEqual(w.line(), "220 rst.example")
        w.send("QUIT\r\n")
        self.assertEqual(w.read_to_end(), (b"221 bye\r\n", "rst"))
        sid = last_session_id(self.srv, "rst")
        self.assertEqual(wait_closed_event(self.srv, sid)["reason"], "quit")

    def test_close_half_keeps_reading(self):
        w = self.wire("half")
        self.assertEqual(w.read_to_end(), (b"220 half.example\r\n", "eof"))
        sid = last_session_id(self.srv, "half")
        w.send("still talking\r\n")
        self.srv.wait_event(lambda e: e["event"] == "command" and e["session"] == sid
                            and e["line"] == "still talking", what="the line after half-close")
        self.assertEqual(events_of(self.srv, sid, "session.close"), [])
        w.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(wait_closed_event(self.srv, sid)["reason"], "quit")

    def test_raw_bytes_exact(self):
        w = self.wire("raw")
        self.assertEqual(w.take_until(b"\n"), b"220 bare LF\n")
        w.send("go\r\n")
        sent = w.sent_at
        self.assertEqual(w.take(9), b"half a li")
        data, end = w.read_to_end()
        self.assertEqual((data, end), (b"ne\r\n\x00\xc3\xa9\n", "eof"))
        # the rest came after the scripted 200 ms pause
        self.assertGreaterEqual(w.arrival_of(len(b"220 bare LF\nhalf a li")) - sent, 0.200)
        self.assertEqual(w.received, b"220 bare LF\nhalf a line\r\n\x00\xc3\xa9\n")

    def test_starttls_step(self):
        s = smtplib.SMTP("127.0.0.1", self.srv.port("tls"), timeout=5)
        try:
            self.assertEqual(s.ehlo("client.example")[0], 250)
            self.assertTrue(s.has_extn("starttls"))
            code, text = s.starttls(context=client_context(self.srv.ca_file))
            self.assertEqual((code, text), (220, b"2.0.0 go ahead"))
            self.assertIsInstance(s.sock, ssl.SSLSocket)
            # read through TLS: a plaintext reply would break the record layer
            code, text = s.ehlo("client.example")
            self.assertEqual((code, text), (250, b"tls.example after TLS\nAUTH PLAIN"))
            self.assertIn("PLAIN", s.esmtp_features.get("auth", ""))
        finally:
            self.assertEqual(s.quit(), (221, b"bye"))
        sid = last_session_id(self.srv, "tls")
        self.assertEqual(wait_closed_event(self.srv, sid)["reason"], "quit")
        evs = [e for e in self.srv.events() if e.get("session") == sid]
        names = [e["event"] for e in evs]
        done = names.index("tls.done")
        after = [e["lines"] for e in evs[done:] if e["event"] == "reply"]
        self.assertEqual(after[0], ["250-tls.example after TLS", "250 AUTH PLAIN"])

    def test_implicit_tls_listener(self):
        ctx = client_context(self.srv.ca_file)
        s = smtplib.SMTP_SSL("127.0.0.1", self.srv.port("tlsi"), context=ctx, timeout=5)
        try:
            self.assertIsInstance(s.sock, ssl.SSLSocket)
            self.assertEqual(s.ehlo("client.example"), (250, b"implicit.example"))
        finally:
            self.assertEqual(s.quit(), (221, b"bye"))
        sid = last_session_id(self.srv, "tlsi")
        self.assertEqual(wait_closed_event(self.srv, sid)["reason"], "quit")


class StrictTest(MocksrvCase):
    """Clients that leave the script: each session is an expect.fail, and the exit status is 3."""

    def setUp(self):
        self.srv = self.spawn(self.scenario_text(STRICT, "script.yaml"))

    def test_wrong_command_ends_session_and_exit_3(self):
        w = Wire(self.srv.port("strict"))
        self.addCleanup(w.close)
        self.assertEqual(w.line(), "220 strict.example")
        w.send("HELO client.example\r\n")
        self.assertEqual(w.read_to_end(), (b"", "eof"))
        sid = last_session_id(self.srv, "strict")
        self.assertEqual(wait_closed_event(self.srv, sid)["reason"], "error")
        [ev] = events_of(self.srv, sid, "expect.fail")
        self.assertEqual(ev["expectation"], "listeners.strict.script[1]")
        self.assertEqual(ev["seen"], 'got "HELO client.example" where "EHLO *" was expected')

        # a second client leaves before QUIT: connection closed where QUIT was expected
        w2 = Wire(self.srv.port("strict"))
        self.addCleanup(w2.close)
        self.assertEqual(w2.line(), "220 strict.example")
        self.assertEqual(w2.cmd("ehlo x"), "250 strict.example")
        sid2 = last_session_id(self.srv, "strict")
        w2.close()
        self.assertEqual(wait_closed_event(self.srv, sid2)["reason"], "peer-closed")
        [ev2] = events_of(self.srv, sid2, "expect.fail")
        self.assertEqual(ev2["expectation"], "listeners.strict.script[3]")
        self.assertEqual(ev2["seen"], 'connection closed where "QUIT" was expected')

        self.srv.want_status = 3
        rc = self.srv.stop()
        self.assertEqual(rc, 3, "exit status after SIGTERM; stderr:\n%s" % self.srv.stderr_text())
        self.assertIn("listeners.strict.script[1]", self.srv.stderr_text())

    def test_sigterm_while_expecting_is_no_failure(self):
        w = Wire(self.srv.port("strict"))
        self.addCleanup(w.close)
        self.assertEqual(w.line(), "220 strict.example")
        sid = last_session_id(self.srv, "strict")
        rc = self.srv.stop()
        self.assertEqual(rc, 0, "stderr:\n%s" % self.srv.stderr_text())
        self.assertEqual(w.read_to_end(), (b"", "eof"))
        self.assertEqual(wait_closed_event(self.srv, sid)["reason"], "shutdown")


class FixtureTest(unittest.TestCase):
    def test_check_and_drive_odd_smtp_fixture(self):
        path = scenario("script-odd-smtp.yaml")
        rc, out = run_check(path)
        self.assertEqual(rc, 0, out)
        with Mocksrv(path) as srv:
            s = smtplib.SMTP("127.0.0.1", srv.port("legacy"), timeout=5)
            started = time.monotonic()
            code, _ = s.ehlo("client.example")
            self.assertEqual(code, 250)
            self.assertGreaterEqual(time.monotonic() - started, 0.300)
            self.assertIn("8bitmime", s.esmtp_features)
            self.assertEqual(s.esmtp_features.get("size"), "")
            # (not sendmail: after a refused MAIL it sends RSET, which this script does not
            # expect; the script has no branches)
            code, text = s.mail("a@client.example", ["size=10"])
            self.assertEqual((code, text), (452, b"4.3.1 Insufficient system storage"))
            # no 221: the script resets the connection at QUIT
            with self.assertRaises((smtplib.SMTPServerDisconnected, ConnectionResetError)):
                s.quit()
            s.close()
            sid = last_session_id(srv, "legacy")
            self.assertEqual(wait_closed_event(srv, sid)["reason"], "quit")
        self.assertEqual(srv.returncode, 0, srv.stderr_text())


if __name__ == "__main__":
    unittest.main()
