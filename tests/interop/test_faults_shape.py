"""Output and input shaping, as the client sees it (FAULTS.md 2 "shaping"): split (size, size
ranges, offsets from start and end, lines, gap, layer: tls), delay with scope session or a
duration, bandwidth, tarpit, stall, and read shaping (size + gap, bandwidth, window, stop).

Each test writes a small scenario, runs a real mocksrv, and records every recv() with its arrival
time (Wire from test_faults_check). Timings are lower bounds ("arrived after at least ..."), never
budgets; the only upper bounds are whole-second margins that tell "shaped" from "not shaped".
Real clients meet the shaping too: curl retrieves a POP3 message through 1-byte splits and
through a slow greeting, poplib over TLS through one-record-per-piece splits."""
import os
import poplib
import ssl
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (BioClient, MocksrvCase, Wire, client_context, code,  # noqa: E402
                             fault_events, wait_closed_event)

MESSAGE = ("From: a@example.test\r\nTo: alice@example.test\r\nSubject: shaped\r\n\r\n"
           + "".join("line %03d of a message read through a shaped connection\r\n" % i
                     for i in range(8)))

POP3 = """version: 1
seed: %(seed)d
listeners: { pop3: { protocol: pop3, port: 0 }, smtp: { protocol: smtp, port: 0 } }
hostname: example.test
users:
  alice:
    password: secret
    addresses: [alice@example.test]
    mailboxes: { INBOX: { messages: [ { raw: %(raw)s, exact: true } ] } }
limits: { idle_timeout: %(idle)s }
faults:
%(rules)s
"""


def yaml_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace(
        "\n", "\\n") + '"'


class ShapeCase(MocksrvCase):
    def serve(self, rules, seed=1, idle="30s", extra=""):
        d = self.tmpdir()
        path = os.path.join(d, "s.yaml")
        with open(path, "w") as f:
            f.write(POP3 % {"seed": seed, "raw": yaml_str(MESSAGE), "idle": idle,
                            "rules": rules} + extra)
        srv = self.spawn(path)
        return srv

    def wire(self, srv, listener="pop3"):
        w = Wire(srv.port(listener), timeout=10)
        self.addCleanup(w.close)
        return w


class SplitTest(ShapeCase):
    def test_size_1_greeting_every_byte_alone_with_gap(self):
        srv = self.serve("  - { when: { listener: pop3, at: greeting }, "
                         "split: { size: 1, gap: 20ms } }")
        w = self.wire(srv)
        greeting = w.take_until(b"\r\n")
        self.assertTrue(greeting.startswith(b"+OK"))
        # one send per byte: reads are single bytes (two may meet in one read when this
        # process runs late), and the last byte left >= 20 ms x (pieces - 1) after the accept
        sizes = [len(d) for _, d in w.reads]
        self.assertGreaterEqual(sizes.count(1), len(greeting) // 2, sizes)
        self.assertGreaterEqual(w.reads[-1][0] - w.connected_at, 0.020 * (len(greeting) - 1))
        # the next reply is not shaped (scope: reply)
        t0 = time.monotonic()
        w.send("CAPA\r\n")
        capa = w.take_until(b"\r\n.\r\n")
        self.assertIn(b"USER", capa)
        self.assertLessEqual(len([t for t, _ in w.reads if t >= t0]), 3)

    def test_offsets_from_end_final_lf_late(self):
        # the CR and LF of the reply in different reads, the LF 150 ms later (a CR/LF split)
        srv = self.serve("  - { when: { command: USER }, "
                         "split: { offsets: [-1], from: end, gap: 300ms } }")
        w = self.wire(srv)
        w.take_until(b"\r\n")
        w.send("USER alice\r\n")
        first = w.take_until(b"\r")
        w.fill(time.monotonic() + 5)
        self.assertTrue(first.startswith(b"+OK") and first.endswith(b"\r"))
        self.assertEqual(w.reads[-1][1], b"\n", "the LF alone")
        self.assertGreaterEqual(w.reads[-1][0] - w.sent_at, 0.3)

    def test_offsets_from_start(self):
        srv = self.serve("  - { when: { command: USER }, "
                         "split: { offsets: [1, 2], gap: 100ms } }")
        w = self.wire(srv)
        w.take_until(b"\r\n")
        n = len(w.reads)
        w.send("USER alice\r\n")
        w.take_until(b"\r\n")
        pieces = [d for _, d in w.reads[n:]]
        self.assertEqual(pieces[:2], [b"+", b"O"], pieces)
        self.assertEqual(b"".join(pieces), b"+OK\r\n")

    def test_lines_one_write_per_line(self):
        srv = self.serve("  - { when: { command: CAPA }, split: { lines: true, gap: 60ms } }")
        w = self.wire(srv)
        w.take_until(b"\r\n")
        n = len(w.reads)
        w.send("CAPA\r\n")
        w.take_until(b"\r\n.\r\n")
        pieces = [d for _, d in w.reads[n:]]
        lines = b"".join(pieces).count(b"\n")
        self.assertGreaterEqual(len(pieces), lines // 2, pieces)
        for p in pieces:
            self.assertTrue(p.endswith(b"\r\n"), "cut at line ends only: %r" % pieces)
        self.assertGreaterEqual(w.reads[-1][0] - w.sent_at, 0.060 * (lines - 1))

    def sizes_for_seed(self, seed):
        srv = self.serve("  - { when: { command: CAPA }, "
                         "split: { size: [1, 9], gap: 40ms } }", seed=seed)
        w = self.wire(srv)
        w.take_until(b"\r\n")
        n = len(w.reads)
        w.send("CAPA\r\n")
        w.take_until(b"\r\n.\r\n")
        return [len(d) for _, d in w.reads[n:]]

    def test_size_range_replays_from_seed(self):
        a, b, c = self.sizes_for_seed(5), self.sizes_for_seed(5), self.sizes_for_seed(6)
        self.assertTrue(all(1 <= x <= 9 for x in a), a)
        self.assertGreater(len(set(a)), 1, "sizes are drawn per piece: %r" % a)
        self.assertEqual(a, b, "same seed, same pieces")
        self.assertNotEqual(a, c, "another seed, other pieces")

    def test_curl_retrieves_through_1_byte_splits(self):
        srv = self.serve("  - { when: { listener: pop3, at: accept }, "
                         "split: { size: 1, gap: 0ms } }")
        url = "pop3://127.0.0.1:%d/1" % srv.port("pop3")
        r = subprocess.run(["curl", "-sS", "--max-time", "30", "-u", "alice:secret", url],
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.replace(b"\r\n", b"\n"), MESSAGE.encode().replace(b"\r\n",
                                                                                    b"\n"))
        fired = fault_events(srv)
        self.assertEqual(len(fired), 1)
        self.assertEqual(fired[0]["actions"], ["split"])

    def test_curl_through_slow_greeting(self):
        srv = self.serve("  - { when: { listener: pop3, at: greeting }, delay: 700ms }")
        url = "pop3://127.0.0.1:%d/1" % srv.port("pop3")
        t0 = time.monotonic()
        r = subprocess.run(["curl", "-sS", "--max-time", "30", "-u", "alice:secret", url],
                           capture_output=True, timeout=60)
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"Subject: shaped", r.stdout)
        self.assertGreaterEqual(took, 0.7)


class BandwidthDelayTest(ShapeCase):
    def test_bandwidth_paces_retr(self):
        # 1 KiB/s: the ~560-byte RETR reply takes about half a second, in small pieces
        srv = self.serve("  - { when: { command: RETR }, bandwidth: 1KiB/s }")
        p = poplib.POP3("127.0.0.1", srv.port("pop3"), timeout=10)
        self.addCleanup(p.close)
        p.user("alice")
        p.pass_("secret")
        t0 = time.monotonic()
        resp, lines, octets = p.retr(1)
        took = time.monotonic() - t0
        self.assertEqual(b"\r\n".join(lines) + b"\r\n", MESSAGE.encode())
        self.assertGreaterEqual(took, (octets - 10) / 1024.0 * 0.9)
        p.quit()

    def test_delay_scope_session_delays_every_reply(self):
        srv = self.serve("  - { when: { listener: pop3, session: 2 }, delay: 300ms, "
                         "scope: session }")
        quick = self.wire(srv)  # session 1: untouched
        quick.take_until(b"\r\n")
        w = self.wire(srv)
        w.take_until(b"\r\n")
        self.assertGreaterEqual(w.reads[0][0] - w.connected_at, 0.3, "greeting delayed")
        for cmd in ("USER alice", "PASS secret", "NOOP"):
            sent = time.monotonic()
            w.send(cmd + "\r\n")
            w.take_until(b"\r\n")
            self.assertGreaterEqual(w.reads[-1][0] - sent, 0.3, cmd)
        self.assertEqual(len(fault_events(srv)), 1, "one firing, at accept, for the session")

    def test_delay_scope_duration_ends(self):
        srv = self.serve("  - { when: { listener: pop3, at: accept }, delay: 800ms, "
                         "scope: 1s }")
        w = self.wire(srv)
        w.take_until(b"\r\n")
        self.assertGreaterEqual(w.reads[0][0] - w.connected_at, 0.8)
        time.sleep(max(0.0, w.connected_at + 1.2 - time.monotonic()))
        sent = time.monotonic()
        w.send("USER alice\r\n")
        w.take_until(b"\r\n")
        self.assertLess(w.reads[-1][0] - sent, 0.8, "the scope is over: no 800 ms delay")

    def test_tarpit_stutters_then_stops(self):
        # spamd: one byte per 100 ms for the first 1.2 s, then normal output
        srv = self.serve("  - { when: { listener: smtp, at: accept }, "
                         "tarpit: { stutter: 100ms, for: 1200ms } }")
        w = self.wire(srv, "smtp")
        t0 = w.connected_at  # no later than the accept, where the tarpit starts
        greeting = w.take_until(b"\r\n", timeout=20)
        early = [d for t, d in w.reads if t - t0 < 1.1]
        self.assertTrue(all(len(d) == 1 for d in early), early)
        self.assertGreaterEqual(len(early), 8)
        self.assertTrue(greeting.startswith(b"220 "))
        time.sleep(max(0.0, t0 + 1.8 - time.monotonic()))
        n = len(w.reads)
        w.send("EHLO client.test\r\n")
        w.take_until(b"250 ", timeout=10)
        w.take_until(b"\r\n")
        self.assertLess(len(w.reads) - n, 10, "after the tarpit the reply is not stuttered")


class StallTest(ShapeCase):
    def test_stall_at_accept_then_resume(self):
        srv = self.serve("  - { when: { listener: pop3, at: accept }, stall: 600ms }")
        w = self.wire(srv)
        self.assertTrue(w.take_until(b"\r\n").startswith(b"+OK"))
        self.assertGreaterEqual(w.reads[0][0] - w.connected_at, 0.6)

    def test_stall_true_no_reply_while_others_served(self):
        srv = self.serve("  - { when: { command: STAT }, stall: true }")
        w = self.wire(srv)
        w.take_until(b"\r\n")
        for cmd in ("USER alice", "PASS secret"):
            w.send(cmd + "\r\n")
            w.take_until(b"\r\n")
        w.send("STAT\r\n")
        # another session is served normally meanwhile
        p = poplib.POP3("127.0.0.1", srv.port("pop3"), timeout=10)
        self.assertTrue(p.user("alice").startswith(b"+OK"))
        p.quit()
        with self.assertRaisesRegex(AssertionError, "timed out"):
            w.take_until(b"\r\n", timeout=1.5)
        self.assertIsNone(w.end, "still open")

    def test_stall_longer_than_idle_timeout_ends_session(self):
        srv = self.serve("  - { when: { command: USER }, stall: 1m }", idle="800ms")
        w = self.wire(srv)
        w.take_until(b"\r\n")
        w.send("USER alice\r\n")
        sent = time.monotonic()
        data, end = w.read_to_end(timeout=10)
        self.assertEqual(data, b"")
        self.assertIn(end, ("eof", "rst"))
        self.assertGreaterEqual(w.end_at - sent, 0.8)
        sid = [e["session"] for e in srv.events() if e["event"] == "session.open"][-1]
        self.assertEqual(wait_closed_event(srv, sid)["reason"], "fault")


class LimitDataTest(ShapeCase):
    """close.after_bytes with scope session counts over the whole session (Toxiproxy
    limit_data): exactly that many bytes arrive, whatever the replies, then the close."""

    def run_session(self, how, extra=""):
        srv = self.serve(extra + "  - { when: { listener: pop3, at: accept }, "
                         "close: { how: %s, after_bytes: 200 } }" % how)
        w = self.wire(srv)
        w.take_until(b"\r\n")
        w.send("USER alice\r\nPASS secret\r\nRETR 1\r\n")
        rest, end = w.read_to_end()
        sid = [e["session"] for e in srv.events() if e["event"] == "session.open"][-1]
        self.assertEqual(wait_closed_event(srv, sid)["reason"], "fault")
        return w.received, end

    def test_fin_after_200_bytes_of_the_session(self):
        got, end = self.run_session("fin")
        self.assertEqual(end, "eof")
        self.assertEqual(len(got), 200)
        self.assertIn(b"Subject: shaped", got, "the cut falls inside the RETR reply")

    def test_cut_counts_through_split_pieces(self):
        got, end = self.run_session("fin", "  - { when: { listener: pop3, at: accept }, "
                                    "split: { size: 7, gap: 1ms } }\n")
        self.assertEqual(end, "eof")
        self.assertEqual(len(got), 200)

    def test_rst_after_200_bytes_of_the_session(self):
        got, end = self.run_session("rst")
        self.assertEqual(end, "rst")
        self.assertLessEqual(len(got), 200)


class ReadTest(ShapeCase):
    def send_body(self, srv, size):
        """DATA with SIZE bytes of body: seconds from the first body byte sent to the reply
        to the final ".", which comes once the server has read everything; and that reply."""
        s = socket.create_connection(("127.0.0.1", srv.port("smtp")), timeout=30)
        self.addCleanup(s.close)
        f = s.makefile("rb")
        f.readline()
        for cmd in (b"HELO c.test", b"MAIL FROM:<a@c.test>", b"RCPT TO:<alice@example.test>",
                    b"DATA"):
            s.sendall(cmd + b"\r\n")
            f.readline()
        body = (b"x" * 78 + b"\r\n") * (size // 80)
        t0 = time.monotonic()
        s.sendall(body + b".\r\n")
        reply = f.readline()
        return time.monotonic() - t0, reply

    def test_read_size_and_gap_trickle(self):
        # FAULTS.md example H trickle-data, faster: 512 bytes per read, 2 ms apart (~256 KB/s)
        srv = self.serve("  - { when: { listener: smtp, at: data }, "
                         "read: { size: 512, gap: 2ms, window: 4KiB } }")
        took, reply = self.send_body(srv, 512 * 1024)
        self.assertTrue(reply.startswith(b"250"), reply)
        self.assertGreaterEqual(took, 1.5, "512 KiB at <= 256 KB/s")
        self.assertEqual(len(srv.wait_messages(1)), 1)

    def test_read_bandwidth(self):
        srv = self.serve("  - { when: { listener: smtp, at: data }, "
                         "read: { bandwidth: 256KiB/s } }")
        took, reply = self.send_body(srv, 512 * 1024)
        self.assertTrue(reply.startswith(b"250"), reply)
        self.assertGreaterEqual(took, 1.5, "512 KiB at 256 KiB/s")

    def test_read_shaping_ends_with_the_payload(self):
        srv = self.serve("  - { when: { listener: smtp, at: data }, "
                         "read: { size: 1, gap: 50ms } }")
        took, reply = self.send_body(srv, 160)
        self.assertTrue(reply.startswith(b"250"), reply)
        self.assertGreaterEqual(took, 1.0, "~160 bytes one per 50 ms")

    def test_read_stop_blocks_the_client_until_timeout(self):
        # never drain: the client's write blocks; the session then times out
        srv = self.serve("  - { when: { listener: smtp, at: data, received: 8KiB }, "
                         "read: stop }", idle="1500ms")
        s = socket.create_connection(("127.0.0.1", srv.port("smtp")), timeout=30)
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        f = s.makefile("rb")
        f.readline()
        for cmd in (b"HELO c.test", b"MAIL FROM:<a@c.test>", b"RCPT TO:<alice@example.test>",
                    b"DATA"):
            s.sendall(cmd + b"\r\n")
            f.readline()
        sent = [0]
        err = []

        def pump():
            chunk = b"y" * 78 + b"\r\n"
            try:
                for _ in range(200000):  # 16 MB at most
                    s.sendall(chunk)
                    sent[0] += len(chunk)
            except OSError as e:
                err.append(e)
        t0 = time.monotonic()
        th = threading.Thread(target=pump, daemon=True)
        th.start()
        th.join(20)
        took = time.monotonic() - t0
        self.assertFalse(th.is_alive(), "the write must end once the server gives up")
        self.assertTrue(err, "the client's write failed when the server closed")
        self.assertLess(sent[0], 8 * 1024 * 1024, "the server stopped reading")
        self.assertGreaterEqual(took, 1.4, "blocked until the idle timeout")

    def pushed_in_one_second(self, listener_extra):
        """With read: stop from the start of DATA: how many body bytes the client's kernel takes
        in 1 s (what the server's receive buffer and window let through)."""
        d = self.tmpdir()
        path = os.path.join(d, "s.yaml")
        with open(path, "w") as f:
            f.write("version: 1\nlisteners: { smtp: { protocol: smtp, port: 0%s } }\n"
                    "faults:\n  - { when: { at: data }, read: stop }\n" % listener_extra)
        srv = self.spawn(path)
        s = socket.create_connection(("127.0.0.1", srv.port("smtp")), timeout=10)
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        f = s.makefile("rb")
        f.readline()
        for cmd in (b"HELO c.test", b"MAIL FROM:<a@c.test>", b"RCPT TO:<b@c.test>", b"DATA"):
            s.sendall(cmd + b"\r\n")
            f.readline()
        s.setblocking(False)
        sent, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < 1.0:
            try:
                sent += s.send(b"x" * 1024)
            except BlockingIOError:
                time.sleep(0.01)
        return sent

    def test_listener_window_advertised_from_the_start(self):
        # FAULTS.md 6: SO_RCVBUF on the listening socket, so the first SYN-ACK is small too
        small = self.pushed_in_one_second(", window: 4KiB")
        default = self.pushed_in_one_second("")
        self.assertLess(small, 48 * 1024)
        self.assertGreater(default, 64 * 1024)


class TlsLayerTest(ShapeCase):
    def test_layer_tls_one_record_per_piece(self):
        d = self.tmpdir()
        path = os.path.join(d, "s.yaml")
        with open(path, "w") as f:
            f.write("version: 1\nlisteners: { pop3s: { protocol: pop3, port: 0, tls: implicit }}\n"
                    "faults:\n  - { when: { command: CAPA }, "
                    "split: { size: 8, gap: 10ms, layer: tls } }\n")
        tsrv = self.spawn(path)
        ctx = client_context(tsrv.ca_file)
        p = poplib.POP3_SSL("127.0.0.1", tsrv.port("pop3s"), context=ctx, timeout=10)
        self.addCleanup(p.close)
        t0 = time.monotonic()
        caps = p.capa()
        took = time.monotonic() - t0
        self.assertIn("USER", caps)
        # the ~150-byte reply in 8-byte records, 10 ms apart
        self.assertGreaterEqual(took, 0.1)
        ev = fault_events(tsrv)
        self.assertEqual([e["actions"] for e in ev], [["split"]])
        p.quit()

    def test_layer_tls_records_on_the_wire(self):
        # count the records: with layer: tls each 8-byte piece is its own application-data
        # record (with layer: tcp the reply would be one record cut into TCP pieces)
        d = self.tmpdir()
        path = os.path.join(d, "s.yaml")
        with open(path, "w") as f:
            f.write("version: 1\nhostname: mock.test\n"
                    "listeners: { pop3s: { protocol: pop3, port: 0, tls: implicit }}\n"
                    "faults:\n  - { when: { command: CAPA }, "
                    "split: { size: 8, gap: 5ms, layer: tls } }\n")
        tsrv = self.spawn(path)
        c = BioClient(tsrv.ca_file)
        w = Wire(tsrv.port("pop3s"), timeout=10)
        self.addCleanup(w.close)
        w.send(c.hello)
        deadline = time.monotonic() + 10
        plain = b""
        while b"\r\n" not in plain:  # the handshake, then the greeting
            out = c.feed(w.fill(deadline))
            if out:
                w.send(out)
            if c.done:
                try:
                    plain += c.obj.read(4096)
                except ssl.SSLWantReadError:
                    pass
        c.obj.write(b"CAPA\r\n")
        w.buf = b""
        w.send(c.outgoing.read())
        raw, reply = b"", b""
        while not reply.endswith(b"\r\n.\r\n"):
            chunk = w.fill(deadline)
            raw += chunk
            c.incoming.write(chunk)
            try:
                while True:
                    reply += c.obj.read(4096)
            except ssl.SSLWantReadError:
                pass
        self.assertIn(b"USER", reply)
        lengths, pos = [], 0
        while pos + 5 <= len(raw):
            self.assertEqual(raw[pos], 0x17, "application data records only")
            n = int.from_bytes(raw[pos + 3:pos + 5], "big")
            lengths.append(n)
            pos += 5 + n
        self.assertEqual(pos, len(raw))
        self.assertGreaterEqual(len(lengths), len(reply) // 8)
        self.assertEqual(len(set(lengths[:-1])), 1, "equal records for equal 8-byte pieces")


if __name__ == "__main__":
    unittest.main()
