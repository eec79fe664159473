#!/usr/bin/env python3
"""bench_spawn.py - spawn-to-ready: how long from fork/exec until the server can be used.

Measured in one run, interleaved round by round (so drift hits every row alike):

  mocksrv ready line   fork/exec of `mocksrv --ephemeral` until the complete ready line is read
                       from its stdout (what a test suite waits for; the embedded default
                       scenario, TLS listeners included); targets: median < 5 ms, and at most
                       0.5x smtp-sink's first 220 (the row below) in the same run
  before: ready line   the same for an older build given with --before BIN (optional), so a
                       change is measured against its base in the same run
  mocksrv first 220    fork/exec of `mocksrv --listen smtp=127.0.0.1:PORT` until a poll-connect
                       succeeds and the 220 greeting is read: the same method as the peer
  smtp-sink first 220  Postfix smtp-sink (peer): fork/exec of `smtp-sink 127.0.0.1:PORT 100` until
                       a poll-connect succeeds and its 220 greeting is read
  dovecot first 220   Dovecot (optional peer, only if dovecot-core and dovecot-lmtpd are
                       installed): fork/exec of `dovecot -F -c CONF` with one LMTP inet listener
                       until its 220 greeting is read (its master forks the lmtp process then);
                       fewer runs (--dovecot-n, default 30), as stopping Dovecot takes ~1 s
  /bin/true exit       fork/exec of /bin/true until it has exited: the floor Python's spawn puts
                       under every row

Poll-connect retries every 0.1 ms (a refused connect on loopback fails at once). Each server is
stopped with SIGTERM by PID after its sample and must exit; mocksrv must exit 0.

Usage: bench_spawn.py [-n RUNS] [--before OLD_MOCKSRV]   (default 200 runs)
"""

import argparse
import json
import shutil
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

TIMEOUT = 5.0  # per sample


def sample_mocksrv_ready(binary=None):
    t0 = time.perf_counter_ns()
    proc = subprocess.Popen([binary or bl.mocksrv_bin(), "--ephemeral"], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    line = bl.read_line(proc.stdout.fileno(), time.monotonic() + TIMEOUT)
    t1 = time.perf_counter_ns()
    status = bl.stop(proc)
    proc.stdout.close()
    if line is None or json.loads(line).get("event") != "ready":
        raise RuntimeError(f"mocksrv: no ready line (got {line!r})")
    if status != 0:
        raise RuntimeError(f"mocksrv exited {status} after SIGTERM")
    return t1 - t0


def sample_first_220(make_cmd, name):
    """make_cmd(port) -> argv. Retries (bounded) when the chosen free port was taken first."""
    for _ in range(5):
        port = bl.free_port()
        cmd = make_cmd(port)
        t0 = time.perf_counter_ns()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + TIMEOUT
        sock = bl.connect_when_up(port, deadline)
        greeting = bl.read_greeting(sock, deadline) if sock else b""
        t1 = time.perf_counter_ns()
        if sock:
            sock.close()
        status = bl.stop(proc)
        if greeting.startswith(b"220"):
            if name == "mocksrv" and status != 0:
                raise RuntimeError(f"mocksrv exited {status} after SIGTERM")
            return t1 - t0
    raise RuntimeError(f"{name}: no 220 greeting after 5 attempts ({' '.join(cmd)})")


DOVECOT = "/usr/sbin/dovecot"
DOVECOT_LMTP = "/usr/lib/dovecot/lmtp"
DOVECOT_CONF = """\
# bench_spawn.py: Dovecot with one LMTP listener on 127.0.0.1, nothing else.
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/log
protocols = lmtp
listen = 127.0.0.1
ssl = no
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
  unix_listener lmtp {{
    mode = 0
  }}
}}
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={dir}/home
}}
mail_location = maildir:{dir}/mail/%u
"""


def dovecot_cmd(tmp, port):
    conf = os.path.join(tmp, f"dovecot-{port}.conf")
    os.makedirs(os.path.join(tmp, str(port)), exist_ok=True)
    with open(conf, "w", encoding="utf-8") as f:
        f.write(DOVECOT_CONF.format(dir=os.path.join(tmp, str(port)), port=port))
    return [DOVECOT, "-F", "-c", conf]


def sample_true():
    t0 = time.perf_counter_ns()
    proc = subprocess.Popen(["/bin/true"], stdin=subprocess.DEVNULL)
    # wait() without a timeout is one blocking waitpid; with one, Python polls with sleeps.
    status = proc.wait()
    t1 = time.perf_counter_ns()
    if status != 0:
        raise RuntimeError(f"/bin/true exited {status}")
    return t1 - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=200, help="runs per row (default 200)")
    ap.add_argument("--dovecot-n", type=int, default=30,
                    help="runs of the Dovecot row (default 30: its stop takes about a second)")
    ap.add_argument("--before", default=None,
                    help="an older mocksrv binary: its ready line is measured too")
    args = ap.parse_args()
    if args.before and not bl.have(args.before):
        sys.exit(f"bench_spawn: no binary at {args.before}")
    n = max(1, min(args.n, 100000))
    dovecot_n = max(0, min(args.dovecot_n, n))

    rows = [
        ("mocksrv --ephemeral: ready line", sample_mocksrv_ready),
        ("mocksrv --listen smtp=PORT: first 220",
         lambda: sample_first_220(
             lambda p: [bl.mocksrv_bin(), "--listen", f"smtp={bl.HOST}:{p}"], "mocksrv")),
    ]
    before_row = None
    if args.before:
        before_row = f"before (`{args.before}`) --ephemeral: ready line"
        rows.append((before_row, lambda: sample_mocksrv_ready(args.before)))
    if bl.have(bl.SMTP_SINK):
        rows.append(("smtp-sink 127.0.0.1:PORT 100: first 220",
                     lambda: sample_first_220(lambda p: bl.smtp_sink_cmd(p), "smtp-sink")))
    tmp = None
    if dovecot_n and bl.have(DOVECOT) and bl.have(DOVECOT_LMTP):
        tmp = tempfile.mkdtemp(prefix="mocksrv-bench-dovecot-")
        os.chmod(tmp, 0o755)  # Dovecot's unprivileged processes must reach its base_dir
        rows.append(("dovecot -F (LMTP listener): first 220",
                     lambda: sample_first_220(lambda p: dovecot_cmd(tmp, p), "dovecot")))
    rows.append(("/bin/true: spawn to exit (floor)", sample_true))

    samples = {name: [] for name, _ in rows}
    started = time.monotonic()
    for i in range(n):
        # Rotate the order each round so no row always runs right after another.
        for k in range(len(rows)):
            name, fn = rows[(i + k) % len(rows)]
            if name.startswith("dovecot") and i >= dovecot_n:
                continue
            samples[name].append(fn())
        if time.monotonic() - started > 120:
            print(f"bench_spawn: stopping after {i + 1} rounds (2 min cap)", file=sys.stderr)
            break

    out = ["## Spawn to ready", "",
           f"{bl.now_utc()}, {bl.machine()}; `{' '.join([os.path.basename(sys.argv[0])] + sys.argv[1:])}`; "
           f"poll-connect every 0.1 ms",
           "", "| what | n | median ms | p90 ms | min ms | max ms |",
           "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, _ in rows:
        s = bl.summary_ms(samples[name])
        out.append(f"| {name} | {s['n']} | {s['median']:.2f} | {s['p90']:.2f} | "
                   f"{s['min']:.2f} | {s['max']:.2f} |")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        out.append("\nDovecot not run: dovecot-core and dovecot-lmtpd are not both installed "
                   "(optional; `BENCH_DOVECOT=1 ci/bench.sh` installs them).")
    if not bl.have(bl.SMTP_SINK):
        out.append("\nsmtp-sink not run: /usr/sbin/smtp-sink missing (package postfix).")
    med = bl.summary_ms(samples[rows[0][0]])["median"]
    out.append("")
    out.append(f"Target: mocksrv ready-line median < 5 ms: {'met' if med < 5 else 'NOT met'} "
               f"({med:.2f} ms).")
    if bl.have(bl.SMTP_SINK):
        sink_row = next(name for name, _ in rows if name.startswith("smtp-sink"))
        a = bl.summary_ms(samples[rows[1][0]])["median"]
        b = bl.summary_ms(samples[sink_row])["median"]
        out.append(f"First 220, same method: mocksrv {a:.2f} ms vs smtp-sink {b:.2f} ms "
                   f"(ratio {a / b:.2f}).")
        out.append(f"Target: mocksrv ready line <= 0.5x smtp-sink's first 220: "
                   f"{'met' if med <= 0.5 * b else 'NOT met'} ({med:.2f} / {b:.2f} ms = "
                   f"{med / b:.2f}).")
        if before_row:
            c = bl.summary_ms(samples[before_row])["median"]
            out.append(f"Before: ready line {c:.2f} ms ({c / b:.2f}x smtp-sink); after/before "
                       f"{med / c:.2f}.")
    bl.append_results("\n".join(out))


if __name__ == "__main__":
    main()
