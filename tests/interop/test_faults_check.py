"""Fault rules (FAULTS.md) at load: every fixtures/faults/*.yaml loads; bad rules are refused with
a position and a message saying why (and IMAP-only events with "not supported yet").

This file also holds what the other test_faults_*.py files share: Wire, a small raw client that
records every recv() with its arrival time and how the stream ended (EOF or RST), and helpers for
the fault events. Tests use it, or smtplib/poplib, and assert only what a client observes plus
the server's events.

Timing checks are lower bounds only (a 300 ms delay arrives no earlier than 300 ms after the
command was sent); there are no upper time budgets besides the generous I/O deadlines."""
import errno
import glob
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mocksrv_harness import IO_TIMEOUT, binary, fixtures  # noqa: E402

HOST = "127.0.0.1"


def fault_fixture(name):
    """Path of fixtures/faults/NAME."""
    return os.path.join(fixtures(), "faults", name)


def fault_events(srv, rule=None, session=None):
    """The "fault" events so far, optionally of one rule and/or one session id."""
    return [e for e in srv.events() if e["event"] == "fault"
            and (rule is None or e.get("rule") == rule)
            and (session is None or e.get("session") == session)]


def wait_closed_event(srv, sid, timeout=IO_TIMEOUT):
    """Waits for session SID's session.close event and returns it."""
    return srv.wait_event(lambda e: e["event"] == "session.close" and e["session"] == sid,
                          timeout, what="session.close of session %d" % sid)


def last_session_id(srv, listener=None):
    """The id of the latest session.open (of LISTENER)."""
    ids = [e["session"] for e in srv.events() if e["event"] == "session.open"
           and (listener is None or e["listener"] == listener)]
    if not ids:
        raise AssertionError("no session.open event yet")
    return ids[-1]


class Wire:
    """A raw client over one TCP connection that keeps a record of what arrived and when.

    reads: [(monotonic time, bytes)] for every recv() that returned data; end: None while open,
    "eof" once recv() returned b"", "rst" once it raised ConnectionResetError; end_at: when.
    buf holds received bytes not yet taken by line()/reply()/take()."""

    def __init__(self, port, host=HOST, timeout=IO_TIMEOUT):
        self.timeout = timeout
        self.reads = []
        self.end = None
        self.end_at = None
        self.buf = b""
        self.sent_at = None
        # taken before the connect starts: the server cannot accept (and start a delay) earlier,
        # so a lower bound measured from here holds even when this process runs late
        self.connected_at = time.monotonic()
        self.sock = self._connect(host, port, timeout)

    @staticmethod
    def _connect(host, port, timeout):
        """A non-blocking connect that does not read SO_ERROR: a fault may accept, write and
        reset before this process runs again, and socket.create_connection would then raise
        ConnectionResetError (from SO_ERROR) and drop the bytes that did arrive. recv() returns
        them first and reports the reset after."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            rc = sock.connect_ex((host, port))
            if rc not in (0, errno.EINPROGRESS):
                raise OSError(rc, os.strerror(rc))
            _, w, _ = select.select([], [sock], [], timeout)
            if not w:
                raise AssertionError("connect to %s:%d timed out" % (host, port))
            sock.settimeout(timeout)
            return sock
        except BaseException:
            sock.close()
            raise

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def received(self):
        """Every byte received so far, in order."""
        return b"".join(d for _, d in self.reads)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sent_at = time.monotonic()
        self.sock.sendall(data)

    def fill(self, deadline):
        """One recv() with a deadline; records it. Returns the chunk, or b"" at EOF/RST."""
        if self.end:
            return b""
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("timed out; have %r" % self.buf)
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise AssertionError("timed out; have %r" % self.buf)
        except ConnectionResetError:
            self.end, self.end_at = "rst", time.monotonic()
            return b""
        if not chunk:
            self.end, self.end_at = "eof", time.monotonic()
            return b""
        self.reads.append((time.monotonic(), chunk))
        self.buf += chunk
        return chunk

    def take_until(self, marker, timeout=None):
        """Bytes up to and including MARKER (read as needed); fails on EOF/RST before it."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while marker not in self.buf:
            if not self.fill(deadline) and self.end:
                raise AssertionError("connection ended (%s) before %r; have %r"
                                     % (self.end, marker, self.buf))
        i = self.buf.index(marker) + len(marker)
        data, self.buf = self.buf[:i], self.buf[i:]
        return data

    def take(self, n, timeout=None):
        """Exactly N bytes (read as needed)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            if not self.fill(deadline) and self.end:
                raise AssertionError("connection ended (%s) before %d bytes; have %r"
                                     % (self.end, n, self.buf))
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def line(self, timeout=None):
        """One CRLF line as text, without the CRLF."""
        return self.take_until(b"\r\n", timeout)[:-2].decode("utf-8", "replace")

    def reply(self, timeout=None):
        """One whole SMTP reply: its lines joined with \\n."""
        lines = []
        while True:
            line = self.line(timeout)
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    def cmd(self, text, timeout=None):
        self.send(text + "\r\n")
        return self.reply(timeout)

    def batch(self, timeout=None):
        """The buffered bytes, or else the next recv()'s bytes: what arrived together."""
        if not self.buf:
            self.fill(time.monotonic() + (timeout or self.timeout))
        data, self.buf = self.buf, b""
        return data

    def read_to_end(self, timeout=None):
        """Reads until EOF or RST; returns (bytes not yet taken, "eof" | "rst")."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.end:
            self.fill(deadline)
        data, self.buf = self.buf, b""
        return data, self.end

    def first_byte_at(self):
        """Arrival time of the first recv() that returned data."""
        if not self.reads:
            raise AssertionError("nothing received")
        return self.reads[0][0]

    def first_byte_at_after(self, moment):
        """Arrival time of the first recv() that returned data at or after MOMENT."""
        for t, _ in self.reads:
            if t >= moment:
                return t
        raise AssertionError("nothing received after %.3f" % moment)

    def arrival_of(self, offset):
        """Arrival time of the recv() that brought byte OFFSET (0-based) of the stream."""
        pos = 0
        for t, d in self.reads:
            pos += len(d)
            if pos > offset:
                return t
        raise AssertionError("byte %d not received (have %d)" % (offset, pos))


def run_check(path):
    """mocksrv --check PATH: (exit status, stderr + stdout text)."""
    r = subprocess.run([binary(), "--check", path], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    return r.returncode, (r.stderr + r.stdout).decode("utf-8", "replace")


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
