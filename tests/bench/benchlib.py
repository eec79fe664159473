"""benchlib.py - what the mocksrv benchmarks share: finding the binaries, starting and stopping
servers, polling a port, statistics and the results file.

Not a test helper: nothing here asserts on speed. Every wait has a deadline, every loop a bound;
only 127.0.0.1 is used; the only processes signalled are the ones started here, by PID.

Environment:
  MOCKSRV_BIN     the mocksrv binary (default: build-bench/mocksrv in the checkout)
  BENCH_RESULTS   the Markdown file each benchmark appends its section to
                  (default: tests/bench/results/latest.md)
"""

import datetime
import json
import math
import os
import platform
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HOST = "127.0.0.1"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
# Debian's interpreter: python3-aiosmtpd is installed for it, not for any other python3 on PATH.
DEBIAN_PYTHON = "/usr/bin/python3"


def mocksrv_bin():
    path = os.environ.get("MOCKSRV_BIN", os.path.join(ROOT, "build-bench", "mocksrv"))
    if not os.access(path, os.X_OK):
        sys.exit(f"bench: no mocksrv binary at {path} (set MOCKSRV_BIN, or run ci/bench.sh)")
    return path


def results_path():
    return os.environ.get("BENCH_RESULTS", os.path.join(HERE, "results", "latest.md"))


def append_results(text):
    """Append one benchmark's Markdown section to the results file (and echo it)."""
    path = results_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text.rstrip("\n") + "\n\n")
    print(text)


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            load = " ".join(f.read().split()[:3])
    except OSError:
        load = "?"
    return f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, load average {load}"


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def quantile(values, q):
    """Nearest-rank quantile (q in 0..1) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))
    return s[k]


def summary_ms(samples_ns):
    ms = [v / 1e6 for v in samples_ns]
    return {"n": len(ms), "median": statistics.median(ms), "p90": quantile(ms, 0.90),
            "min": min(ms), "max": max(ms)}


def free_port():
    """A port the kernel just handed out on 127.0.0.1 (for peers that cannot report their own).
    Racy by nature; callers retry if the peer then fails to bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def read_line(fd, deadline):
    """Read from a pipe until a newline or EOF, unbuffered; None on timeout or EOF first."""
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        buf += chunk
    return buf.split(b"\n", 1)[0]


def stop(proc, timeout=5.0):
    """SIGTERM the process we started (by PID), wait; SIGKILL only if it ignores the deadline.
    Returns the exit status."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=timeout)


class Mocksrv:
    """A mocksrv child started with --ephemeral; .port is the smtp listener's port."""

    def __init__(self, args=(), scenario=None, timeout=10.0):
        cmd = [mocksrv_bin(), "--ephemeral"] + list(args)
        if scenario:
            cmd.append(scenario)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        line = read_line(self.proc.stdout.fileno(), time.monotonic() + timeout)
        if line is None:
            stop(self.proc)
            raise RuntimeError(f"mocksrv gave no ready line: {' '.join(cmd)}")
        self.ready = json.loads(line)
        self.port = next(l["port"] for l in self.ready["listeners"] if l["name"] == "smtp")
        self.pid = self.proc.pid

    def stop(self, timeout=5.0):
        status = stop(self.proc, timeout)
        self.proc.stdout.close()
        return status


def connect_when_up(port, deadline, pause=0.0001):
    """Poll-connect to 127.0.0.1:port until it accepts; the connected socket, or None at the
    deadline. Refused connects on loopback fail at once, so the pause bounds the spin."""
    while time.monotonic() < deadline:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if s.connect_ex((HOST, port)) == 0:
            return s
        s.close()
        time.sleep(pause)
    return None


def read_greeting(sock, deadline):
    """Read until the end of the server's first reply line; returns the bytes (b"" on EOF)."""
    buf = b""
    while b"\n" not in buf and time.monotonic() < deadline:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
    return buf


def smtp_sink_cmd(port, backlog=100, extra=()):
    """smtp-sink refuses to run as root without -u; 'nobody' is its usual unprivileged user."""
    cmd = [SMTP_SINK]
    if os.geteuid() == 0:
        cmd += ["-u", "nobody"]
    return cmd + list(extra) + [f"{HOST}:{port}", str(backlog)]


class SmtpSink:
    """Postfix smtp-sink on a free port; waits until it greets."""

    def __init__(self, extra=(), backlog=100, timeout=5.0):
        last = None
        for _ in range(5):  # bounded retries: the free port can be taken before smtp-sink binds
            self.port = free_port()
            self.proc = subprocess.Popen(smtp_sink_cmd(self.port, backlog, extra),
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE)
            deadline = time.monotonic() + timeout
            s = connect_when_up(self.port, deadline, pause=0.001)
            if s is not None:
                greeting = read_greeting(s, deadline)
                s.close()
                if greeting.startswith(b"220"):
                    self.pid = self.proc.pid
                    return
            stop(self.proc)
            last = self.proc.stderr.read().decode(errors="replace")
            self.proc.stderr.close()
        raise RuntimeError(f"smtp-sink did not come up: {last}")

    def stop(self, timeout=5.0):
        status = stop(self.proc, timeout)
        self.proc.stderr.close()
        return status


def rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def have(path):
    return os.access(path, os.X_OK)


def which(name):
    return shutil.which(name)


def tree_cpu(pid):
    """CPU seconds of pid and its live descendants, each with its reaped children (utime,
    stime, cutime, cstime): the delta over a run counts the processes that served it, including
    a peer's per-session processes that exited and were reaped (Dovecot)."""
    stats = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d, encoding="ascii", errors="replace") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(d)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    total, todo, seen = 0, [pid], set()
    while todo and len(seen) < 10000:
        p = todo.pop()
        if p in seen or p not in stats:
            continue
        seen.add(p)
        total += stats[p][1]
        todo += [c for c, (ppid, _) in stats.items() if ppid == p]
    return total / os.sysconf("SC_CLK_TCK")
