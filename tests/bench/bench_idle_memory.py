#!/usr/bin/env python3
"""bench_idle_memory.py - resident memory per idle SMTP session.

For each server, started fresh: one warm-up session (greeting, QUIT), then VmRSS of the server
process from /proc/PID/status; then N connections (default 10,000) opened from this process with
non-blocking sockets, each kept open once its 220 greeting is read; after a short settle, VmRSS
again. (RSS delta) / N is the figure; target for mocksrv < 8 KiB per session.

  mocksrv          a scenario with limits { sessions: 20000, idle_timeout: 10m }
  aiosmtpd (peer)  `python3 -m aiosmtpd -n -l 127.0.0.1:PORT` (Debian's python3-aiosmtpd)

smtp-sink is not a row: in a trial it stopped greeting new connections at 512 open sessions.

The measured process is always the server child, never this client. RLIMIT_NOFILE is raised to
65536 here (or to the hard limit, if that is lower and cannot be raised), and the servers
inherit it. Connections are opened with at most 100 awaiting their
greeting at a time, so no listen backlog overflows; the whole fill has a 60 s deadline.

Usage: bench_idle_memory.py [-n SESSIONS]
"""

import argparse
import errno
import os
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

SCENARIO = """\
# bench_idle_memory.py: many idle SMTP sessions at once.
version: 1
hostname: localhost
listeners:
  smtp: { protocol: smtp, port: 0, tls: none }
smtp:
  require_auth: false
limits:
  sessions: 20000
  idle_timeout: 10m
"""

IN_FLIGHT = 100
FILL_TIMEOUT = 60.0
SETTLE = 0.5


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def warm_up(port):
    deadline = time.monotonic() + 5
    s = bl.connect_when_up(port, deadline, pause=0.001)
    if s is None:
        raise RuntimeError(f"nothing accepts on port {port}")
    g = bl.read_greeting(s, deadline)
    if not g.startswith(b"220"):
        raise RuntimeError(f"warm-up greeting {g!r}")
    s.sendall(b"QUIT\r\n")
    bl.read_greeting(s, deadline)
    s.close()


def fill(port, n):
    """Open n sessions and read each greeting; returns (open sockets, failures)."""
    sel = selectors.DefaultSelector()
    done, failed = [], []
    pending = {}  # socket -> bytes read so far
    started = 0
    deadline = time.monotonic() + FILL_TIMEOUT
    while (started < n or pending) and time.monotonic() < deadline:
        while started < n and len(pending) < IN_FLIGHT:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rc = s.connect_ex((bl.HOST, port))
            if rc not in (0, errno.EINPROGRESS):
                failed.append(f"connect: {os.strerror(rc)}")
                s.close()
            else:
                pending[s] = b""
                sel.register(s, selectors.EVENT_READ)
            started += 1
        for key, _ in sel.select(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
            s = key.fileobj
            try:
                chunk = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                chunk, err = b"", str(e)
            else:
                err = "closed before greeting"
            if not chunk:
                failed.append(err)
                sel.unregister(s)
                del pending[s]
                s.close()
                continue
            pending[s] += chunk
            if b"\n" in pending[s]:
                sel.unregister(s)
                line = pending.pop(s)
                if line.startswith(b"220"):
                    done.append(s)
                else:
                    failed.append(line.split(b"\r")[0].decode(errors="replace"))
                    s.close()
    for s in list(pending):
        failed.append("no greeting before the deadline")
        s.close()
    sel.close()
    return done, failed


def measure(name, start, n):
    server = start()
    socks = []
    try:
        warm_up(server.port)
        time.sleep(SETTLE)
        before = bl.rss_kib(server.pid)
        t0 = time.monotonic()
        socks, failed = fill(server.port, n)
        fill_s = time.monotonic() - t0
        time.sleep(SETTLE)
        if server.proc.poll() is not None:
            raise RuntimeError(f"{name} exited during the fill")
        after = bl.rss_kib(server.pid)
        breakdown = smaps_breakdown(server.pid)
    finally:
        t1 = time.monotonic()
        status = server.stop(timeout=30)
        stop_s = time.monotonic() - t1
        for s in socks:
            s.close()
    return {"name": name, "before": before, "after": after, "open": len(socks),
            "failed": failed, "breakdown": breakdown, "fill_s": fill_s, "stop_s": stop_s, "status": status}


def smaps_breakdown(pid):
    """Resident KiB by kind of mapping: coroutine-stack-sized anonymous mappings (64 KiB, the
    mocksrv default), [heap], other anonymous, file-backed."""
    kinds = {"64 KiB anon (stacks)": 0, "[heap]": 0, "other anon": 0, "file": 0}
    kind = None
    with open(f"/proc/{pid}/smaps", encoding="utf-8", errors="replace") as f:
        for line in f:
            head = line.split()
            if not head:
                continue
            if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                path = head[5] if len(head) > 5 else ""
                if path == "[heap]":
                    kind = "[heap]"
                elif path.startswith("/"):
                    kind = "file"
                elif hi - lo == 64 * 1024:
                    kind = "64 KiB anon (stacks)"
                else:
                    kind = "other anon"
            elif head[0] == "Rss:" and kind:
                kinds[kind] += int(head[1])
    return kinds


class Aiosmtpd:
    def __init__(self):
        self.port = bl.free_port()
        self.proc = subprocess.Popen(
            [bl.DEBIAN_PYTHON, "-m", "aiosmtpd", "-n", "-l", f"{bl.HOST}:{self.port}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.proc.pid
        s = bl.connect_when_up(self.port, time.monotonic() + 10, pause=0.01)
        if s is None:
            bl.stop(self.proc)
            raise RuntimeError("aiosmtpd did not accept within 10 s")
        s.close()

    def stop(self, timeout=5.0):
        return bl.stop(self.proc, timeout)


def have_aiosmtpd():
    if not bl.have(bl.DEBIAN_PYTHON):
        return False
    r = subprocess.run([bl.DEBIAN_PYTHON, "-c", "import aiosmtpd"], capture_output=True)
    return r.returncode == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=10000, help="idle sessions (default 10000)")
    args = ap.parse_args()
    n = max(1, min(args.n, 19000))
    nofile = raise_nofile(65536)
    # The client and the server are separate processes: each needs n descriptors and a few.
    if nofile < n + 100:
        sys.exit(f"bench_idle_memory: RLIMIT_NOFILE {nofile} too low for {n} sessions")

    notes = []
    with tempfile.TemporaryDirectory(prefix="mocksrv-bench-") as tmp:
        scenario = os.path.join(tmp, "idle.yaml")
        with open(scenario, "w", encoding="utf-8") as f:
            f.write(SCENARIO)
        servers = [("mocksrv", lambda: bl.Mocksrv(scenario=scenario))]
        if have_aiosmtpd():
            servers.append(("aiosmtpd", Aiosmtpd))
        else:
            notes.append("aiosmtpd not run: `python3-aiosmtpd` is not installed for "
                         f"{bl.DEBIAN_PYTHON}.")
        rows = [measure(name, start, n) for name, start in servers]

    out = ["## Resident memory per idle SMTP session", "",
           f"{bl.now_utc()}, {bl.machine()}; `{os.path.basename(sys.argv[0])} -n {n}` "
           f"(RLIMIT_NOFILE {nofile})", "",
           "| server | sessions open | RSS before KiB | RSS after KiB | KiB per session | "
           "fill s | SIGTERM to exit s |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        per = (r["after"] - r["before"]) / max(1, r["open"])
        r["per"] = per
        out.append(f"| {r['name']} | {r['open']} | {r['before']} | {r['after']} | {per:.2f} | "
                   f"{r['fill_s']:.2f} | {r['stop_s']:.2f} (status {r['status']}) |")
    b = rows[0]["breakdown"]
    notes.append("mocksrv resident KiB by mapping after the fill: "
                 + ", ".join(f"{k} {v}" for k, v in b.items()))
    for r in rows:
        if r["failed"]:
            kinds = sorted(set(r["failed"]))[:3]
            notes.append(f"{r['name']}: {len(r['failed'])} sessions failed ({'; '.join(kinds)})")
    m = rows[0]
    notes.append(f"Target: mocksrv < 8 KiB per session: "
                 f"{'met' if m['per'] < 8 and m['open'] == n else 'NOT met'} ({m['per']:.2f} KiB, "
                 f"{m['open']}/{n} sessions open).")
    out.append("")
    out += [f"- {x}" for x in notes]
    bl.append_results("\n".join(out))


if __name__ == "__main__":
    main()
