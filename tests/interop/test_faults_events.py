"""The "fault" events and determinism (fixtures/faults/chaos.yaml): one event per firing with the
rule name, session, counters and drawn values; counters nth/every/after with count and times;
and a run replays from its seed: the same --seed and the same client sequence give the same
fault events (rule, session, counters, drawn, actions; not the time "t") and the same replies,
another seed gives other ones."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (Mocksrv, fault_events, fault_fixture, smtp_client,  # noqa: E402
                             wait_closed_event, wait_for)

SESSIONS = 5


def client_sequence(port):
    """The fixed client sequence: SESSIONS connections one after the other. Returns the reply
    texts it saw (no timing)."""
    seen = []
    for n in range(SESSIONS):
        with smtp_client(port) as c:
            seen.append(c.cmd("EHLO s%d.example" % n))
            for _ in range(6):
                seen.append(c.cmd("NOOP"))
            for _ in range(3):
                seen.append(c.cmd("RSET"))
            for _ in range(3):
                seen.append(c.cmd("MAIL FROM:<a@client.example>"))
                seen.append(c.cmd("RCPT TO:<alice@mock.test>"))
                seen.append(c.cmd("RSET"))
            seen.append(c.cmd("QUIT"))
            c.wait_closed()
    return seen


def project(ev):
    return (ev["rule"], ev["session"], ev["at"], ev.get("command"), ev["counters"],
            ev["drawn"], ev["actions"])


def run(seed):
    """Runs the sequence against a fresh server with --seed SEED: (projected fault events,
    replies, ready line)."""
    with Mocksrv(fault_fixture("chaos.yaml"), args=["--seed", str(seed)]) as srv:
        replies = client_sequence(srv.port("smtp"))
        wait_for(lambda: len([e for e in srv.events() if e["event"] == "session.close"])
                 >= SESSIONS, what="every session closed")
        evs = [project(e) for e in fault_events(srv)]
        ready = srv.ready
    if srv.returncode != 0:
        raise AssertionError("mocksrv exit status %r" % srv.returncode)
    return evs, replies, ready


class DeterminismTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = run(99)
        cls.b = run(99)
        cls.c = run(100)

    def test_ready_line_echoes_seed(self):
        self.assertEqual(self.a[2]["seed"], 99)
        self.assertEqual(self.c[2]["seed"], 100)

    def test_same_seed_same_fault_events(self):
        self.assertGreater(len(self.a[0]), 10)
        self.assertEqual(self.a[0], self.b[0])
        self.assertEqual(self.a[1], self.b[1])

    def test_other_seed_other_fault_events(self):
        self.assertNotEqual(self.a[0], self.c[0])

    def test_probability_draws_are_reported_and_consistent(self):
        for evs in (self.a[0], self.c[0]):
            for rule, _, _, _, _, drawn, actions in evs:
                if rule in ("jitter", "flaky-rset", "random-451"):
                    p = {"jitter": 0.5, "flaky-rset": 0.5, "random-451": 0.3}[rule]
                    self.assertIn("probability", drawn)
                    self.assertGreaterEqual(drawn["probability"], 0.0)
                    self.assertLess(drawn["probability"], p)  # fired: the draw was under p
                if rule == "jitter":
                    self.assertTrue(0 <= drawn["delay_ms"] <= 20, drawn)
                    self.assertEqual(actions, ["delay"])

    def test_both_outcomes_happen(self):
        # 30 NOOPs at p=0.5 and 30 MAIL/RCPT at p=0.3: some fire, some do not
        for evs in (self.a[0], self.c[0]):
            noops = [e for e in evs if e[0] == "jitter"]
            self.assertTrue(0 < len(noops) < SESSIONS * 6, len(noops))
            r451 = [e for e in evs if e[0] == "random-451"]
            self.assertTrue(0 < len(r451) < SESSIONS * 6, len(r451))

    def test_per_session_draw(self):
        # flaky-rset (per: session): within a connection every RSET fires or none does, and
        # the draw is the same value each time
        for evs, replies in ((self.a[0], self.a[1]), (self.c[0], self.c[1])):
            by_session = {}
            for e in evs:
                if e[0] == "flaky-rset":
                    by_session.setdefault(e[1], []).append(e[5]["probability"])
            for sid, draws in by_session.items():
                self.assertEqual(len(set(draws)), 1, "session %d: %r" % (sid, draws))
                self.assertEqual(len(draws), 6, "every RSET of session %d fired" % sid)
            flaky = replies.count("451 4.3.0 flaky session")
            self.assertEqual(flaky, 6 * len(by_session))

    def test_fired_replies_match_events(self):
        for evs, replies in ((self.a[0], self.a[1]), (self.c[0], self.c[1])):
            n = len([e for e in evs if e[0] == "random-451" and e[6] == ["reply"]])
            self.assertEqual(replies.count("451 4.7.0 Try again later"), n)


class CountersTest(unittest.TestCase):
    """every / after / count: run / times, and one event per firing (also for a rule whose
    actions all lost to an earlier rule)."""

    def test_every_after_times(self):
        with Mocksrv(fault_fixture("chaos.yaml")) as srv:
            port = srv.port("smtp")
            got = []
            for n in (7, 3):
                with smtp_client(port) as c:
                    c.cmd("EHLO client.example")
                    got.append([c.cmd("VRFY alice") for _ in range(n)])
                    c.cmd("QUIT")
                    c.wait_closed()
            wait_closed_event(srv, 2)
            evs = fault_events(srv)
        normal = got[0][0]
        every, after = "252 2.0.0 every third", "550 5.0.0 after four"
        self.assertNotIn(normal, (every, after))
        # session 1, VRFY 1-7 = run matches 1-7: every-3rd at 3 and 6; after-4 (times 2) at
        # 5 and 6, but at 6 every-3rd (earlier in the file) wins the reply; 7: times used up
        self.assertEqual(got[0], [normal, normal, every, normal, after, every, normal])
        # session 2: every-3rd counts per session
        self.assertEqual(got[1], [normal, normal, every])
        self.assertEqual(
            [(e["rule"], e["session"], e["counters"]["match"], e["counters"]["session"],
              e["counters"]["fired"], e["actions"]) for e in evs],
            [("every-3rd-vrfy", 1, 3, 1, 1, ["reply"]),
             ("vrfy-after-4-once", 1, 5, 1, 1, ["reply"]),
             ("every-3rd-vrfy", 1, 6, 1, 2, ["reply"]),
             ("vrfy-after-4-once", 1, 6, 1, 2, []),   # fired, but its reply lost
             ("every-3rd-vrfy", 2, 3, 2, 3, ["reply"])])
        for e in evs:
            self.assertEqual((e["event"], e["at"], e["command"], e["drawn"]),
                             ("fault", "command", "VRFY", {}))
            self.assertEqual(e["listener"], "smtp")
            self.assertIsInstance(e["t"], (int, float))


class TranscriptTest(unittest.TestCase):
    def test_verbose_shows_firings_and_escapes_control_bytes(self):
        import tempfile
        with tempfile.TemporaryDirectory(prefix="mocksrv-tr-") as d:
            path = os.path.join(d, "s.yaml")
            with open(path, "w") as f:
                f.write('version: 1\nlisteners: { smtp: { protocol: smtp, port: 0 } }\n'
                        'faults:\n  - { name: esc, when: { command: NOOP }, '
                        'raw: "250 \\x1b[31mred\\x01 ok\\r\\n" }\n')
            with Mocksrv(path, args=["-v"]) as srv:
                with smtp_client(srv.port("smtp")) as c:
                    c.send(b"NOOP\r\n")
                    self.assertEqual(c.line(), "250 \x1b[31mred\x01 ok")
                    c.cmd("QUIT")
                    c.wait_closed()
                wait_closed_event(srv, 1)
            text = srv.stderr_text()
        self.assertIn("fault esc (command, match 1): raw", text)
        self.assertIn("> 250 \\x1B[31mred\\x01 ok", text)
        self.assertNotIn("\x1b", text, "no raw ESC reaches the terminal")


if __name__ == "__main__":
    unittest.main()
