"""Fault rules (FAULTS.md) at load: every fixtures/faults/*.yaml loads; bad rules are refused with
a position and a message saying why (and IMAP-only events with "not supported yet").

What the test_faults_*.py files share (Wire, the raw client that records every recv() with its
arrival time and how the stream ended, and the helpers for the fault events) is in
tests/support/mocksrv_harness.py. Tests use it, or smtplib/poplib, and assert only what a client
observes plus the server's events.

Timing checks are lower bounds only (a 300 ms delay arrives no earlier than 300 ms after the
command was sent); there are no upper time budgets besides the generous I/O deadlines."""
import glob
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import fault_fixture, run_check  # noqa: E402


class CheckTest(unittest.TestCase):
    def test_every_fault_fixture_loads(self):
        paths = sorted(glob.glob(fault_fixture("*.yaml")))
        self.assertGreaterEqual(len(paths), 6)
        for path in paths:
            with self.subTest(fixture=os.path.basename(path)):
                rc, out = run_check(path)
                self.assertEqual(rc, 0, "mocksrv --check %s:\n%s" % (path, out))

    BASE = ("version: 1\nlisteners: { smtp: { protocol: smtp, port: 0 } }\n"
            "faults:\n  - when: { command: NOOP }\n    reply: \"250 x\"\n")

    def check_text(self, text):
        with tempfile.TemporaryDirectory(prefix="mocksrv-faults-") as d:
            path = os.path.join(d, "s.yaml")
            with open(path, "w") as f:
                f.write(text)
            return run_check(path)

    def test_minimal_rule_loads(self):
        rc, out = self.check_text(self.BASE)
        self.assertEqual(rc, 0, out)

    def test_shaping_errors_with_position(self):
        # bad shaping keys: a clear message at the key's position (line 6), exit 2
        cases = {
            "split": ("    split: { size: 1, offsets: [-1] }\n", "cannot be combined"),
            "bandwidth": ("    bandwidth: fast\n", "bad rate"),
            "read": ("    read: later\n", "stop or a mapping"),
            "stall": ("    stall: false\n", "stalls nothing"),
            "tarpit": ("    tarpit: { for: 10s }\n", "missing stutter"),
            "scope": ("    scope: forever\n", "bad scope"),
        }
        for key, (extra, message) in cases.items():
            with self.subTest(key=key):
                rc, out = self.check_text(self.BASE + extra)
                self.assertEqual(rc, 2, out)
                self.assertIn(message, out)
                self.assertIn(key, out)
                self.assertIn(":6:", out, "the position (line 6) of %s: %s" % (key, out))

    def test_shaping_accepted(self):
        for extra in ("    split: { size: [1, 8], gap: [0ms, 5ms] }\n",
                      "    split: { offsets: [-2, -1, 0, 1], from: literal, gap: 20ms }\n",
                      "    split: { lines: true, gap: 6s, layer: tls }\n",
                      "    bandwidth: 2KiB/s\n",
                      "    read: { size: 1, gap: 2ms, bandwidth: 1KiB/s, window: 4KiB }\n",
                      "    read: stop\n", "    stall: true\n", "    stall: 30s\n",
                      "    tarpit: { stutter: 1s, for: 10s }\n",
                      "    delay: 300ms\n    scope: session\n",
                      "    delay: 300ms\n    scope: 10s\n"):
            with self.subTest(rule=extra):
                rc, out = self.check_text(self.BASE + extra)
                self.assertEqual(rc, 0, out)

    def rule_text(self, rule):
        return ("version: 1\nlisteners: { smtp: { protocol: smtp, port: 0 } }\n"
                "faults:\n  - when: %s\n" % rule)

    def test_unsupported_events_refused(self):
        # at: data has no IMAP engine to carry it out yet
        cases = {
            "data-imap": "{ protocol: imap, at: data, received: 1KiB }\n    close: rst",
        }
        for name, rule in cases.items():
            with self.subTest(case=name):
                rc, out = self.check_text(self.rule_text(rule))
                self.assertEqual(rc, 2, out)
                self.assertIn("not supported yet", out)
                self.assertIn(":4:", out)

    def test_meaningless_at_event_refused(self):
        # hide edits a capability list: a payload or a silence has none
        for at in ("{ at: data, received: 1KiB }", "{ at: waiting, for: 2s }"):
            with self.subTest(at=at):
                rc, out = self.check_text(self.rule_text(at + "\n    hide: [STARTTLS]"))
                self.assertEqual(rc, 2, out)
                self.assertIn("hide edits a capability list", out)
                self.assertIn(":4:", out)
        # a stall before a handshake is tls: {stall: ...}
        rc, out = self.check_text(self.rule_text("{ at: tls }\n    stall: 1s"))
        self.assertEqual(rc, 2, out)
        self.assertIn("use tls: {stall:", out)
        # waiting without for: nothing says how long the silence is
        rc, out = self.check_text(self.rule_text("{ at: waiting }\n    close: fin"))
        self.assertEqual(rc, 2, out)
        self.assertIn("at: waiting needs for", out)
        self.assertIn(":4:", out)

    def test_waiting_and_data_content_accepted(self):
        for rule in ("{ at: waiting, for: 2s }\n    send: \"421 bye\"\n    close: fin",
                     "{ for: 500ms, command: NOOP }\n    reply: \"421 bye\"",
                     "{ at: data, received: 1KiB }\n    reply: \"552 too big\"",
                     "{ command: BDAT, at: data }\n    raw: \"552 x\\r\\n\"",
                     "{ command: AUTH, at: data }\n    reply: \"334 QnVHZ1liVWdHeQ==\"",
                     "{ protocol: pop3, command: AUTH, at: data }\n    inject: \"+ x\\r\\n\""):
            with self.subTest(rule=rule):
                rc, out = self.check_text(self.rule_text(rule))
                self.assertEqual(rc, 0, out)

    def test_unknown_rule_key_refused(self):
        rc, out = self.check_text(self.BASE + "    frobnicate: 1\n")
        self.assertEqual(rc, 2, out)


if __name__ == "__main__":
    unittest.main()
