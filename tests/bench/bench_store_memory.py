#!/usr/bin/env python3
"""bench_store_memory.py - what a stored message costs: resident memory per message, and the
time to load a scenario of generated messages, for two builds of mocksrv in the same run.

Rows (each measured for the "before" and the "after" binary, interleaved round by round):

  SMTP RSS/msg     a fresh `mocksrv --ephemeral` on a scenario with one plain SMTP listener
                   (no spool): VmRSS from /proc/PID/status once it is ready, then after N
                   messages of exactly SIZE bytes (default 20,000 x 4096) were sent over one
                   connection by a raw-socket client (MAIL, RCPT, DATA, the body, each 250
                   checked), and message_count read back; (after - before) / N. Everything a
                   message keeps counts: its bytes, the envelope, the store entry.
                   Target: at most 1.3x SIZE.
  scenario RSS/msg `mocksrv --ephemeral` on a scenario with `generate: { count: M, size: SIZE }`
                   (default 10,000 x 4096): VmRSS at the ready line minus that of the same
                   scenario with no messages, / M.
  scenario ready   fork/exec to the ready line for that scenario (median of R rounds, default 7),
                   and the same for the empty scenario; their difference is the load itself.
                   Target: the load at least 2x faster after than before.

Usage: bench_store_memory.py [--before OLD_MOCKSRV] [--after NEW_MOCKSRV] [-n N] [-m M] [-r R]
(--after defaults to MOCKSRV_BIN / build-bench/mocksrv; without --before only "after" is run). Only 127.0.0.1; every wait has a
deadline; each mocksrv started here is stopped by PID and must exit 0.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

TIMEOUT = 60.0

SMTP_SCENARIO = """\
version: 1
hostname: bench.test
listeners:
  smtp: { protocol: smtp, port: 0 }
smtp:
  max_size: 64MiB
  deliver: true
users:
  alice: { password: secret, addresses: [alice@bench.test] }
"""

GEN_SCENARIO = """\
version: 1
hostname: bench.test
seed: 42
listeners:
  smtp: { protocol: smtp, port: 0 }
users:
  alice:
    password: secret
    mailboxes:
      INBOX:
        messages:
%s"""


def start(binary, scenario):
    t0 = time.perf_counter_ns()
    proc = subprocess.Popen([binary, "--ephemeral", scenario], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    line = bl.read_line(proc.stdout.fileno(), time.monotonic() + TIMEOUT)
    t1 = time.perf_counter_ns()
    if line is None:
        bl.stop(proc)
        raise RuntimeError(f"{binary}: no ready line for {scenario}")
    ready = json.loads(line)
    port = next(l["port"] for l in ready["listeners"] if l["name"] == "smtp")
    return proc, port, t1 - t0


def finish(proc, binary):
    status = bl.stop(proc)
    proc.stdout.close()
    if status != 0:
        raise RuntimeError(f"{binary} exited {status} after SIGTERM")


class Client:
    def __init__(self, port):
        self.sock = socket.create_connection((bl.HOST, port), timeout=TIMEOUT)
        self.buf = b""
        self.expect(b"220")

    def reply(self):
        """One complete reply (last line "CODE "); returns its first line."""
        while True:
            while b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                if len(line) < 4 or line[3:4] != b"-":
                    return line
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("server closed the connection")
            self.buf += chunk

    def expect(self, code):
        line = self.reply()
        if not line.startswith(code):
            raise RuntimeError(f"got {line!r}, want {code!r}")

    def send(self, data):
        self.sock.sendall(data)


def message(size, i):
    """Exactly size bytes, CRLF lines, no line starting with '.' (no dot-stuffing)."""
    head = (f"From: a@bench.test\r\nTo: alice@bench.test\r\nSubject: message {i}\r\n"
            f"Message-ID: <{i}@bench.test>\r\n\r\n").encode()
    body_len = size - len(head)
    line = b"x" * 76 + b"\r\n"
    body = (line * (body_len // len(line) + 1))[:body_len - 2] + b"\r\n"
    msg = head + body
    assert len(msg) == size
    return msg


def smtp_rss(binary, scenario, n, size):
    proc, port, _ = start(binary, scenario)
    try:
        before = bl.rss_kib(proc.pid)
        c = Client(port)
        c.send(b"EHLO bench\r\n")
        c.expect(b"250")
        msgs = [message(size, i) for i in range(64)]
        for i in range(n):
            # MAIL and RCPT pipelined (RFC 2920), DATA answered before the body goes
            c.send(b"MAIL FROM:<a@bench.test>\r\nRCPT TO:<alice@bench.test>\r\nDATA\r\n")
            c.expect(b"250")
            c.expect(b"250")
            c.expect(b"354")
            c.send(msgs[i % len(msgs)] + b".\r\n")
            c.expect(b"250")
        c.send(b"QUIT\r\n")
        c.expect(b"221")
        c.sock.close()
        after = bl.rss_kib(proc.pid)
    finally:
        finish(proc, binary)
    return (after - before) * 1024 / n


def gen_runs(binary, empty, full, m, rounds):
    """Ready times (ns) of the empty and the full scenario, and RSS/msg of the full one."""
    t_empty, t_full, per_msg = [], [], []
    for _ in range(rounds):
        proc, _, t = start(binary, empty)
        rss0 = bl.rss_kib(proc.pid)
        finish(proc, binary)
        t_empty.append(t)
        proc, _, t = start(binary, full)
        rss1 = bl.rss_kib(proc.pid)
        finish(proc, binary)
        t_full.append(t)
        per_msg.append((rss1 - rss0) * 1024 / m)
    return t_empty, t_full, per_msg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", default=None, help="mocksrv binary of the old build")
    ap.add_argument("--after", default=None, help="mocksrv binary of the new build")
    ap.add_argument("-n", type=int, default=20000, help="SMTP messages (default 20000)")
    ap.add_argument("-m", type=int, default=10000, help="generated messages (default 10000)")
    ap.add_argument("-s", "--size", type=int, default=4096, help="message size (default 4096)")
    ap.add_argument("-r", "--rounds", type=int, default=7, help="rounds (default 7)")
    args = ap.parse_args()
    after = args.after or bl.mocksrv_bin()
    builds = ([("before", args.before)] if args.before else []) + [("after", after)]
    for _, b in builds:
        if not bl.have(b):
            sys.exit(f"bench_store_memory: no binary at {b}")
    n = max(1, min(args.n, 1000000))
    m = max(1, min(args.m, 1000000))
    size = max(256, min(args.size, 1 << 20))
    rounds = max(1, min(args.rounds, 100))

    tmp = tempfile.mkdtemp(prefix="mocksrv-bench-store-")
    smtp_sc = os.path.join(tmp, "smtp.yaml")
    empty_sc = os.path.join(tmp, "empty.yaml")
    full_sc = os.path.join(tmp, "full.yaml")
    with open(smtp_sc, "w", encoding="utf-8") as f:
        f.write(SMTP_SCENARIO)
    with open(empty_sc, "w", encoding="utf-8") as f:
        f.write(GEN_SCENARIO % "          []\n")
    with open(full_sc, "w", encoding="utf-8") as f:
        f.write(GEN_SCENARIO % f"          - generate: {{ count: {m}, size: {size} }}\n")

    load_start = bl.machine()
    smtp = {k: [] for k, _ in builds}
    t_empty = {k: [] for k, _ in builds}
    t_full = {k: [] for k, _ in builds}
    gen_rss = {k: [] for k, _ in builds}
    smtp_rounds = max(1, min(3, rounds))
    started = time.monotonic()
    for i in range(rounds):
        order = builds if i % 2 == 0 else builds[::-1]
        for name, binary in order:
            te, tf, pm = gen_runs(binary, empty_sc, full_sc, m, 1)
            t_empty[name] += te
            t_full[name] += tf
            gen_rss[name] += pm
            if i < smtp_rounds:
                smtp[name].append(smtp_rss(binary, smtp_sc, n, size))
        if time.monotonic() - started > 240:
            print(f"bench_store_memory: stopping after {i + 1} rounds (4 min cap)",
                  file=sys.stderr)
            break
    for f in (smtp_sc, empty_sc, full_sc):
        os.unlink(f)
    os.rmdir(tmp)

    med = statistics.median

    def cell(values, fmt, size_ratio=False):
        if not values:
            return "-"
        v = med(values)
        return fmt.format(v) + (f" ({v / size:.2f}x)" if size_ratio else "")

    def ratio(key_values):
        b, a = key_values.get("before"), key_values.get("after")
        return f"{med(a) / med(b):.2f}" if b and a else "-"

    out = ["## Memory per stored message, scenario load (bench_store_memory)", "",
           f"{bl.now_utc()}, {load_start} at the start, {bl.machine()} at the end; "
           f"before = `{args.before or '-'}`, after = `{after}`", "",
           "| row | before | after | after/before | target | result |",
           "| --- | ---: | ---: | ---: | --- | --- |"]
    sa, ga = med(smtp["after"]), med(gen_rss["after"])
    out.append(f"| SMTP: RSS per stored {size}-byte message ({n} msgs, median of "
               f"{len(smtp['after'])}) | {cell(smtp.get('before'), '{:.0f} B', True)} | "
               f"{cell(smtp['after'], '{:.0f} B', True)} | {ratio(smtp)} | <= 1.3x size | "
               f"{'met' if sa <= 1.3 * size else 'NOT met'} |")
    out.append(f"| scenario: RSS per generated {size}-byte message ({m} msgs, median of "
               f"{len(gen_rss['after'])}) | {cell(gen_rss.get('before'), '{:.0f} B', True)} | "
               f"{cell(gen_rss['after'], '{:.0f} B', True)} | {ratio(gen_rss)} | "
               f"<= 1.3x size | {'met' if ga <= 1.3 * size else 'NOT met'} |")
    ms = {k: [v / 1e6 for v in vals] for k, vals in t_empty.items()}
    mf = {k: [v / 1e6 for v in vals] for k, vals in t_full.items()}
    out.append(f"| ready line, empty scenario (ms, median) | {cell(ms.get('before'), '{:.2f}')} "
               f"| {cell(ms['after'], '{:.2f}')} | {ratio(ms)} | - | - |")
    out.append(f"| ready line, {m} x {size} generated (ms, median) | "
               f"{cell(mf.get('before'), '{:.2f}')} | {cell(mf['after'], '{:.2f}')} | "
               f"{ratio(mf)} | - | - |")
    la = med(mf["after"]) - med(ms["after"])
    if "before" in mf:
        lb = med(mf["before"]) - med(ms["before"])
        out.append(f"| the load alone: difference of the two (ms) | {lb:.2f} | {la:.2f} | "
                   f"{la / lb:.2f} ({lb / la:.1f}x faster) | >= 2x faster | "
                   f"{'met' if lb >= 2 * la else 'NOT met'} |")
    else:
        out.append(f"| the load alone: difference of the two (ms) | - | {la:.2f} | - | "
                   f">= 2x faster than before | no before build given |")
    bl.append_results("\n".join(out))


if __name__ == "__main__":
    main()
