"""mocksrv_harness.py - what the interop tests share (stdlib only): spawn a mocksrv, one raw
client, one base class.

What it does: Mocksrv runs `mocksrv --ephemeral [SCENARIO] --spool DIR --events FILE [ARGS]` in a
private temporary directory, waits for the JSON ready line with a deadline, and gives the tests
the ports, the spooled messages (NNNNNN.eml bytes and NNNNNN.json envelopes) and the events (JSON
lines, each one checked to parse). It stops the server with SIGTERM to the PID it started and
waits with a timeout; SIGKILL to that same PID is the last resort and counts as a failure.
MocksrvCase (a unittest.TestCase) spawns servers for a test or a class and, after it, stops each
one and asserts its exit status (0 unless the test says another), and removes temporary
directories. Wire is the one raw client (SMTP, LMTP, POP3, TLS): it reads whole replies with a
deadline, never assumes that one recv() is one reply, and records when each byte arrived and how
the stream ended (EOF or RST) for the fault tests.

What it deliberately is not: a client library. Tests use real clients (smtplib, poplib, curl,
swaks, fetchmail) or Wire.

Invariants: every wait is bounded in time; nothing sleeps to synchronise (waits poll a condition
with a deadline); only 127.0.0.1 (or ::1) is used; only the process this module started is
signalled.

Import: a test file puts this folder (tests/support, beside its own) first on sys.path, so it
runs as `python3 tests/interop/test_X.py` from any directory.

Environment: MOCKSRV_BIN (the binary; default: ../../build/mocksrv from this file),
MOCKSRV_FIXTURES (default: ../../fixtures), MOCKSRV_KEEP=1 keeps the temporary directories,
MOCKSRV_CERTS (the fixed test certificates the build makes with certs/gen.sh; default: certs/
next to the binary, else certs/gen.sh is run once into a temporary directory).
"""
import atexit
import errno
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
IO_TIMEOUT = 5.0


def _die_with_parent():
    """In the child before exec: SIGTERM when the test process dies (Linux PR_SET_PDEATHSIG),
    so a crashed or killed test run (ctest timeout, broken pipe) leaves no server behind."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def binary():
    return os.environ.get("MOCKSRV_BIN") or os.path.join(ROOT, "build", "mocksrv")


def fixtures():
    return os.environ.get("MOCKSRV_FIXTURES") or os.path.join(ROOT, "fixtures")


def scenario(name):
    """Path of fixtures/scenarios/NAME."""
    return os.path.join(fixtures(), "scenarios", name)


def mail(name):
    """Bytes of fixtures/mail/NAME."""
    with open(os.path.join(fixtures(), "mail", name), "rb") as f:
        return f.read()


_certs_tmp = None


def certs():
    """The directory of the fixed test certificates (ca.pem, server.pem/.key, client.pem/.key ...,
    see certs/gen.sh): MOCKSRV_CERTS when set, else certs/ beside the binary, else made once per
    test process by running certs/gen.sh into a temporary directory (removed at exit)."""
    global _certs_tmp
    env = os.environ.get("MOCKSRV_CERTS")
    if env:
        if not os.path.exists(os.path.join(env, "ca.pem")):
            raise MocksrvError("MOCKSRV_CERTS=%s has no ca.pem" % env)
        return env
    beside = os.path.join(os.path.dirname(os.path.abspath(binary())), "certs")
    if os.path.exists(os.path.join(beside, "ca.pem")):
        return beside
    if _certs_tmp is None:
        tmp = tempfile.mkdtemp(prefix="mocksrv-certs-")
        atexit.register(shutil.rmtree, tmp, True)
        r = subprocess.run(["sh", os.path.join(ROOT, "certs", "gen.sh"), tmp],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        if r.returncode != 0:
            raise MocksrvError("certs/gen.sh failed: %s" % r.stderr.decode("utf-8", "replace"))
        _certs_tmp = tmp
    return _certs_tmp


def cert(name):
    """Path of NAME (e.g. "server.pem", "client.key") in certs()."""
    return os.path.join(certs(), name)


def client_context(cafile, certfile=None, keyfile=None, hostname_check=True):
    """A verifying TLS client context (chain against cafile, host name unless told not to),
    optionally presenting a client certificate."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = hostname_check
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


def crlf(data):
    """LF-only (or mixed) bytes to CRLF line ends."""
    return re.sub(rb"\r?\n", b"\r\n", data)


def wait_for(predicate, timeout=IO_TIMEOUT, interval=0.01, what="condition"):
    """Polls predicate() until it returns a true value, which is returned; fails at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


class MocksrvError(AssertionError):
    pass


class Mocksrv:
    """One mocksrv process. Use as a context manager:

        with Mocksrv(scenario("interop.yaml")) as srv:
            s = smtplib.SMTP(srv.host, srv.port("smtp"))
            ...
        # srv.returncode holds the exit status after the with block.
    """

    def __init__(self, scenario_path=None, args=(), ephemeral=True, spool=True, events=True,
                 ready_file=None, cmd=None, verbose=False, env=None,
                 ready_timeout=READY_TIMEOUT):
        self.scenario_path = scenario_path
        self.args = list(args)
        self.ephemeral = ephemeral
        self.want_spool = spool
        self.want_events = events
        self.ready_file = ready_file
        self.cmd = cmd
        self.verbose = verbose
        self.env = env
        self.ready_timeout = ready_timeout
        self.proc = None
        self.tmpdir = None
        self.ready = None
        self.returncode = None
        self.killed = False
        self.stdout_rest = b""  # stdout bytes read after the ready line
        self._cache = None  # (stderr text, events bytes) kept by cleanup()

    # ---- lifecycle ----

    def argv(self):
        argv = [binary()]
        if self.ephemeral:
            argv.append("--ephemeral")
        if self.scenario_path:
            argv.append(self.scenario_path)
        if self.want_spool:
            argv += ["--spool", self.spool_dir]
        if self.want_events:
            argv += ["--events", self.events_path]
        if self.ready_file:
            argv += ["--ready-file", self.ready_file]
        if self.verbose:
            argv.append("-v")
        argv += self.args
        if self.cmd:
            argv += ["--"] + list(self.cmd)
        return argv

    def start(self):
        self.tmpdir = tempfile.mkdtemp(prefix="mocksrv-it-")
        self.spool_dir = os.path.join(self.tmpdir, "spool")
        self.events_path = os.path.join(self.tmpdir, "events.jsonl")
        self.stderr_path = os.path.join(self.tmpdir, "stderr.txt")
        if self.ready_file is True:
            self.ready_file = os.path.join(self.tmpdir, "ready.json")
        env = dict(os.environ)
        env.setdefault("NO_COLOR", "1")
        if self.env:
            env.update(self.env)
        self._stderr = open(self.stderr_path, "wb")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._stderr, env=env,
                                     preexec_fn=_die_with_parent)
        try:
            if self.ready_file:
                self.ready = self._wait_ready_file()
            else:
                line = self._read_ready_line()
                self.ready = json.loads(line.decode("utf-8"))
        except Exception:
            self.stop()
            self.cleanup()
            raise
        if self.ready.get("event") != "ready":
            raise MocksrvError("ready line without event=ready: %r" % self.ready)
        return self

    def _fail_start(self, why):
        code = self.proc.poll()
        raise MocksrvError("mocksrv did not get ready (%s; exit status %s); argv %s; stderr:\n%s"
                           % (why, code, self.argv(), self.stderr_text()))

    def _read_ready_line(self):
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + self.ready_timeout
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail_start("no ready line within %.0fs" % self.ready_timeout)
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                self._fail_start("stdout closed before the ready line")
            buf += chunk
        line, _, rest = buf.partition(b"\n")
        self.stdout_rest = rest
        return line

    def _wait_ready_file(self):
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if os.path.exists(self.ready_file):
                with open(self.ready_file, "rb") as f:
                    data = f.read()
                if data.endswith(b"\n"):
                    return json.loads(data.decode("utf-8"))
            if self.proc.poll() is not None:
                self._fail_start("exited before writing the ready file")
            if time.monotonic() >= deadline:
                self._fail_start("no ready file within %.0fs" % self.ready_timeout)
            time.sleep(0.01)

    def signal(self, sig):
        """Sends sig to the process we started (never by name)."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout=STOP_TIMEOUT):
        """Waits for the process to exit by itself; returns its status (fails at the deadline)."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            raise MocksrvError("mocksrv did not exit within %.1fs; stderr:\n%s"
                               % (timeout, self.stderr_text()))
        self._drain_stdout()
        return self.returncode

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then wait; returns the exit status. SIGKILL only past the timeout."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.returncode = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill()
        else:
            self.returncode = self.proc.returncode
        self._drain_stdout()
        return self.returncode

    def _kill(self):
        self.killed = True
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.returncode = self.proc.wait(timeout=STOP_TIMEOUT)

    def _drain_stdout(self):
        if self.proc.stdout and not self.proc.stdout.closed:
            fd = self.proc.stdout.fileno()
            while True:
                r, _, _ = select.select([fd], [], [], 0)
                if not r:
                    break
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                self.stdout_rest += chunk
            self.proc.stdout.close()

    def cleanup(self):
        """Removes the temporary directory; stderr and the events stay readable (cached)."""
        if not self._stderr.closed:
            self._stderr.close()
        if self.tmpdir and self._cache is None:
            self._cache = (self.stderr_text(), self._events_bytes())
        if self.tmpdir and not os.environ.get("MOCKSRV_KEEP"):
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            self.cleanup()
        if self.killed and exc[0] is None:
            raise MocksrvError("mocksrv ignored SIGTERM and was killed; stderr:\n%s"
                               % self.stderr_text())
        return False

    # ---- what the ready line says ----

    host = "127.0.0.1"

    def listener(self, name="smtp"):
        for l in self.ready["listeners"]:
            if l["name"] == name:
                return l
        raise MocksrvError("no listener %r in the ready line: %r" % (name, self.ready))

    def port(self, name="smtp"):
        return self.listener(name)["port"]

    def addr(self, name="smtp"):
        """(host, port) of a listener as the ready line gives it (e.g. "::1" for an IPv6 one)."""
        l = self.listener(name)
        return l["host"], l["port"]

    @property
    def ca_file(self):
        """The ready line's ca_file: the generated CA, or None."""
        return self.ready.get("ca_file")

    # ---- outputs ----

    def stderr_text(self):
        if self._cache is not None:
            return self._cache[0]
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def spool_ids(self):
        """Ids of the complete spooled messages (both files present), ascending."""
        try:
            names = os.listdir(self.spool_dir)
        except FileNotFoundError:
            return []
        ids = sorted(int(n[:-5]) for n in names if re.fullmatch(r"\d{6}\.json", n))
        return [i for i in ids if "%06d.eml" % i in names]

    def message(self, msg_id):
        """(eml bytes, envelope dict) of spooled message msg_id (1-based)."""
        base = os.path.join(self.spool_dir, "%06d" % msg_id)
        with open(base + ".eml", "rb") as f:
            data = f.read()
        with open(base + ".json", "rb") as f:
            envelope = json.loads(f.read().decode("utf-8"))
        return data, envelope

    def wait_messages(self, count, timeout=IO_TIMEOUT):
        wait_for(lambda: len(self.spool_ids()) >= count, timeout,
                 what="%d spooled message(s)" % count)
        return [self.message(i) for i in self.spool_ids()]

    def _events_bytes(self):
        if self._cache is not None:
            return self._cache[1]
        try:
            with open(self.events_path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def events(self):
        """Every complete line of the events file, each checked to be one JSON object."""
        return parse_event_lines(self._events_bytes())

    def wait_event(self, predicate, timeout=IO_TIMEOUT, what="an event"):
        def find():
            for ev in self.events():
                if predicate(ev):
                    return ev
            return None
        return wait_for(find, timeout, what=what)


def parse_event_lines(data):
    """Parses JSON lines; a trailing line without LF (being written) is left out. Fails on any
    line that is not valid UTF-8 JSON object text."""
    lines = data.split(b"\n")
    out = []
    for raw in lines[:-1]:
        try:
            ev = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise AssertionError("event line is not valid JSON (%s): %r" % (e, raw))
        if not isinstance(ev, dict) or "event" not in ev:
            raise AssertionError("event line is not an object with \"event\": %r" % raw)
        out.append(ev)
    return out


HOST = "127.0.0.1"


class ConnectionEnded(AssertionError):
    """The server closed (EOF) or reset the connection before what a read waited for."""


class Wire:
    """The one raw client of the interop tests: SMTP, LMTP and POP3 over one TCP connection,
    optionally TLS (implicit, or upgraded after STARTTLS/STLS with start_tls()). Every read has a
    deadline and never assumes that one recv() is one reply.

    It keeps a record of what arrived and when, for the fault tests: reads is [(monotonic time,
    bytes)] for every recv() that returned data; end is None while open, "eof" once recv()
    returned b"", "rst" once it raised ConnectionResetError; end_at: when. buf holds received
    bytes not yet taken by line()/reply()/take().

    pop3=True: reply() is one status line ("+OK ...", "-ERR ..."); else a whole SMTP reply.
    read_greeting=True: the greeting is read at once into .greeting. smtp_client() and
    pop3_client() make the two usual kinds."""

    def __init__(self, port, host=HOST, timeout=IO_TIMEOUT, read_greeting=False, pop3=False,
                 tls=None, server_hostname=None):
        """tls: an ssl.SSLContext for implicit TLS (the handshake happens before the greeting)."""
        self.timeout = timeout
        self.pop3 = pop3
        self.reads = []
        self.end = None
        self.end_at = None
        self.buf = b""
        self.sent_at = None
        # taken before the connect starts: the server cannot accept (and start a delay) earlier,
        # so a lower bound measured from here holds even when this process runs late
        self.connected_at = time.monotonic()
        self.sock = self._connect(host, port, timeout)
        if tls is not None:
            self.start_tls(tls, server_hostname or host)
        self.greeting = self.reply() if read_greeting else None

    @staticmethod
    def _connect(host, port, timeout):
        """A non-blocking connect that does not read SO_ERROR (reading it clears it): a fault may
        accept, write and reset before this process runs again, and socket.create_connection
        would then raise ConnectionResetError (from SO_ERROR) and drop the bytes that did
        arrive. recv() returns them first and reports the reset after (or the refusal)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
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

    def start_tls(self, context, server_hostname=None, **kw):
        """TLS handshake on this connection (after STARTTLS/STLS got its go-ahead), with a
        deadline. Fails if the server sent plaintext beyond the reply already read: nothing may
        follow the go-ahead before the handshake. Extra keywords go to wrap_socket."""
        if self.buf:
            raise AssertionError("plaintext after the go-ahead, before the handshake: %r"
                                 % self.buf)
        self.sock.settimeout(self.timeout)
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname, **kw)
        return self.sock

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
        """One recv() with a deadline; records it. Returns the chunk, or b"" at EOF/RST (and
        when TLS wants more input before it has application data)."""
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
        except ssl.SSLWantReadError:
            return b""
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
                raise ConnectionEnded("connection ended (%s) before %r; have %r"
                                      % (self.end, marker, self.buf))
        i = self.buf.index(marker) + len(marker)
        data, self.buf = self.buf[:i], self.buf[i:]
        return data

    def take(self, n, timeout=None):
        """Exactly N bytes (read as needed)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            if not self.fill(deadline) and self.end:
                raise ConnectionEnded("connection ended (%s) before %d bytes; have %r"
                                      % (self.end, n, self.buf))
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def line(self, timeout=None):
        """One CRLF line as text, without the CRLF."""
        return self.take_until(b"\r\n", timeout)[:-2].decode("utf-8", "replace")

    def reply(self, timeout=None):
        """POP3: the status line. SMTP/LMTP: one whole reply, its lines joined with \\n
        (e.g. '250-a\\n250 b')."""
        if self.pop3:
            return self.line(timeout)
        lines = []
        while True:
            line = self.line(timeout)
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    def cmd(self, text, timeout=None):
        """Sends one command line (CRLF added) and returns its reply."""
        self.send(text + "\r\n")
        return self.reply(timeout)

    def multiline(self, timeout=None):
        """POP3: the bytes after a "+OK" status line up to and including the CRLF "." CRLF end
        marker, exactly as sent (dots still stuffed)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            end = (b"\r\n" + self.buf).find(b"\r\n.\r\n")
            if end >= 0:
                data, self.buf = self.buf[:end + 3], self.buf[end + 3:]
                return data
            if not self.fill(deadline) and self.end:
                raise ConnectionEnded("connection ended (%s) before the end marker; have %r"
                                      % (self.end, self.buf))

    def cmd_multi(self, text, timeout=None):
        """POP3: sends one command line; returns (status line, multi-line bytes or None on
        -ERR)."""
        status = self.cmd(text, timeout)
        if not status.startswith("+OK"):
            return status, None
        return status, self.multiline(timeout)

    def batch(self, timeout=None):
        """The buffered bytes, or else the next recv()'s bytes: what arrived together (b"" at
        EOF/RST)."""
        if not self.buf:
            self.fill(time.monotonic() + (timeout or self.timeout))
        data, self.buf = self.buf, b""
        return data

    def recv_batch(self, timeout=None):
        """As batch(), but fails when the connection ends before any bytes."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.buf:
            if not self.fill(deadline) and self.end:
                raise ConnectionEnded("connection ended (%s) before any bytes" % self.end)
        data, self.buf = self.buf, b""
        return data

    def read_to_end(self, timeout=None):
        """Reads until EOF or RST; returns (bytes not yet taken, "eof" | "rst")."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.end:
            if time.monotonic() >= deadline:
                raise AssertionError("the server did not close the connection; got %r"
                                     % self.buf)
            self.fill(deadline)
        data, self.buf = self.buf, b""
        return data, self.end

    def wait_closed(self, timeout=None):
        """Reads until EOF or RST; returns what came before it. Fails if the server keeps the
        connection open."""
        return self.read_to_end(timeout)[0]

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


def smtp_client(port, host=HOST, read_greeting=True, **kw):
    """A Wire for SMTP/LMTP that has read the greeting (unless told not to)."""
    return Wire(port, host, read_greeting=read_greeting, **kw)


def pop3_client(port, host=HOST, read_greeting=True, **kw):
    """A Wire for POP3 (replies are status lines) that has read the greeting."""
    return Wire(port, host, read_greeting=read_greeting, pop3=True, **kw)


# ---- what the fault tests share ----

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


def run_check(path):
    """mocksrv --check PATH: (exit status, stderr + stdout text)."""
    r = subprocess.run([binary(), "--check", path], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    return r.returncode, (r.stderr + r.stdout).decode("utf-8", "replace")


class BioClient:
    """A TLS client over memory BIOs: its ClientHello is in .hello once created; feed() gives it
    what the server sent and returns what it has to send back."""

    def __init__(self, cafile, maximum_version=None):
        ctx = client_context(cafile)
        if maximum_version:
            ctx.maximum_version = maximum_version
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname="mock.test")
        self.done = self.step()
        self.hello = self.outgoing.read()

    def step(self):
        """Advances the handshake: True once complete, False while it wants more input."""
        try:
            self.obj.do_handshake()
            return True
        except ssl.SSLWantReadError:
            return False

    def feed(self, data):
        self.incoming.write(data)
        self.done = self.step()
        return self.outgoing.read()


# ---- the base class of the interop tests ----

def _finish(srv):
    """Stops SRV (SIGTERM to its PID, SIGKILL past the timeout), removes its temporary
    directory and fails unless it exited by itself with srv.want_status."""
    try:
        rc = srv.stop()
    finally:
        srv.cleanup()
    if srv.killed:
        raise MocksrvError("mocksrv ignored SIGTERM and was killed; stderr:\n%s"
                           % srv.stderr_text())
    if rc != srv.want_status:
        raise MocksrvError("mocksrv exit status %r after SIGTERM (want %r); stderr:\n%s"
                           % (rc, srv.want_status, srv.stderr_text()))


def _write(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def _tmpdir(register):
    path = tempfile.mkdtemp(prefix="mocksrv-it-")
    register(shutil.rmtree, path, True)
    return path


class MocksrvCase(unittest.TestCase):
    """Base class of the interop tests. spawn() starts a mocksrv (waiting for its ready line)
    that is stopped after the test by its PID, with its exit status asserted: 0, or the status
    given to spawn() or set later in srv.want_status (a test that stops the server itself may
    check the status first; the cleanup checks it again). spawn_shared() does the same for a
    whole class (call it in setUpClass), or set SERVE (and SERVE_PORT) and the base class's
    setUpClass starts it into cls.srv (and cls.port). tmpdir() is a temporary
    directory removed after the test; wire()/client()/pop3() open a Wire closed after the test.
    new_messages() gives the messages self.srv spooled since setUp."""

    SERVE = None  # a scenario path: setUpClass starts one server for the class, in cls.srv
    SERVE_PORT = None  # the listener whose port setUpClass puts in cls.port

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls.SERVE is not None:
            cls.srv = cls.spawn_shared(cls.SERVE)
            if cls.SERVE_PORT is not None:
                cls.port = cls.srv.port(cls.SERVE_PORT)

    def spawn(self, scenario_path=None, status=0, **kw):
        return self.adopt(Mocksrv(scenario_path, **kw).start(), status)

    def adopt(self, srv, status=0):
        """Stops and checks SRV (a started Mocksrv) after the test, as spawn() does."""
        srv.want_status = status
        self.addCleanup(_finish, srv)
        return srv

    @classmethod
    def spawn_shared(cls, scenario_path=None, status=0, **kw):
        srv = Mocksrv(scenario_path, **kw).start()
        srv.want_status = status
        cls.addClassCleanup(_finish, srv)
        return srv

    def setUp(self):
        super().setUp()
        srv = getattr(self, "srv", None)
        self.before = set(srv.spool_ids()) if srv is not None else set()

    def new_messages(self, count=1):
        """The messages self.srv spooled since setUp; fails unless there are COUNT. (After a
        250 to DATA or BDAT LAST they are on disk.)"""
        ids = [i for i in self.srv.spool_ids() if i not in self.before]
        self.assertEqual(len(ids), count, "messages spooled by this test: %r" % ids)
        return [self.srv.message(i) for i in ids]

    def tmpdir(self):
        return _tmpdir(self.addCleanup)

    def scenario_text(self, text, name="s.yaml"):
        """Writes TEXT to NAME in a new tmpdir(); returns the path."""
        return _write(self.tmpdir(), name, text)

    @classmethod
    def shared_scenario_text(cls, text, name="s.yaml"):
        """scenario_text() for a whole class (call it in setUpClass)."""
        return _write(cls.shared_tmpdir(), name, text)

    @classmethod
    def shared_tmpdir(cls):
        return _tmpdir(cls.addClassCleanup)

    def wire(self, port, **kw):
        """A Wire (no greeting read) closed after the test."""
        w = Wire(port, **kw)
        self.addCleanup(w.close)
        return w

    def client(self, port, **kw):
        """An SMTP/LMTP Wire that has read the greeting, closed after the test."""
        c = smtp_client(port, **kw)
        self.addCleanup(c.close)
        return c

    def pop3(self, port, **kw):
        """A POP3 Wire that has read the greeting, closed after the test."""
        c = pop3_client(port, **kw)
        self.addCleanup(c.close)
        return c


def pop3_alice_fixed():
    """The stored bytes of alice's first four messages in fixtures/scenarios/pop3-interop.yaml,
    as the scenario loader makes them."""
    return [
        crlf(mail("pop3-plain.eml")),  # LF-only file: converted to CRLF
        mail("pop3-exact.eml"),  # has CR: byte for byte (no line end at the end)
        b"From: Carol <carol@mock.test>\r\nTo: alice@mock.test\r\n"
        b"Subject: raw from the scenario\r\n\r\nfirst body line\r\nsecond body line\r\n"
        b"third body line\r\n",  # raw "|" block: LF -> CRLF, one line end at the end
        b"Subject: headers only\r\n\r\n",
    ]


def code(reply):
    """The 3-digit code of the last line of a reply."""
    return int(reply.split("\n")[-1][:3])


def pop3_stuffed(data):
    """What a POP3 server sends for message bytes (RFC 1939 3): a "." added before every line
    that starts with one (a line starts after CRLF only), a CRLF added when the message does not
    end with one, then the end marker."""
    out = re.sub(rb"(?:(?<=\r\n)|^)\.", b"..", data) if data else data
    if data and not data.endswith(b"\r\n"):
        out += b"\r\n"
    return out + b".\r\n"


def pop3_wire(data):
    """The message bytes a POP3 client gets back after un-stuffing: the message, with a CRLF
    added when it does not end with one (the end marker needs it)."""
    return data if data.endswith(b"\r\n") or not data else data + b"\r\n"
