"""Where shaping ends (FAULTS.md 2 `tarpit`, 1 "Scope"; SPEC.md 2 session.close reasons).

- A tarpit's `for` bounds how long it lasts, counted from when it started, even in the middle of
  an output unit: once it has passed, the rest of the greeting (or of the TLS handshake flight)
  leaves at once. A scope's duration bounds a split the same way, TLS records included. Before this was so, a 29-byte greeting under `stutter: 200ms, for: 600ms`
  took 5.6 s, and an implicit-TLS handshake under `stutter: 100ms, for: 1s` more than a minute.
- A session that ends because the server's own shaped or delayed output outlived
  limits.idle_timeout ends by a fault: its session.close reason is `fault`, not `timeout`. That
  happens with shaping over the session (`at: accept`), whose units leave while the server
  already waits for the client's next command, and with a late TLS server flight. A client that
  is just silent still gets `timeout`, also after a greeting shaped on its own (scope reply:
  the wait for the client starts once the greeting has left).

Timings are what the client saw, measured from before the connect (so lower bounds hold however
late this process runs); the upper bounds are seconds wide: they tell "bounded by `for`" (about
0.6 s or 1 s) from "every byte stuttered" (5 s and more)."""
import os
import socket
import ssl
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (HOST, BioClient, MocksrvCase, Wire, client_context,  # noqa: E402
                             last_session_id, wait_closed_event)

GREETING = b"220 mock.test ESMTP mocksrv\r\n"  # 29 bytes: 5.6 s at 200 ms a byte

BOUNDED = """version: 1
seed: 3
hostname: mock.test
listeners:
  greet:  { protocol: smtp, port: 0 }
  accept: { protocol: smtp, port: 0 }
  tls:    { protocol: smtp, port: 0, tls: implicit }
  tlsacc: { protocol: smtp, port: 0, tls: implicit }
  pop3:   { protocol: pop3, port: 0 }
  scope:  { protocol: smtp, port: 0 }
  tlsrec: { protocol: smtp, port: 0, tls: implicit }
faults:
  - name: greet-tarpit
    when: { listener: greet, at: greeting }
    tarpit: { stutter: 200ms, for: 600ms }
  - name: accept-tarpit
    when: { listener: accept, at: accept }
    tarpit: { stutter: 200ms, for: 600ms }
  - name: tls-tarpit
    when: { listener: tls, at: tls }
    tarpit: { stutter: 100ms, for: 1s }
  - name: tlsacc-tarpit
    when: { listener: tlsacc, at: accept }
    tarpit: { stutter: 100ms, for: 1s }
  - name: pop3-tarpit
    when: { listener: pop3, at: accept }
    tarpit: { stutter: 300ms, for: 600ms }
    bandwidth: 20/s
  - name: scope-split
    when: { listener: scope, at: greeting }
    split: { size: 1, gap: 200ms }
    scope: 600ms
  - name: record-split
    when: { listener: tlsrec, at: greeting }
    split: { size: 1, gap: 200ms, layer: tls }
    scope: 600ms
"""

LATE = """version: 1
seed: 3
hostname: mock.test
limits: { idle_timeout: 1s }
listeners:
  tarpit:    { protocol: smtp, port: 0 }
  bandwidth: { protocol: smtp, port: 0 }
  split:     { protocol: smtp, port: 0 }
  delay:     { protocol: smtp, port: 0 }
  pop3:      { protocol: pop3, port: 0 }
  tlsdelay:  { protocol: smtp, port: 0, tls: implicit }
  reply:     { protocol: smtp, port: 0 }
  silent:    { protocol: smtp, port: 0 }
faults:
  - { when: { listener: tarpit, at: accept }, tarpit: { stutter: 100ms, for: 2500ms } }
  - { when: { listener: bandwidth, at: accept }, bandwidth: 10/s }
  - { when: { listener: split, at: accept }, split: { size: 4, gap: 400ms } }
  - { when: { listener: delay, at: accept }, delay: 1500ms, scope: session }
  - { when: { listener: pop3, at: accept }, tarpit: { stutter: 100ms } }
  - { when: { listener: tlsdelay, at: tls }, delay: 1500ms }
  - { when: { listener: reply, at: greeting }, tarpit: { stutter: 100ms } }
"""


class Case(MocksrvCase):
    SCENARIO = None

    @classmethod
    def setUpClass(cls):
        cls.srv = cls.spawn_shared(cls.shared_scenario_text(cls.SCENARIO))

    def wire(self, listener):
        w = Wire(self.srv.port(listener), timeout=20)
        self.addCleanup(w.close)
        return w


class TarpitForTest(Case):
    """`for` ends the tarpit in the middle of the output under way."""
    SCENARIO = BOUNDED

    def check_greeting(self, listener, want=GREETING):
        w = self.wire(listener)
        t0 = w.connected_at
        got = w.take_until(b"\r\n", timeout=20)
        took = w.reads[-1][0] - t0
        self.assertEqual(got, want)
        # the tarpit held the greeting back for its 600 ms (unshaped: at once) ...
        self.assertGreaterEqual(took, 0.5, "greeting complete after %.2f s" % took)
        # ... and no longer: then the rest came at once. Every byte stuttered would be
        # 29 x 200 ms = 5.6 s, in 29 reads (a slow client reads fewer, never more).
        self.assertLess(took, 3.0, "greeting complete after %.2f s" % took)
        self.assertLessEqual(len(w.reads), 6, "reads: %r" % w.reads)
        return w

    def test_greeting_tarpit_ends_mid_greeting(self):
        w = self.check_greeting("greet")
        w.send("QUIT\r\n")
        self.assertTrue(w.reply().startswith("221 "), "the session goes on")

    def test_accept_tarpit_ends_mid_greeting(self):
        w = self.check_greeting("accept")
        # the tarpit is over for the rest of the session: EHLO's reply is not stuttered
        n = len(w.reads)
        ehlo = w.cmd("EHLO client.test", timeout=10)
        self.assertTrue(ehlo.startswith("250-mock.test"), ehlo)
        self.assertLess(len(w.reads) - n, 5, "after the tarpit: %r" % w.reads[n:])

    def test_scope_duration_ends_mid_greeting(self):
        # a split with scope: 600ms is "how long shaping lasts" as a tarpit's `for` is
        self.check_greeting("scope")

    def test_scope_duration_ends_tls_records_mid_greeting(self):
        # layer: tls, one record per byte, 200 ms apart, for 600 ms: then the rest of the
        # greeting is one record (every byte a record: 5.6 s)
        t0 = time.monotonic()
        sock = socket.create_connection((HOST, self.srv.port("tlsrec")), timeout=10)
        with client_context(self.srv.ca_file).wrap_socket(sock, server_hostname="mock.test") as tls:
            greeting = b""
            while not greeting.endswith(b"\r\n"):
                chunk = tls.recv(1024)
                self.assertTrue(chunk, "EOF before the greeting")
                greeting += chunk
            took = time.monotonic() - t0
            tls.sendall(b"QUIT\r\n")
        self.assertEqual(greeting, GREETING)
        self.assertGreaterEqual(took, 0.5, "greeting complete after %.2f s" % took)
        self.assertLess(took, 3.0, "greeting complete after %.2f s" % took)

    def test_bandwidth_of_the_same_rule_goes_on(self):
        # tarpit and bandwidth (20 bytes/s) in one rule at accept: the tarpit's `for` ends
        # the stutter, not the bandwidth, so the rest of the POP3 greeting ("+OK mocksrv POP3
        # server ready", 31 bytes) is paced, at one byte per 50 ms. (When the bandwidth
        # ended the tarpit's `for` instead, every byte stuttered: 31 x 300 ms = 9.3 s.)
        w = self.wire("pop3")
        t0 = w.connected_at
        got = w.take_until(b"\r\n", timeout=30)
        took = w.reads[-1][0] - t0
        self.assertTrue(got.startswith(b"+OK"), got)
        self.assertGreaterEqual(took, 1.2, "600 ms of tarpit, then ~28 bytes at 20 bytes/s")
        self.assertLess(took, 5.0, "greeting complete after %.2f s" % took)

    def handshake(self, listener):
        t0 = time.monotonic()
        sock = socket.create_connection((HOST, self.srv.port(listener)), timeout=10)
        try:
            tls = client_context(self.srv.ca_file).wrap_socket(sock, server_hostname="mock.test")
        except (OSError, ssl.SSLError):
            sock.close()
            raise
        took = time.monotonic() - t0
        with tls:
            greeting = b""
            while not greeting.endswith(b"\r\n"):
                chunk = tls.recv(1024)
                self.assertTrue(chunk, "EOF before the greeting")
                greeting += chunk
            greeting_at = time.monotonic() - t0
            tls.sendall(b"QUIT\r\n")
        return took, greeting, greeting_at

    def test_tls_tarpit_ends_mid_flight(self):
        # at: tls, scope reply: the server's first flight (some KB) stutters for 1 s, then the
        # rest leaves at once. Every byte stuttered: minutes, and the client's 10 s timeout.
        took, greeting, _ = self.handshake("tls")
        self.assertGreaterEqual(took, 0.9, "the tarpit lasted its second")
        self.assertLess(took, 5.0, "handshake took %.2f s" % took)
        self.assertEqual(greeting, GREETING)

    def test_accept_tarpit_on_implicit_tls_ends_mid_flight(self):
        # at: accept, scope session: the handshake ciphertext is shaped from the accept on
        took, greeting, greeting_at = self.handshake("tlsacc")
        self.assertGreaterEqual(took, 0.9, "the tarpit lasted its second")
        self.assertLess(took, 5.0, "handshake took %.2f s" % took)
        self.assertEqual(greeting, GREETING)
        self.assertLess(greeting_at, 6.0, "the greeting after the tarpit is not stuttered")


class LateOutputTest(Case):
    """The server's own slow output outlives the 1 s idle timeout: reason fault."""
    SCENARIO = LATE

    def reason(self, listener):
        sid = last_session_id(self.srv, listener)
        return wait_closed_event(self.srv, sid, timeout=20)["reason"]

    def silent_session(self, listener):
        """Connects, says nothing, reads until the server ends the session."""
        w = self.wire(listener)
        _, end = w.read_to_end(timeout=20)
        self.assertIn(end, ("eof", "rst"))
        return w

    def test_tarpit_outlives_idle_timeout(self):
        w = self.silent_session("tarpit")
        self.assertTrue(w.received.startswith(GREETING), w.received)
        self.assertEqual(self.reason("tarpit"), "fault")

    def test_bandwidth_outlives_idle_timeout(self):
        w = self.silent_session("bandwidth")
        self.assertTrue(w.received.startswith(GREETING), w.received)
        self.assertGreaterEqual(w.end_at - w.connected_at, 2.0, "29 bytes at 10 bytes/s")
        self.assertEqual(self.reason("bandwidth"), "fault")

    def test_split_gaps_outlive_idle_timeout(self):
        w = self.silent_session("split")
        self.assertTrue(w.received.startswith(GREETING), w.received)
        self.assertEqual(self.reason("split"), "fault")

    def test_session_delay_outlives_idle_timeout(self):
        w = self.silent_session("delay")
        self.assertGreaterEqual(w.reads[0][0] - w.connected_at, 1.5, "the delay")
        self.assertEqual(self.reason("delay"), "fault")

    def test_pop3_tarpit_outlives_idle_timeout(self):
        w = self.silent_session("pop3")
        self.assertTrue(w.received.startswith(b"+OK"), w.received)
        self.assertEqual(self.reason("pop3"), "fault")

    def test_tls_delay_outlives_idle_timeout(self):
        # the server's first flight 1.5 s late: the handshake's deadline (1 s) passed while the
        # server held its flight back, not while the client was silent
        w = self.wire("tlsdelay")
        w.send(BioClient(self.srv.ca_file).hello)
        _, end = w.read_to_end(timeout=20)
        self.assertGreaterEqual(w.reads[0][0] - w.connected_at, 1.5, "the late flight")
        self.assertEqual(self.reason("tlsdelay"), "fault")

    def test_reply_scoped_greeting_then_silence_is_a_timeout(self):
        # a tarpit on the greeting alone (scope reply): the greeting takes 2.9 s, and then the
        # client has its whole idle time to answer; it stays silent: timeout
        w = self.silent_session("reply")
        self.assertTrue(w.received.startswith(GREETING), w.received)
        # the greeting's last byte left no earlier than 28 x 100 ms after the connect, and the
        # client had a whole idle period after it
        self.assertGreaterEqual(w.end_at - w.connected_at, 2.8 + 1.0 - 0.05,
                                "a whole idle period after the greeting")
        self.assertEqual(self.reason("reply"), "timeout")

    def test_silent_client_is_still_a_timeout(self):
        w = self.silent_session("silent")
        self.assertTrue(w.received.startswith(GREETING), w.received)
        self.assertGreaterEqual(w.end_at - w.connected_at, 1.0, "the idle timeout")
        self.assertEqual(self.reason("silent"), "timeout")


if __name__ == "__main__":
    unittest.main()
