#!/usr/bin/env python3
"""bench_pop3.py - POP3 RETR rate: one poplib client RETRs all of 1,000 messages of 4 KiB.

Servers, both serving the same 1,000 messages:

  mocksrv            a scenario with `generate: { count: 1000, size: 4KiB }` for alice
  Dovecot (peer)     dovecot -F with a private minimal config in a temporary directory (pop3 only,
                     no TLS, static passdb/userdb, mail_location = maildir:...), the messages
                     written into its Maildir: the bytes mocksrv serves, fetched from it first,
                     stored with LF line ends (the Maildir convention; Dovecot adds the CRs back)
                     and ,S=/,W= sizes in the file names. Stopped by its PID at the end.

Before timing, Dovecot's RETR of every message is compared with mocksrv's: the same bytes, in the
same order (so both do the same work). A round is: connect, USER/PASS, RETR 1..1000 (poplib
reads and un-stuffs every line), QUIT; the rate is messages / round time. One warm-up round per
server (Dovecot builds its index on the first login), then RUNS measured rounds (default 5),
interleaved mocksrv / Dovecot; the median is reported with the ratio. Target: mocksrv >= 2x.

Every wait has a deadline and every loop a bound; only 127.0.0.1 is used; the only processes
signalled are the two started here, by PID.

Usage: bench_pop3.py [--runs N] [--messages M] [--size SIZE]
Environment: MOCKSRV_BIN, BENCH_RESULTS (see benchlib.py), DOVECOT (default: dovecot on PATH,
else /usr/sbin/dovecot; without it only mocksrv is measured).
"""

import argparse
import json
import os
import poplib
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

ROUND_TIMEOUT = 120.0  # seconds for one round (socket timeout per reply: 10 s)
START_TIMEOUT = 10.0
TARGET = 2.0


def start_mocksrv(tmp, count, size):
    scenario = os.path.join(tmp, "pop3-bench.yaml")
    with open(scenario, "w") as f:
        f.write("version: 1\nseed: 4096\nhostname: mock.test\n"
                "listeners:\n  pop3: { protocol: pop3, port: 0 }\n"
                "users:\n  alice:\n    password: secret\n    mailboxes:\n"
                "      INBOX: { messages: [ { generate: { count: %d, size: %s } } ] }\n"
                % (count, size))
    cmd = [bl.mocksrv_bin(), "--ephemeral", "-q", scenario]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    line = bl.read_line(proc.stdout.fileno(), time.monotonic() + START_TIMEOUT)
    if line is None:
        bl.stop(proc)
        raise RuntimeError("mocksrv gave no ready line: %s" % " ".join(cmd))
    ready = json.loads(line)
    port = next(l["port"] for l in ready["listeners"] if l["name"] == "pop3")
    return proc, port, cmd


def dovecot_bin():
    return os.environ.get("DOVECOT") or shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if os.access("/usr/sbin/dovecot", os.X_OK) else None)


DOVECOT_CONF = """# private Dovecot for bench_pop3.py
base_dir = {tmp}/run
state_dir = {tmp}/state
instance_name = bench-pop3-{pid}
log_path = {tmp}/dovecot.log
info_log_path = {tmp}/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = {uid}
default_login_user = {login_user}
default_internal_user = {internal_user}
mail_location = maildir:{tmp}/Maildir
passdb {{
  driver = static
  args = password=secret
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={tmp}/home
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""


class Dovecot:
    def __init__(self, binary, tmp, messages):
        self.tmp = os.path.join(tmp, "dovecot")
        os.makedirs(os.path.join(self.tmp, "home"))
        for d in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.tmp, "Maildir", d))
        uid, gid = os.getuid(), os.getgid()
        for i, data in enumerate(messages, 1):
            lf = data.replace(b"\r\n", b"\n")
            name = "1700000000.M%06dP1.bench,S=%d,W=%d:2," % (i, len(lf), len(data))
            with open(os.path.join(self.tmp, "Maildir", "cur", name), "wb") as f:
                f.write(lf)
        if os.geteuid() == 0:
            # Dovecot refuses to access mail as root: the mail is nobody's, and its login and
            # internal processes run as its own unprivileged users (the package creates them).
            login_user, internal_user = "dovenull", "dovecot"
            for u in (login_user, internal_user):
                pwd.getpwnam(u)
            pw = pwd.getpwnam("nobody")
            uid, gid = pw.pw_uid, pw.pw_gid
            os.chmod(tmp, 0o755)
            os.chmod(self.tmp, 0o755)
            for root, dirs, files in os.walk(self.tmp):
                for n in dirs + files:
                    os.chown(os.path.join(root, n), uid, gid)
        else:
            login_user = internal_user = pwd.getpwuid(uid).pw_name
        last = None
        for _ in range(5):  # bounded: the free port can be taken before Dovecot binds it
            self.port = bl.free_port()
            conf = os.path.join(self.tmp, "dovecot.conf")
            with open(conf, "w") as f:
                f.write(DOVECOT_CONF.format(tmp=self.tmp, pid=os.getpid(), uid=uid, gid=gid,
                                            port=self.port, login_user=login_user,
                                            internal_user=internal_user))
            self.cmd = [binary, "-F", "-c", conf]
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + START_TIMEOUT
            s = bl.connect_when_up(self.port, deadline, pause=0.005)
            if s is not None:
                greeting = bl.read_greeting(s, deadline)
                s.close()
                if greeting.startswith(b"+OK"):
                    self.pid = self.proc.pid
                    return
            bl.stop(self.proc)
            last = self.proc.stderr.read().decode(errors="replace") + self.log()
            self.proc.stderr.close()
        raise RuntimeError("dovecot did not come up: %s" % last)

    def log(self):
        try:
            with open(os.path.join(self.tmp, "dovecot.log"), encoding="utf-8",
                      errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        status = bl.stop(self.proc, 10.0)
        self.proc.stderr.close()
        return status


def fetch_all(port, count):
    """One session: RETR 1..count; returns the messages (CRLF lines rebuilt)."""
    p = poplib.POP3(bl.HOST, port, timeout=10)
    try:
        p.user("alice")
        p.pass_("secret")
        n, _ = p.stat()
        if n != count:
            raise RuntimeError("port %d: %d messages, want %d" % (port, n, count))
        out = [b"\r\n".join(p.retr(i)[1]) + b"\r\n" for i in range(1, count + 1)]
        p.quit()
        return out
    finally:
        p.close()


def one_round(port, count):
    """Seconds for connect + login + RETR of every message + QUIT; checks every RETR."""
    deadline = time.monotonic() + ROUND_TIMEOUT
    t0 = time.perf_counter()
    p = poplib.POP3(bl.HOST, port, timeout=10)
    try:
        p.user("alice")
        p.pass_("secret")
        octets = 0
        for i in range(1, count + 1):
            resp, lines, o = p.retr(i)
            if not resp.startswith(b"+OK") or not lines:
                raise RuntimeError("RETR %d: %r" % (i, resp))
            octets += o
            if time.monotonic() > deadline:
                raise RuntimeError("round over %.0f s" % ROUND_TIMEOUT)
        p.quit()
    finally:
        p.close()
    return time.perf_counter() - t0, octets


def raw_round(port, count):
    """Like one_round with a minimal socket client (no per-line parsing): one RETR at a time,
    read up to the end marker. Shows what the server can do when the client is not poplib."""
    import socket
    deadline = time.monotonic() + ROUND_TIMEOUT
    t0 = time.perf_counter()
    s = socket.create_connection((bl.HOST, port), timeout=10)
    try:
        buf = bytearray()

        def reply(multi):
            while True:
                if multi:
                    nl = buf.find(b"\r\n")
                    if nl >= 0 and not buf.startswith(b"+OK"):
                        raise RuntimeError("port %d: %r" % (port, bytes(buf[:80])))
                    if nl >= 0 and buf.endswith(b"\r\n.\r\n") and len(buf) >= nl + 5:
                        break
                elif buf.endswith(b"\r\n"):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("round over %.0f s" % ROUND_TIMEOUT)
                chunk = s.recv(262144)
                if not chunk:
                    raise RuntimeError("port %d closed" % port)
                buf.extend(chunk)
            del buf[:]

        reply(False)
        s.sendall(b"USER alice\r\n")
        reply(False)
        s.sendall(b"PASS secret\r\n")
        reply(False)
        for i in range(1, count + 1):
            s.sendall(b"RETR %d\r\n" % i)
            reply(True)
        s.sendall(b"QUIT\r\n")
        reply(False)
    finally:
        s.close()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--size", default="4KiB")
    args = ap.parse_args()
    runs = max(1, min(args.runs, 50))

    tmp = tempfile.mkdtemp(prefix="mocksrv-bench-pop3-")
    mproc = dovecot = None
    try:
        mproc, mport, mcmd = start_mocksrv(tmp, args.messages, args.size)
        reference = fetch_all(mport, args.messages)  # also the warm-up round
        avg = sum(len(m) for m in reference) / len(reference)

        binary = dovecot_bin()
        if binary:
            dovecot = Dovecot(binary, tmp, reference)
            served = fetch_all(dovecot.port, args.messages)  # warm-up: builds the index
            if served != reference:
                bad = next(i for i, (a, b) in enumerate(zip(served, reference), 1) if a != b)
                raise RuntimeError("Dovecot serves other bytes than mocksrv, message %d" % bad)
        else:
            print("bench_pop3: no dovecot binary; measuring mocksrv only", file=sys.stderr)

        times = {"mocksrv": [], "dovecot": []}
        raw = {"mocksrv": [], "dovecot": []}
        cpu = {"mocksrv": 0.0, "dovecot": 0.0}
        for _ in range(runs):
            for name, port, pid in (("mocksrv", mport, mproc.pid),
                                    ("dovecot", dovecot and dovecot.port, dovecot and dovecot.pid)):
                if not port:
                    continue
                c0 = bl.tree_cpu(pid)
                times[name].append(one_round(port, args.messages)[0])
                cpu[name] += bl.tree_cpu(pid) - c0
                raw[name].append(raw_round(port, args.messages))

        rate = {k: args.messages / statistics.median(v) for k, v in times.items() if v}
        raw_rate = {k: args.messages / statistics.median(v) for k, v in raw.items() if v}
        status = bl.stop(mproc)
        mproc = None
        if status != 0:
            raise RuntimeError("mocksrv exit status %d after SIGTERM" % status)
        dv_log = ""
        if dovecot:
            dovecot.stop()
            dv_log = dovecot.log()
            dovecot = None
            if "Error" in dv_log or "Fatal" in dv_log:
                raise RuntimeError("Dovecot logged errors:\n%s" % dv_log)

        lines = [
            "## POP3 RETR rate (bench_pop3.py)",
            "",
            "%s; %s" % (bl.now_utc(), bl.machine()),
            "",
            "One poplib client: connect, USER/PASS, RETR 1..%d, QUIT; %d messages generated by "
            "mocksrv (`generate: { count: %d, size: %s }`, average %.0f bytes), the same bytes "
            "in Dovecot's Maildir (checked: Dovecot's RETR gives mocksrv's bytes). Median of %d "
            "rounds after one warm-up round each, interleaved."
            % (args.messages, args.messages, args.messages, args.size, avg, runs),
            "",
            "    %s" % " ".join(mcmd[:-1] + ["pop3-bench.yaml"]),
        ]
        if "dovecot" in rate:
            lines.append("    %s  (private config: pop3 only, ssl = no, static passdb/userdb, "
                         "maildir)" % " ".join(os.path.basename(a) if i == 0 else a
                                               for i, a in enumerate(
                                                   [binary, "-F", "-c", "dovecot.conf"])))
        lines += ["", "| server | poplib: median s/round | poplib: messages/s | poplib rounds (s) "
                  "| server CPU ms per 1000 RETR (poplib rounds) | raw-socket client: messages/s |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for k in ("mocksrv", "dovecot"):
            if times[k]:
                lines.append("| %s | %.3f | %.0f | %s | %.0f | %.0f |" % (
                    k if k == "mocksrv" else "Dovecot %s" % dovecot_version(binary),
                    statistics.median(times[k]), rate[k],
                    " ".join("%.3f" % t for t in times[k]),
                    1000.0 * cpu[k] / len(times[k]) * 1000.0 / args.messages, raw_rate[k]))
        lines.append("")
        if "dovecot" in rate:
            ratio = rate["mocksrv"] / rate["dovecot"]
            lines.append("Target: mocksrv >= %.0fx Dovecot's RETR rate (one poplib client): "
                         "%.2fx, %s. With the raw-socket client: %.2fx. Server CPU per RETR: "
                         "Dovecot / mocksrv = %.2fx."
                         % (TARGET, ratio, "met" if ratio >= TARGET else "NOT met",
                            raw_rate["mocksrv"] / raw_rate["dovecot"],
                            cpu["dovecot"] / cpu["mocksrv"] if cpu["mocksrv"] else float("inf")))
        else:
            lines.append("Target: not checked (no Dovecot).")
        bl.append_results("\n".join(lines))
        return 0
    except Exception:
        if dovecot is not None:
            print("bench_pop3: Dovecot's log:\n" + dovecot.log(), file=sys.stderr)
        raise
    finally:
        if mproc is not None:
            bl.stop(mproc)
        if dovecot is not None:
            dovecot.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def dovecot_version(binary):
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, timeout=10,
                             stdin=subprocess.DEVNULL)
        return out.stdout.decode().split()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
