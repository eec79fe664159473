#!/usr/bin/env python3
"""bench_faults.py - the cost of the fault engine when no rule matches.

SMTP messages per second under Postfix's smtp-source, mocksrv with no fault rules versus the
same scenario with 50 rules that never match (each looks at a command no client sends, so every
command of every session is checked against all 50). Both in the same run, interleaved, RUNS
times each; medians. Target: the rate with 50 rules within 5% of the rate without.

  smtp-source -s 20 -m 20000 -l 4096 -d 127.0.0.1:PORT

Usage: bench_faults.py [--runs N] [--messages M]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from bench_throughput import cpu_seconds  # noqa: E402

RUN_TIMEOUT = 120.0

BASE = """version: 1
listeners:
  smtp: { protocol: smtp, port: 0 }
users:
  alice: { password: secret }
"""


def scenario(path, rules):
    text = BASE
    if rules:
        text += "faults:\n"
        for i in range(rules):
            # a verb no client sends: every rule is checked, none matches
            text += ('  - { name: never-%d, when: { command: XNEVER%d, nth: 1 }, '
                     'reply: "451 4.3.0 never" }\n' % (i, i))
    with open(path, "w") as f:
        f.write(text)


def one_run(path, args):
    server = bl.Mocksrv(scenario=path)
    try:
        cmd = [bl.SMTP_SOURCE, "-s", "20", "-m", str(args.messages), "-l", "4096", "-d",
               f"{bl.HOST}:{server.port}"]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, timeout=RUN_TIMEOUT)
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(server.pid)
    finally:
        status = server.stop()
    if res.returncode != 0 or res.stderr or status != 0:
        raise RuntimeError("smtp-source exited %d (%s), mocksrv %s"
                           % (res.returncode, res.stderr.decode(errors="replace").strip(),
                              status))
    return args.messages / elapsed, cpu * 1000.0 / args.messages * 1000.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--messages", type=int, default=20000)
    args = ap.parse_args()
    args.runs = max(1, min(args.runs, 20))
    if not bl.have(bl.SMTP_SOURCE):
        bl.append_results("## Fault engine cost\n\nNot run: smtp-source missing (postfix).")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        paths = {0: os.path.join(tmp, "none.yaml"), 50: os.path.join(tmp, "fifty.yaml")}
        for n, p in paths.items():
            scenario(p, n)
        rates = {0: [], 50: []}
        cpus = {0: [], 50: []}
        for _ in range(args.runs):
            for n in (0, 50):
                rate, cpu = one_run(paths[n], args)
                rates[n].append(rate)
                cpus[n].append(cpu)
                print("bench_faults: %2d rules: %.0f msg/s, %.1f ms CPU / 1000 msg"
                      % (n, rate, cpu), flush=True)
    med = {n: statistics.median(rates[n]) for n in rates}
    cpu_med = {n: statistics.median(cpus[n]) for n in cpus}
    ratio = med[50] / med[0]
    verdict = "met" if ratio >= 0.95 else "NOT met"
    lines = [
        "## Fault engine cost with no matching rule (`bench_faults.py`)",
        "",
        "%s, %s; `smtp-source -s 20 -m %d -l 4096 -d`, medians of %d interleaved runs"
        % (bl.now_utc(), bl.machine(), args.messages, args.runs),
        "",
        "| rules | median msg/s | runs msg/s | server CPU ms / 1000 msg |",
        "| --- | ---: | --- | ---: |",
    ]
    for n in (0, 50):
        lines.append("| %d | %.0f | %s | %.1f |" % (n, med[n],
                                                    ", ".join("%.0f" % r for r in rates[n]),
                                                    cpu_med[n]))
    lines += ["", "Target: 50 non-matching rules within 5%% of none: %.3fx, %s." % (ratio, verdict)]
    text = "\n".join(lines)
    print(text)
    bl.append_results(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
