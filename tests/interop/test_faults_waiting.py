"""`at: waiting` (FAULTS.md 1): the server has waited `for: t` for client input after its last
output, then sends unsolicited output (a `421` here, smtp-sink and Postfix style) and may close.

What a raw client observes:
- silent after the greeting: the 421 arrives no earlier than 500 ms after the connect, then EOF;
- two rules with different `for` on one listener each fire at their own time, once per silence
  period; a rule that only sends leaves the session working, and the client's next command
  restarts the clock;
- a client that keeps talking (whole commands, or one byte of a line at a time) every 200 ms never
  sees the 500 ms rule;
- POP3 with `command: USER`: silent after the greeting, nothing comes; silent after USER, the rule
  fires (the command of a waiting rule is the last command received).

Timing checks are lower bounds only, measured from a moment the server's silence cannot precede
(just before the connect, or the client's own last send), less SLACK for the server's
millisecond clock."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import MocksrvCase, Wire, fault_events, wait_closed_event  # noqa: E402

SLACK = 0.005  # the server's timers count whole milliseconds

SCENARIO = r"""version: 1
hostname: mock.test
listeners:
  smtp: { protocol: smtp, port: 0 }
  multi: { protocol: smtp, port: 0 }
  pop3: { protocol: pop3, port: 0 }
users:
  alice: { password: secret, addresses: [alice@mock.test] }
faults:
  - name: idle-421
    when: { listener: smtp, at: waiting, for: 500ms }
    send: "421 4.4.2 Idle too long"
    close: fin
  - name: nudge
    when: { listener: multi, at: waiting, for: 300ms }
    send: "250-NOTE still there?"
  - name: give-up
    when: { listener: multi, for: 900ms }
    send: "421 4.4.2 Idle too long"
    close: fin
  - name: after-user
    when: { listener: pop3, at: waiting, for: 400ms, command: USER }
    send: "-ERR [SYS/TEMP] Idle after USER"
    close: fin
"""


class WaitingTest(MocksrvCase):
    def setUp(self):
        self.srv = self.spawn(self.scenario_text(SCENARIO, "waiting.yaml"))

    def assert_nothing_for(self, w, seconds):
        """Nothing arrives (and the connection stays open) for SECONDS."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                w.fill(deadline)
            except AssertionError:
                break  # the deadline passed without data: what we want
            self.fail("unexpected bytes or end (%s): %r" % (w.end, w.buf))
        self.assertIsNone(w.end)
        self.assertEqual(w.buf, b"")

    def connect(self, listener):
        """A Wire to LISTENER, and a moment before the server accepted it."""
        before = time.monotonic()
        return Wire(self.srv.port(listener)), before

    def test_silent_client_gets_421_then_eof(self):
        w, before = self.connect("smtp")
        with w:
            self.assertTrue(w.line().startswith("220 "))
            reply = w.line(timeout=5)
            arrived = w.reads[-1][0]
            self.assertEqual(reply, "421 4.4.2 Idle too long")
            self.assertGreaterEqual(arrived - before, 0.5 - SLACK)
            rest, end = w.read_to_end()
            self.assertEqual((rest, end), (b"", "eof"))
        ev = wait_closed_event(self.srv, 1)
        self.assertEqual(ev["reason"], "fault")
        [f] = fault_events(self.srv, "idle-421")
        self.assertEqual(f["at"], "waiting")
        self.assertNotIn("command", f)  # no command received yet
        self.assertEqual(f["actions"], ["send", "close"])

    def test_two_for_values_each_fire_once_and_commands_restart_the_clock(self):
        w, before = self.connect("multi")
        with w:
            self.assertTrue(w.line().startswith("220 "))
            # first silence: the nudge at >= 300 ms, then the session still works
            self.assertEqual(w.line(), "250-NOTE still there?")
            self.assertGreaterEqual(w.reads[-1][0] - before, 0.3 - SLACK)
            self.assertEqual(w.cmd("NOOP"), "250 Ok")
            sent = w.sent_at
            # second silence, measured from NOOP: nudge once (>= 300 ms), then give-up
            # (>= 900 ms), then EOF; the nudge does not restart the clock or repeat
            self.assertEqual(w.line(), "250-NOTE still there?")
            self.assertGreaterEqual(w.reads[-1][0] - sent, 0.3 - SLACK)
            self.assertEqual(w.line(), "421 4.4.2 Idle too long")
            self.assertGreaterEqual(w.reads[-1][0] - sent, 0.9 - SLACK)
            rest, end = w.read_to_end()
            self.assertEqual((rest, end), (b"", "eof"))
        wait_closed_event(self.srv, 1)
        self.assertEqual(len(fault_events(self.srv, "nudge")), 2)
        [g] = fault_events(self.srv, "give-up")
        self.assertEqual(g["command"], "NOOP")

    def test_talking_client_never_sees_it(self):
        with Wire(self.srv.port("smtp")) as w:
            self.assertTrue(w.line().startswith("220 "))
            # whole commands every 200 ms for 1.6 s: three times the rule's `for`
            for _ in range(8):
                time.sleep(0.2)
                self.assertEqual(w.cmd("NOOP"), "250 Ok")
            # one byte of a line every 200 ms: partial input is talking too
            for b in (b"N", b"O", b"O", b"P", b"\r", b"\n"):
                time.sleep(0.2)
                w.send(b)
            self.assertEqual(w.reply(), "250 Ok")
            self.assertEqual(w.cmd("QUIT"), "221 Bye")
            rest, end = w.read_to_end()
            self.assertEqual((rest, end), (b"", "eof"))
        self.assertNotIn(b"421", w.received)
        wait_closed_event(self.srv, 1)
        self.assertEqual(fault_events(self.srv, "idle-421"), [])

    def test_pop3_rule_for_user_fires_only_after_user(self):
        with Wire(self.srv.port("pop3")) as w:
            self.assertTrue(w.line().startswith("+OK "))
            # silent before any command: the rule names USER, so nothing comes
            self.assert_nothing_for(w, 1.0)
            w.send("USER alice\r\n")
            sent = w.sent_at
            self.assertTrue(w.line().startswith("+OK"))
            self.assertEqual(w.line(), "-ERR [SYS/TEMP] Idle after USER")
            self.assertGreaterEqual(w.reads[-1][0] - sent, 0.4 - SLACK)
            rest, end = w.read_to_end()
            self.assertEqual((rest, end), (b"", "eof"))
        wait_closed_event(self.srv, 1)
        [f] = fault_events(self.srv, "after-user")
        self.assertEqual((f["at"], f["command"]), ("waiting", "USER"))


if __name__ == "__main__":
    unittest.main()
