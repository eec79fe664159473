"""TLS faults (FAULTS.md 2 `tls:`, `at: tls`; 6 "TLS phases with memory BIOs") as real clients see
them: Python's smtplib, poplib and ssl, `openssl s_client`, and raw clients that make their
ClientHello with ssl.MemoryBIO so that every byte the server sends back can be counted.

fixtures/faults/tls-faults.yaml has one listener per variant (so tests do not depend on their
order); fixtures/faults/implicit-tls.yaml is FAULTS.md example D on pop3s/smtps listeners (IMAP
does not exist yet) with shortened delays, run in accept order.

What the tests assert: the bytes a client receives (the 7 bytes of a raw alert, exactly 200
bytes of a cut server flight), how the stream ends (EOF, RST, or nothing until the client's own
timeout), lower bounds on timings (a 500 ms late flight arrives no earlier), and the server's
fault / tls.fail / session.close events. A stalled session never holds up the others: each
stall test runs a normal session on the same listener meanwhile.

Note on `before-finished`: the server forwards its whole first flight and reads nothing more. A
TLS 1.2 client then waits for the server's Finished forever; a TLS 1.3 client receives the
server's Finished in that first flight, completes its side of the handshake, and then gets no
answer to anything it sends. Both are checked."""
import os
import poplib
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (HOST, BioClient, MocksrvCase, Wire, client_context,  # noqa: E402
                             fault_events, fault_fixture)

ALERT = bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])  # fatal handshake_failure
GO_AHEAD = "220 2.0.0 Ready to start TLS"
STALL = 1.5  # how long a client waits for a stalled handshake


class ServerCase(MocksrvCase):
    SERVE = fault_fixture("tls-faults.yaml")

    def wire(self, listener):
        w = Wire(self.srv.port(listener))
        self.addCleanup(w.close)
        return w

    def go_ahead(self, listener):
        """A raw SMTP session on LISTENER up to the STARTTLS go-ahead (checked)."""
        w = self.wire(listener)
        self.assertTrue(w.reply().startswith("220 mock.test ESMTP"))
        self.assertIn("250-STARTTLS", w.cmd("EHLO client.example").split("\n"))
        self.assertEqual(w.cmd("STARTTLS"), GO_AHEAD)
        return w

    def hello(self, w, **kw):
        """Sends a ClientHello on W; returns the client."""
        c = BioClient(self.srv.ca_file, **kw)
        self.assertFalse(c.done)
        w.send(c.hello)
        return c

    def collect(self, w, seconds):
        """Everything that arrives on W within SECONDS (stops early at EOF/RST)."""
        deadline = time.monotonic() + seconds
        data = w.buf
        w.buf = b""
        while not w.end:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            w.sock.settimeout(left)
            try:
                chunk = w.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                w.end, w.end_at = "rst", time.monotonic()
                break
            if not chunk:
                w.end, w.end_at = "eof", time.monotonic()
                break
            w.reads.append((time.monotonic(), chunk))
            data += chunk
        return data

    def assert_quiet(self, w, seconds):
        """Nothing arrives on W for SECONDS, and the connection stays open."""
        data = self.collect(w, seconds)
        self.assertEqual((data, w.end), (b"", None), "a stalled connection sent something")

    def events_of(self, listener, name):
        return [e for e in self.srv.events() if e["event"] == name and e["listener"] == listener]

    def wait_close(self, listener, count=1):
        """The session.close events of LISTENER, once there are COUNT of them."""
        self.srv.wait_event(lambda e: len(self.events_of(listener, "session.close")) >= count,
                            what="%d session.close on %s" % (count, listener))
        return self.events_of(listener, "session.close")

    def serve_normally(self, listener):
        """A whole normal SMTP session on LISTENER (no STARTTLS): EHLO, NOOP, QUIT."""
        with smtplib.SMTP(HOST, self.srv.port(listener), timeout=5) as s:
            self.assertEqual(s.ehlo("other.example")[0], 250)
            self.assertTrue(s.has_extn("starttls"))
            self.assertEqual(s.noop(), (250, b"2.0.0 Ok"))


class StarttlsTest(ServerCase):
    """tls: at STARTTLS (SMTP) and STLS (POP3)."""

    def test_refuse_smtplib(self):
        with smtplib.SMTP(HOST, self.srv.port("smtp-refuse"), timeout=5) as s:
            s.ehlo("client.example")
            self.assertTrue(s.has_extn("starttls"))
            with self.assertRaises(smtplib.SMTPResponseException) as cm:
                s.starttls(context=client_context(self.srv.ca_file))
            self.assertEqual((cm.exception.smtp_code, cm.exception.smtp_error),
                             (454, b"4.7.0 TLS not available"))
            # the session goes on in plaintext
            self.assertEqual(s.noop(), (250, b"2.0.0 Ok"))
            self.assertEqual(s.ehlo("client.example")[0], 250)
        [ev] = [e for e in fault_events(self.srv, rule="refuse")
                if e["listener"] == "smtp-refuse"]
        self.assertEqual((ev["command"], ev["actions"]), ("STARTTLS", ["tls"]))
        self.assertEqual(self.events_of("smtp-refuse", "tls.start"), [])

    def test_refuse_poplib(self):
        p = poplib.POP3(HOST, self.srv.port("pop3-refuse"), timeout=5)
        try:
            with self.assertRaises(poplib.error_proto) as cm:
                p.stls(client_context(self.srv.ca_file))
            self.assertEqual(cm.exception.args[0], b"-ERR TLS not available")
            # still in AUTHORIZATION, in plaintext
            self.assertIn("STLS", p.capa())
            self.assertTrue(p.user("alice").startswith(b"+OK"))
        finally:
            p.quit()

    def test_plaintext_smtp(self):
        w = self.go_ahead("smtp-plain")
        # no handshake: the next bytes are an SMTP command, answered in plaintext
        ehlo = w.cmd("EHLO client.example").split("\n")
        self.assertEqual(ehlo[0], "250-mock.test")
        self.assertEqual(ehlo[-1][:4], "250 ")
        self.assertIn(w.cmd("QUIT"), ("221 2.0.0 Bye", "221 Bye"))
        self.assertEqual(w.read_to_end(), (b"", "eof"))

    def test_plaintext_pop3(self):
        w = self.wire("pop3-plain")
        self.assertTrue(w.line().startswith("+OK "))
        w.send("STLS\r\n")
        self.assertEqual(w.line(), "+OK Begin TLS negotiation now.")
        w.send("CAPA\r\n")
        self.assertEqual(w.line(), "+OK Capability list follows")
        capa = w.take_until(b"\r\n.\r\n")
        self.assertIn(b"\r\nSTLS\r\n", b"\r\n" + capa)
        w.send("QUIT\r\n")
        self.assertTrue(w.line().startswith("+OK"))

    def test_close(self):
        w = self.go_ahead("smtp-close")
        self.assertEqual(w.read_to_end(), (b"", "eof"))
        [ev] = self.wait_close("smtp-close")
        self.assertEqual(ev["reason"], "fault")
        self.assertEqual([e["reason"] for e in self.events_of("smtp-close", "tls.fail")],
                         ["fault: close"])

    @unittest.skipUnless(shutil.which("openssl"), "openssl not installed")
    def test_alert_openssl_s_client(self):
        r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                            "%s:%d" % (HOST, self.srv.port("smtp-alert"))],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        out = (r.stdout + r.stderr).decode("utf-8", "replace")
        self.assertNotEqual(r.returncode, 0, out)
        self.assertIn("alert handshake failure", out)
        self.assertIn("Cipher is (NONE)", out)

    def test_alert_raw(self):
        w = self.go_ahead("smtp-alert")
        c = self.hello(w)
        data, end = w.read_to_end()
        self.assertEqual((data, end), (ALERT, "eof"))
        with self.assertRaises(ssl.SSLError) as cm:
            c.feed(data)
        self.assertEqual(cm.exception.reason, "SSLV3_ALERT_HANDSHAKE_FAILURE")
        self.assertIn("fault: alert",
                      [e["reason"] for e in self.events_of("smtp-alert", "tls.fail")])

    def test_alert_poplib(self):
        p = poplib.POP3(HOST, self.srv.port("pop3-alert"), timeout=5)
        try:
            with self.assertRaises(ssl.SSLError) as cm:
                p.stls(client_context(self.srv.ca_file))
            self.assertEqual(cm.exception.reason, "SSLV3_ALERT_HANDSHAKE_FAILURE")
        finally:
            try:
                p.close()
            except OSError:
                pass  # the failed handshake left poplib's socket detached

    def test_garbage(self):
        # Python's ssl gives up on the first byte
        w = self.go_ahead("smtp-garbage")
        with self.assertRaises(ssl.SSLError):
            client_context(self.srv.ca_file).wrap_socket(w.sock, server_hostname="mock.test")
        # what came is not a TLS record (content types are 20..24), then EOF
        w = self.go_ahead("smtp-garbage")
        c = self.hello(w)
        data, end = w.read_to_end()
        self.assertEqual(end, "eof")
        self.assertTrue(data, "nothing before EOF")
        self.assertNotIn(data[0], range(20, 25), data)
        self.assertEqual(data, b"garbage: this is not TLS\r\n")
        with self.assertRaises(ssl.SSLError):
            c.feed(data)

    def test_stall_after_client_hello(self):
        s_client = None
        if shutil.which("openssl"):
            s_client = subprocess.Popen(
                ["openssl", "s_client", "-starttls", "smtp", "-connect",
                 "%s:%d" % (HOST, self.srv.port("smtp-stall"))],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            started = time.monotonic()
        try:
            # Python's ssl with a 1.5 s socket timeout times out in the handshake
            w = self.go_ahead("smtp-stall")
            w.sock.settimeout(STALL)
            t0 = time.monotonic()
            with self.assertRaises(socket.timeout):
                client_context(self.srv.ca_file).wrap_socket(w.sock, server_hostname="mock.test")
            self.assertGreaterEqual(time.monotonic() - t0, STALL - 0.05)
            # a raw client gets nothing at all, while another session is served normally
            w = self.go_ahead("smtp-stall")
            self.hello(w)
            self.serve_normally("smtp-stall")
            self.assert_quiet(w, STALL)
            if s_client:
                # s_client does not complete its handshake within 3 s either
                with self.assertRaises(subprocess.TimeoutExpired):
                    s_client.communicate(timeout=max(0.1, started + 3 - time.monotonic()))
        finally:
            if s_client and s_client.poll() is None:
                s_client.kill()
                s_client.communicate(timeout=10)
        reasons = [e["reason"] for e in self.events_of("smtp-stall", "tls.fail")]
        self.assertIn("fault: stall after-client-hello", reasons)

    def test_mid_server_flight(self):
        w = self.go_ahead("smtp-mid")
        c = self.hello(w)
        data = self.collect(w, STALL)
        # exactly 200 bytes of the server's first flight, then nothing, connection open
        self.assertEqual((len(data), w.end), (200, None))
        self.assertEqual(data[0], 22, "the flight starts with a handshake record")
        self.assertEqual(c.feed(data), b"")
        self.assertFalse(c.done)
        self.serve_normally("smtp-mid")

    def test_mid_server_flight_then_rst(self):
        w = self.go_ahead("smtp-midrst")
        self.hello(w)
        sent = w.sent_at
        data, end = w.read_to_end(timeout=10)
        self.assertEqual((len(data), end), (200, "rst"))
        self.assertGreaterEqual(w.end_at - sent, 0.95, "RST after close.delay (1 s)")
        [ev] = self.wait_close("smtp-midrst")
        self.assertEqual(ev["reason"], "fault")
        self.assertEqual([e["reason"] for e in self.events_of("smtp-midrst", "tls.fail")],
                         ["fault: stall mid-server-flight"])

    def test_before_finished_tls12(self):
        # TLS 1.2: the first flight ends with ServerHelloDone; the client answers with its
        # Finished and waits for the server's, which never comes
        w = self.go_ahead("smtp-finished")
        c = self.hello(w, maximum_version=ssl.TLSVersion.TLSv1_2)
        flight = b""
        reply = b""
        deadline = time.monotonic() + 5
        while not reply and time.monotonic() < deadline:
            chunk = self.collect(w, 0.2)
            self.assertIsNone(w.end)
            flight += chunk
            reply = c.feed(chunk) if chunk else b""
        self.assertTrue(reply, "the client got the whole server flight and answered it")
        self.assertFalse(c.done)
        w.send(reply)
        self.assert_quiet(w, STALL)
        self.assertFalse(c.step(), "the handshake never completes")

    def test_before_finished_tls13(self):
        # TLS 1.3: the first flight holds the server's Finished; the client completes its side,
        # but the server reads nothing more: its command gets no answer
        w = self.go_ahead("smtp-finished")
        c = self.hello(w, maximum_version=ssl.TLSVersion.TLSv1_3)
        reply = b""
        deadline = time.monotonic() + 5
        while not c.done and time.monotonic() < deadline:
            chunk = self.collect(w, 0.2)
            self.assertIsNone(w.end)
            if chunk:
                reply += c.feed(chunk)
        self.assertTrue(c.done, "TLS 1.3: the client's side completes")
        self.assertEqual(c.obj.version(), "TLSv1.3")
        c.obj.write(b"EHLO client.example\r\n")
        w.send(reply + c.outgoing.read())
        self.assert_quiet(w, STALL)


class ImplicitTest(ServerCase):
    """at: tls on implicit-TLS listeners."""

    def test_delay(self):
        t0 = time.monotonic()
        sock = socket.create_connection((HOST, self.srv.port("smtps-delay")), timeout=5)
        tls = client_context(self.srv.ca_file).wrap_socket(sock, server_hostname="mock.test")
        with tls:
            took = time.monotonic() - t0
            self.assertGreaterEqual(took, 0.5, "the server flight came %.3f s in" % took)
            greeting = b""
            while not greeting.endswith(b"\r\n"):
                chunk = tls.recv(1024)
                self.assertTrue(chunk, "EOF before the greeting")
                greeting += chunk
            self.assertEqual(greeting, b"220 mock.test ESMTP mocksrv\r\n")
            tls.sendall(b"QUIT\r\n")
        [ev] = fault_events(self.srv, rule="late-flight")
        self.assertEqual((ev["at"], ev["actions"], ev["drawn"]["delay_ms"]),
                         ("tls", ["delay"], 500))
        self.assertEqual(len(self.events_of("smtps-delay", "tls.done")), 1)

    def test_alert(self):
        sock = socket.create_connection((HOST, self.srv.port("pop3s-alert")), timeout=5)
        with self.assertRaises(ssl.SSLError) as cm:
            client_context(self.srv.ca_file).wrap_socket(sock, server_hostname="mock.test")
        sock.close()
        self.assertEqual(cm.exception.reason, "SSLV3_ALERT_HANDSHAKE_FAILURE")
        # raw: the 7 bytes, then EOF
        w = self.wire("pop3s-alert")
        self.hello(w)
        self.assertEqual(w.read_to_end(), (ALERT, "eof"))
        closes = self.wait_close("pop3s-alert", 2)
        self.assertEqual([e["reason"] for e in closes], ["fault", "fault"])

    def test_bare_close(self):
        # close at: tls without tls: the ClientHello is read, then FIN instead of a flight
        w = self.wire("smtps-close")
        self.hello(w)
        self.assertEqual(w.read_to_end(), (b"", "eof"))
        self.assertEqual([e["reason"] for e in self.events_of("smtps-close", "tls.fail")],
                         ["fault: close"])


class ExampleDTest(ServerCase):
    """FAULTS.md 3 example D (fixtures/faults/implicit-tls.yaml), sessions in accept order."""
    SERVE = fault_fixture("implicit-tls.yaml")

    def greeting(self, tls):
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = tls.recv(1024)
            self.assertTrue(chunk, "EOF before the greeting")
            data += chunk
        return data

    def test_sessions_in_order(self):
        port = self.srv.port("smtps")
        ctx = client_context(self.srv.ca_file)
        # session 1: the server flight 600 ms late, then a normal session
        t0 = time.monotonic()
        sock = socket.create_connection((HOST, port), timeout=5)
        with ctx.wrap_socket(sock, server_hostname="mock.test") as tls:
            self.assertGreaterEqual(time.monotonic() - t0, 0.6)
            self.assertEqual(self.greeting(tls), b"220 mock.test ESMTP mocksrv\r\n")
            tls.sendall(b"QUIT\r\n")
        # session 2: the server's first flight in 16-byte writes, 5 ms apart; the handshake
        # completes through them and the session goes on
        w2 = self.wire("smtps")
        c2 = self.hello(w2)
        flight = b""
        deadline = time.monotonic() + 20
        while not c2.done and time.monotonic() < deadline:
            chunk = w2.fill(deadline)
            self.assertTrue(chunk, "the connection ended during the shaped flight")
            flight += chunk
            w2.send(c2.feed(chunk))
        self.assertTrue(c2.done, "the handshake completes through the pieces")
        sizes = [len(d) for _, d in w2.reads]
        self.assertGreater(len(flight), 500)
        self.assertTrue(all(n <= 16 for n in sizes), sizes[:20])
        self.assertGreaterEqual(w2.reads[-1][0] - w2.reads[0][0],
                                0.005 * (len(flight) // 16 - 1))
        # session 3: the handshake stops after the ClientHello
        w3 = self.wire("smtps")
        self.hello(w3)
        self.assert_quiet(w3, STALL)
        # session 4: 200 bytes of the server flight, then RST 1 s later
        w4 = self.wire("smtps")
        self.hello(w4)
        sent = w4.sent_at
        data, end = w4.read_to_end(timeout=10)
        self.assertEqual((len(data), end), (200, "rst"))
        self.assertGreaterEqual(w4.end_at - sent, 0.95)

        # pop3s: the greeting comes [200 ms, 600 ms] after the handshake
        sock = socket.create_connection((HOST, self.srv.port("pop3s")), timeout=5)
        with ctx.wrap_socket(sock, server_hostname="mock.test") as tls:
            t0 = time.monotonic()
            self.assertTrue(self.greeting(tls).startswith(b"+OK "))
            waited = time.monotonic() - t0
            tls.sendall(b"QUIT\r\n")
        [ev] = [e for e in fault_events(self.srv) if e["listener"] == "pop3s"]
        drawn = ev["drawn"]["delay_ms"]
        self.assertTrue(200 <= drawn <= 600, drawn)
        self.assertGreaterEqual(waited, drawn / 1000.0 - 0.01)

        evs = [(e["session"], e["at"], e["actions"]) for e in fault_events(self.srv)
               if e["listener"] == "smtps"]
        self.assertEqual([(a, acts) for _, a, acts in evs],
                         [("tls", ["delay"]), ("tls", ["split"]), ("tls", ["tls"]),
                          ("tls", ["close", "tls"])])
        self.assertEqual([e["counters"]["session"] for e in fault_events(self.srv)
                          if e["listener"] == "smtps"], [1, 2, 3, 4])
        fails = [e["reason"] for e in self.events_of("smtps", "tls.fail")]
        self.assertEqual(fails, ["fault: stall after-client-hello",
                                 "fault: stall mid-server-flight"])


if __name__ == "__main__":
    unittest.main()
