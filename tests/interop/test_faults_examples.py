"""FAULTS.md 3 examples that had no test of their own yet, each run from fixtures/faults/:

F (example-f-chaos.yaml): chaos mode replays from its seed. The same seed and the same client
sequence give the same fault events (rules, sessions, counters, drawn probabilities and delays,
actions) and the same bytes; another seed gives other events. Session 2 of pop3 gets every
output at least 300 ms late (sticky-latency), and the messages arrive intact through chunky
splits.

G (example-g-tarpit.yaml): a tarpit MX. The two-line banner arrives one line at a time with the
gap between, the first seconds of the session stutter one byte at a time, and every RCPT after
the 20th is answered late."""
import os
import poplib
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (Mocksrv, MocksrvCase, Wire, code, fault_events,  # noqa: E402
                             fault_fixture, wait_for)

SMTP_SESSIONS = 3
POP3_SESSIONS = 3


def project(ev):
    return (ev["rule"], ev["session"], ev["at"], ev.get("command"), ev["counters"],
            ev["drawn"], ev["actions"])


def smtp_session(port, n):
    """EHLO, two transactions, QUIT; stops at a 421 (random-421 closes). Returns the replies."""
    seen = []
    w = Wire(port, timeout=20)
    try:
        seen.append(w.reply())
        for cmd in ["EHLO c%d.example" % n, "MAIL FROM:<a@c.example>", "RCPT TO:<alice@mock.test>",
                    "RSET", "MAIL FROM:<b@c.example>", "RCPT TO:<alice@mock.test>", "QUIT"]:
            r = w.cmd(cmd)
            seen.append(r)
            if r.startswith("421"):
                seen.append(w.read_to_end()[1])
                break
    finally:
        w.close()
    return seen


def pop3_session(port):
    """USER/PASS, RETR 1, TOP 2 0, QUIT through poplib: (message lines, top lines, reply times
    after each command)."""
    p = poplib.POP3("127.0.0.1", port, timeout=20)
    waits = []
    try:
        for step in (lambda: p.user("alice"), lambda: p.pass_("secret")):
            t0 = time.monotonic()
            step()
            waits.append(time.monotonic() - t0)
        t0 = time.monotonic()
        _, msg, _ = p.retr(1)
        waits.append(time.monotonic() - t0)
        _, top, _ = p.top(2, 0)
        p.quit()
    finally:
        p.close()
    return msg, top, waits


def run_f(seed):
    with Mocksrv(fault_fixture("example-f-chaos.yaml"), args=["--seed", str(seed)]) as srv:
        smtp = [smtp_session(srv.port("smtp"), n) for n in range(SMTP_SESSIONS)]
        pop3 = [pop3_session(srv.port("pop3")) for _ in range(POP3_SESSIONS)]
        wait_for(lambda: len([e for e in srv.events() if e["event"] == "session.close"])
                 >= SMTP_SESSIONS + POP3_SESSIONS, timeout=20, what="every session closed")
        evs = [project(e) for e in fault_events(srv)]
    if srv.returncode != 0:
        raise AssertionError("mocksrv exit status %r" % srv.returncode)
    return evs, smtp, pop3


class ExampleFTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = run_f(1234)
        cls.b = run_f(1234)
        cls.c = run_f(99)

    def test_same_seed_same_events_and_bytes(self):
        self.assertGreater(len(self.a[0]), 10)
        self.assertEqual(self.a[0], self.b[0])
        self.assertEqual(self.a[1], self.b[1])
        self.assertEqual([(m, t) for m, t, _ in self.a[2]], [(m, t) for m, t, _ in self.b[2]])

    def test_other_seed_other_events(self):
        self.assertNotEqual(self.a[0], self.c[0])

    def test_jitter_drawn_in_range(self):
        jitter = [e for e in self.a[0] + self.c[0] if e[0] == "jitter"]
        self.assertGreater(len(jitter), 5)
        for ev in jitter:
            self.assertTrue(0 <= ev[5]["delay_ms"] <= 250, ev)
        self.assertGreater(len({ev[5]["delay_ms"] for ev in jitter}), 3, "drawn per reply")

    def test_sticky_latency_on_pop3_session_2(self):
        for run in (self.a, self.c):
            sticky = [e for e in run[0] if e[0] == "sticky-latency"]
            self.assertEqual(len(sticky), 1, "fires once, at accept of the 2nd pop3 session")
            _, _, waits = run[2][1]
            for w in waits:
                self.assertGreaterEqual(w, 0.3, "every reply of session 2 is >= 300 ms late")

    def test_messages_intact_through_chunky_splits(self):
        for run in (self.a, self.b, self.c):
            msgs = {tuple(m) for m, _, _ in run[2]}
            self.assertEqual(len(msgs), 1, "the same message bytes in every session")
            self.assertGreater(sum(len(x) for x in msgs.pop()), 1500)
        chunky = [e for run in (self.a, self.c) for e in run[0] if e[0] == "chunky"]
        self.assertTrue(chunky, "chunky fired at least once in these runs")
        for ev in chunky:
            self.assertEqual(ev[6], ["split"])
            self.assertLess(ev[5]["probability"], 0.5)

    def test_slow_links_per_session(self):
        self.assertTrue([e for run in (self.a, self.c) for e in run[0] if e[0] == "slow-links"],
                        "slow-links fired at least once in these two seeds' runs")
        for run in (self.a, self.c):
            slow = [e for e in run[0] if e[0] == "slow-links"]
            for ev in slow:
                self.assertEqual(ev[2], "accept")
                self.assertLess(ev[5]["probability"], 0.2)
                self.assertEqual(ev[6], ["bandwidth"])
            self.assertEqual(len({ev[1] for ev in slow}), len(slow), "at most once a session")


class ExampleGTest(MocksrvCase):
    def setUp(self):
        self.srv = self.spawn(fault_fixture("example-g-tarpit.yaml"), args=["-v"])

    def test_tarpit_mx(self):
        w = Wire(self.srv.port("mx"), timeout=20)
        self.addCleanup(w.close)
        first = w.take_until(b"\r\n")
        second = w.take_until(b"\r\n")
        self.assertEqual(first, b"220-mx.mock.test ESMTP (please wait)\r\n")
        self.assertEqual(second, b"220 mx.mock.test ESMTP\r\n")
        self.assertEqual([d for _, d in w.reads], [first, second], "one read per banner line")
        self.assertGreaterEqual(w.reads[1][0] - w.connected_at, 0.6, "the greet wait")
        # still inside the 2 s tarpit: the EHLO reply stutters a byte at a time
        n = len(w.reads)
        w.send("EHLO client.example\r\n")
        ehlo = w.reply()
        self.assertEqual(code(ehlo), 250)
        early = [d for t, d in w.reads[n:] if t - w.connected_at < 1.9]
        self.assertGreater(len(early), 5)
        self.assertTrue(all(len(d) == 1 for d in early), early[:10])
        time.sleep(max(0.0, w.connected_at + 2.2 - time.monotonic()))
        self.assertEqual(code(w.cmd("MAIL FROM:<a@client.example>")), 250)
        waits = []
        for i in range(21):
            t0 = time.monotonic()
            self.assertEqual(code(w.cmd("RCPT TO:<u%d@mx.mock.test>" % i)), 250)
            waits.append(time.monotonic() - t0)
        self.assertGreaterEqual(waits[20], 0.3, "the 21st RCPT is answered late")
        late = fault_events(self.srv, "rcpt-tarpit")
        self.assertEqual([e["counters"]["match"] for e in late], [21])
        w.cmd("QUIT")
        # -v: every firing is in the transcript too
        text = self.srv.stderr_text()
        for line in ("fault stutter (accept, match 1): tarpit",
                     "fault pregreet-banner (greeting, match 1): reply, split",
                     "fault rcpt-tarpit (command, match 21): delay"):
            self.assertIn(line, text)
        w.read_to_end()
        self.assertEqual(self.srv.stop(), 0, "a patient client meets no_pregreet")

    def test_pregreet_client_fails_the_expectation(self):
        w = Wire(self.srv.port("mx"), timeout=20)
        self.addCleanup(w.close)
        w.send("EHLO impatient.example\r\n")  # before the banner's second line
        w.take_until(b"220 mx.mock.test ESMTP\r\n")
        self.srv.want_status = 3
        self.assertEqual(self.srv.stop(), 3)
        fails = [e for e in self.srv.events() if e["event"] == "expect.fail"]
        self.assertEqual(len(fails), 1, fails)
        self.assertIn("no_pregreet", fails[0]["expectation"])


class ExampleHTest(MocksrvCase):
    def setUp(self):
        self.srv = self.spawn(fault_fixture("example-h-slow-reader.yaml"))

    def open_data(self):
        w = Wire(self.srv.port("smtp"), timeout=20)
        self.addCleanup(w.close)
        w.reply()
        for cmd in ("EHLO c.example", "MAIL FROM:<a@c.example>", "RCPT TO:<alice@mock.test>"):
            self.assertEqual(code(w.cmd(cmd)), 250)
        self.assertEqual(code(w.cmd("DATA")), 354)
        return w

    def test_trickle_then_early_552(self):
        # session 1: the body is drained one byte per >= 2 ms
        w = self.open_data()
        body = b"Subject: trickle\r\n\r\n" + b"z" * 998 + b"\r\n"
        t0 = time.monotonic()
        w.send(body + b".\r\n")
        self.assertEqual(code(w.reply()), 250)
        self.assertGreaterEqual(time.monotonic() - t0, 2.0, "~1000 bytes at <= 500 B/s")
        w.cmd("QUIT")
        # session 2: the 552 arrives while the client is still sending its 1 MiB body
        w = self.open_data()
        w.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        sent, err = [0], []

        def pump():
            line = b"y" * 78 + b"\r\n"
            try:
                for _ in range(1024 * 1024 // 80):
                    w.sock.sendall(line)
                    sent[0] += len(line)
                w.sock.sendall(b".\r\n")
            except OSError as e:
                err.append(e)
        th = threading.Thread(target=pump, daemon=True)
        th.start()
        reply = w.line(timeout=20)
        at_reply = sent[0]
        got_at = time.monotonic()
        self.assertEqual(reply, "552 5.3.4 Message too big")
        self.assertLess(at_reply, 1024 * 1024 - 80, "answered before the client's final dot")
        data, end = w.read_to_end(timeout=20)
        self.assertEqual(data, b"")
        self.assertGreaterEqual(w.end_at - got_at, 0.9, "the close comes ~1 s later")
        th.join(20)
        self.assertFalse(th.is_alive())
        self.assertEqual(len(self.srv.spool_ids()), 1, "the early-answered message is not kept")


if __name__ == "__main__":
    unittest.main()
