#!/usr/bin/env python3
"""bench_throughput.py - SMTP messages per second under Postfix smtp-source.

  smtp-source -s 20 -m 20000 -l 4096 [-d] 127.0.0.1:PORT

20 parallel sessions, 20000 messages of 4 KiB; without -d one connection per message, with -d
each connection carries many messages. Servers, each started fresh for every run:

  mocksrv --spool /dev/shm/...   every message written to a tmpfs spool (and kept in memory)
  mocksrv                        no spool: messages kept in memory only
  smtp-sink (peer)               Postfix's sink, which discards

Each (server, mode) runs RUNS times (default 3), interleaved; the median rate is reported.
A run counts only if smtp-source exits 0 with nothing on stderr (it exits non-zero on any
unexpected reply, so every message got its 250), the server then stops cleanly on SIGTERM, and,
with a spool, the spool holds exactly 20000 .eml files. An invalid run aborts the benchmark.
Server CPU (user+sys from /proc/PID/stat, read before stopping it) is reported per 1000 messages.

Usage: bench_throughput.py [--runs N] [--messages M] [--sessions S] [--size BYTES]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

RUN_TIMEOUT = 120.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


class Target:
    def __init__(self, name, start):
        self.name = name
        self.start = start  # -> (server object with .port .pid .stop(), spool dir or None)


def start_mocksrv_spool(tag):
    spool = f"/dev/shm/mocksrv-bench-{os.getpid()}-{tag}"
    shutil.rmtree(spool, ignore_errors=True)
    os.makedirs(spool)
    return bl.Mocksrv(["--spool", spool]), spool


def start_mocksrv_nospool(tag):
    return bl.Mocksrv(), None


def start_sink(tag):
    return bl.SmtpSink(), None


def one_run(target, mode_args, args, tag):
    server, spool = target.start(tag)
    try:
        cmd = [bl.SMTP_SOURCE, "-s", str(args.sessions), "-m", str(args.messages),
               "-l", str(args.size)] + mode_args + [f"{bl.HOST}:{server.port}"]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, timeout=RUN_TIMEOUT)
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(server.pid)
    finally:
        status = server.stop()
    if res.returncode != 0 or res.stderr:
        raise RuntimeError(f"{target.name}: smtp-source exited {res.returncode}: "
                           f"{res.stderr.decode(errors='replace').strip()}")
    if target.name.startswith("mocksrv") and status != 0:
        raise RuntimeError(f"{target.name}: exited {status} after SIGTERM")
    if spool:
        n = sum(1 for f in os.listdir(spool) if f.endswith(".eml"))
        shutil.rmtree(spool, ignore_errors=True)
        if n != args.messages:
            raise RuntimeError(f"{target.name}: spool holds {n} messages, want {args.messages}")
    return elapsed, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args()
    args.runs = max(1, min(args.runs, 20))

    if not bl.have(bl.SMTP_SOURCE):
        bl.append_results("## SMTP throughput\n\nNot run: /usr/sbin/smtp-source missing "
                          "(package postfix).")
        return
    targets = [Target("mocksrv --spool (tmpfs)", start_mocksrv_spool),
               Target("mocksrv (no spool)", start_mocksrv_nospool),
               Target("smtp-sink", start_sink)]
    modes = [("connection per message", []), ("-d (connection reuse)", ["-d"])]

    results = {}  # (target, mode) -> [(elapsed, cpu)]
    started = time.monotonic()
    for run in range(args.runs):
        for mname, margs in modes:
            for t in targets:
                r = one_run(t, margs, args, f"{run}")
                results.setdefault((t.name, mname), []).append(r)
                print(f"  run {run + 1} {mname:24} {t.name:24} {r[0]:6.2f} s "
                      f"{args.messages / r[0]:8.0f} msg/s  server CPU {r[1]:.2f} s",
                      file=sys.stderr)
        if time.monotonic() - started > 240:
            print("bench_throughput: stopping early (4 min cap)", file=sys.stderr)
            break

    cmd = (f"smtp-source -s {args.sessions} -m {args.messages} -l {args.size} [-d] "
           f"127.0.0.1:PORT")
    out = ["## SMTP throughput (smtp-source)", "",
           f"{bl.now_utc()}, {bl.machine()}; `{cmd}`; median of {len(results[(targets[0].name, modes[0][0])])} runs", "",
           "| mode | server | median s | median msg/s | runs msg/s | server CPU ms / 1000 msg |",
           "| --- | --- | ---: | ---: | --- | ---: |"]
    medians = {}
    for mname, _ in modes:
        for t in targets:
            rs = results[(t.name, mname)]
            el = statistics.median(r[0] for r in rs)
            cpu = statistics.median(r[1] for r in rs)
            rate = args.messages / el
            medians[(t.name, mname)] = rate
            runs = ", ".join(f"{args.messages / r[0]:.0f}" for r in rs)
            out.append(f"| {mname} | {t.name} | {el:.2f} | {rate:.0f} | {runs} | "
                       f"{1000 * 1000 * cpu / args.messages:.1f} |")
    out.append("")
    for mname, _ in modes:
        sink = medians[("smtp-sink", mname)]
        for t in targets[:2]:
            r = medians[(t.name, mname)] / sink
            out.append(f"- {mname}: {t.name} at {r:.2f}x smtp-sink's rate "
                       f"({'target met' if r >= 1 else 'target NOT met'})")
    bl.append_results("\n".join(out))


if __name__ == "__main__":
    main()
