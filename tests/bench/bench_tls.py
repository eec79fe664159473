#!/usr/bin/env python3
"""bench_tls.py - full TLS 1.3 handshakes per second on implicit TLS (pop3s), against
`openssl speed ecdsap256` signatures per second and Dovecot's pop3s, in the same run.

A handshake is: a new TCP connection, a TLS 1.3 handshake with nothing to resume, the server's
first application data (its +OK greeting, which proves the server finished its side), one
close_notify, close. The client is bench_tls_client (tests/bench/bench_tls_client.c, OpenSSL
directly, THREADS threads for SECONDS per run; no session cache and SSL_OP_NO_TICKET on the
client; the certificate is verified once per run against the server's CA, not in the loop).

Servers, both with an ECDSA P-256 leaf certificate signed by a P-256 CA, both on 127.0.0.1:

  mocksrv            a scenario with `pop3s: { protocol: pop3, port: 0, tls: implicit }` and the
                     certificate mocksrv generates at start (its CA from the ready line)
  Dovecot (peer)     dovecot -F with a private config in a temporary directory: pop3 only,
                     ssl = required, an inet_listener pop3s with ssl = yes, a certificate made
                     here with `openssl req`/`openssl x509`. Two instances, both measured:
                     "default" (Dovecot's default: one pop3-login process per connection,
                     service_count = 1) and "high-performance" (service_count = 0,
                     process_min_avail = 2, Dovecot's documented mode for many connections).
                     Stopped by their PIDs.

The reference: `openssl speed -seconds 3 ecdsap256` (sign/s per CPU-second: `openssl speed`
counts user CPU time), run before and after the servers, and `openssl speed -seconds 3
ecdhx25519` (X25519 derive/s) once, since each handshake also costs an X25519 key share.
ROUNDS rounds, each running the client once against every server in turn.

On 2 CPUs the client and the server share the machine, and a TLS 1.3 client does more public-key
work than the server (it verifies the ECDSA signature, about 3x the cost of making one), so the
wall-clock rate is bound by the client. The fair comparison to `openssl speed` (one core) is
handshakes per server-CPU-second: server CPU is read from /proc/PID/stat (the process tree, with
reaped children, for Dovecot's per-connection processes). Target: mocksrv's handshakes per
server-CPU-second >= 70% of the ECDSA P-256 sign rate.

Every wait has a deadline and every loop a bound; only 127.0.0.1 is used; the only processes
signalled are the servers started here, by PID.

Usage: bench_tls.py [--rounds N] [--seconds S] [--threads T]
Environment: MOCKSRV_BIN, BENCH_RESULTS (see benchlib.py); BENCH_TLS_CLIENT (default:
tests/bench_tls_client next to MOCKSRV_BIN's directory); DOVECOT (default: dovecot on PATH,
else /usr/sbin/dovecot; without it only mocksrv is measured); OPENSSL (default: openssl on PATH).
"""

import argparse
import json
import os
import pwd
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

START_TIMEOUT = 10.0
TARGET = 0.70
def client_bin():
    path = os.environ.get("BENCH_TLS_CLIENT") or os.path.join(
        os.path.dirname(bl.mocksrv_bin()), "tests", "bench_tls_client")
    if not os.access(path, os.X_OK):
        sys.exit("bench_tls: no client at %s (build the bench_tls_client target, or set "
                 "BENCH_TLS_CLIENT)" % path)
    return path


def openssl_bin():
    path = os.environ.get("OPENSSL") or shutil.which("openssl")
    if not path:
        sys.exit("bench_tls: no openssl on PATH")
    return path


def run(cmd, timeout, **kw):
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                          check=True, **kw)


def openssl_speed(alg):
    """`openssl speed -seconds 3 ALG`: the per-second figures of its last table row (the ones
    after the per-operation times: sign/s and verify/s, or op/s), and the row."""
    out = run([openssl_bin(), "speed", "-seconds", "3", alg], 60).stdout.decode()
    rows = [l for l in out.splitlines() if re.match(r"^\s*\d+ bits ", l)]
    if not rows:
        raise RuntimeError("openssl speed %s: no result in %r" % (alg, out[-400:]))
    row = rows[-1].strip()
    nums = [float(t) for t in row.split() if re.fullmatch(r"\d+\.\d+", t)]
    if not nums or min(nums) <= 0:
        raise RuntimeError("openssl speed %s: cannot read %r" % (alg, row))
    return nums, row


def start_mocksrv(tmp):
    scenario = os.path.join(tmp, "tls-bench.yaml")
    with open(scenario, "w") as f:
        f.write("version: 1\nhostname: mock.test\n"
                "listeners:\n  pop3s: { protocol: pop3, port: 0, tls: implicit }\n")
    cmd = [bl.mocksrv_bin(), "--ephemeral", "-q", scenario]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    line = bl.read_line(proc.stdout.fileno(), time.monotonic() + START_TIMEOUT)
    if line is None:
        bl.stop(proc)
        raise RuntimeError("mocksrv gave no ready line: %s" % " ".join(cmd))
    ready = json.loads(line)
    port = next(l["port"] for l in ready["listeners"] if l["name"] == "pop3s")
    return proc, port, ready["ca_file"], cmd


def make_cert(tmp):
    """A P-256 CA and a P-256 leaf for 127.0.0.1/localhost signed by it (the shape of mocksrv's
    generated pair); returns (ca, cert, key) paths."""
    ossl = openssl_bin()
    d = os.path.join(tmp, "pki")
    os.makedirs(d)
    p = lambda n: os.path.join(d, n)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run([ossl, "req", "-x509"] + ec + ["-keyout", p("ca.key"), "-out", p("ca.pem"), "-days",
                                       "2", "-subj", "/O=bench/CN=bench CA"], 30)
    run([ossl, "req"] + ec + ["-keyout", p("key.pem"), "-out", p("req.csr"),
                              "-subj", "/O=bench/CN=localhost"], 30)
    with open(p("ext.cnf"), "w") as f:
        f.write("subjectAltName = DNS:localhost, IP:127.0.0.1\n")
    run([ossl, "x509", "-req", "-in", p("req.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
         "-CAcreateserial", "-days", "2", "-sha256", "-extfile", p("ext.cnf"),
         "-out", p("cert.pem")], 30)
    return p("ca.pem"), p("cert.pem"), p("key.pem")


def dovecot_bin():
    return os.environ.get("DOVECOT") or shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if os.access("/usr/sbin/dovecot", os.X_OK) else None)


def dovecot_version(binary):
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, timeout=10,
                             stdin=subprocess.DEVNULL)
        return out.stdout.decode().split()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "?"


DOVECOT_CONF = """# private Dovecot for bench_tls.py ({name})
base_dir = {d}/run
state_dir = {d}/state
instance_name = bench-tls-{name}-{pid}
log_path = {d}/dovecot.log
info_log_path = /dev/null
protocols = pop3
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = yes
auth_mechanisms = plain
first_valid_uid = {uid}
default_login_user = {login_user}
default_internal_user = {internal_user}
mail_location = maildir:{d}/Maildir
passdb {{
  driver = static
  args = password=secret
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
{service}}}
"""

DOVECOT_MODES = {
    "default": "",
    "high-performance": "  service_count = 0\n  process_min_avail = 2\n",
}


class Dovecot:
    def __init__(self, binary, tmp, name, cert, key):
        self.name = name
        self.d = os.path.join(tmp, "dovecot-" + name)
        os.makedirs(os.path.join(self.d, "home"))
        uid, gid = os.getuid(), os.getgid()
        if os.geteuid() == 0:
            # As in bench_pop3.py: Dovecot will not run mail processes as root; its login and
            # internal processes run as the package's unprivileged users.
            login_user, internal_user = "dovenull", "dovecot"
            for u in (login_user, internal_user):
                pwd.getpwnam(u)
            pw = pwd.getpwnam("nobody")
            uid, gid = pw.pw_uid, pw.pw_gid
            os.chmod(tmp, 0o755)
            os.chmod(self.d, 0o755)
        else:
            login_user = internal_user = pwd.getpwuid(uid).pw_name
        last = None
        for _ in range(5):  # bounded: the free port can be taken before Dovecot binds it
            self.port = bl.free_port()
            conf = os.path.join(self.d, "dovecot.conf")
            with open(conf, "w") as f:
                f.write(DOVECOT_CONF.format(d=self.d, name=name, pid=os.getpid(), uid=uid,
                                            gid=gid, port=self.port, cert=cert, key=key,
                                            login_user=login_user, internal_user=internal_user,
                                            service=DOVECOT_MODES[name]))
            self.cmd = [binary, "-F", "-c", conf]
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            s = bl.connect_when_up(self.port, time.monotonic() + START_TIMEOUT, pause=0.005)
            if s is not None:
                s.close()
                self.pid = self.proc.pid
                return
            bl.stop(self.proc)
            last = self.proc.stderr.read().decode(errors="replace") + self.log()
            self.proc.stderr.close()
        raise RuntimeError("dovecot (%s) did not come up: %s" % (name, last))

    def log(self):
        try:
            with open(os.path.join(self.d, "dovecot.log"), encoding="utf-8",
                      errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        status = bl.stop(self.proc, 10.0)
        self.proc.stderr.close()
        return status


def client_run(port, ca, seconds, threads):
    """One run of bench_tls_client; its JSON result (a failed run raises)."""
    cmd = [client_bin(), "-p", str(port), "-t", str(seconds), "-c", str(threads), "-A", ca]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=seconds + 60)
    try:
        res = json.loads(p.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError("bench_tls_client: no result (status %d): %s"
                           % (p.returncode, p.stderr.decode(errors="replace")))
    if p.returncode != 0 or res.get("failures") or not res.get("handshakes"):
        raise RuntimeError("bench_tls_client on port %d failed: %s" % (port, res))
    if res.get("version") != "TLSv1.3" or res.get("verify") != "ok":
        raise RuntimeError("port %d: not a verified TLS 1.3 handshake: %s" % (port, res))
    return res


def loadavg():
    with open("/proc/loadavg", encoding="ascii") as f:
        return " ".join(f.read().split()[:3])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()
    rounds = max(1, min(args.rounds, 20))
    seconds = max(1.0, min(args.seconds, 60.0))
    threads = max(1, min(args.threads, 64))
    client_bin()

    tmp = tempfile.mkdtemp(prefix="mocksrv-bench-tls-")
    mproc = None
    dovecots = []
    try:
        load0 = loadavg()
        sign0, sign_row0 = openssl_speed("ecdsap256")
        x25519, x_row = openssl_speed("ecdhx25519")

        mproc, mport, mca, mcmd = start_mocksrv(tmp)
        servers = [("mocksrv", mport, mca, mproc.pid)]
        binary = dovecot_bin()
        if binary:
            ca, cert, key = make_cert(tmp)
            for mode in DOVECOT_MODES:
                dv = Dovecot(binary, tmp, mode, cert, key)
                dovecots.append(dv)
                servers.append(("Dovecot %s, %s" % (dovecot_version(binary), mode), dv.port,
                                ca, dv.pid))
        else:
            print("bench_tls: no dovecot binary; measuring mocksrv only", file=sys.stderr)

        for name, port, ca, pid in servers:  # warm-up, and the check that each one works
            client_run(port, ca, 1, 2)

        runs = {name: [] for name, _, _, _ in servers}
        for _ in range(rounds):
            for name, port, ca, pid in servers:
                c0 = bl.tree_cpu(pid)
                res = client_run(port, ca, seconds, threads)
                res["server_cpu_s"] = bl.tree_cpu(pid) - c0
                runs[name].append(res)
                print("bench_tls: %-40s %6d handshakes in %.2f s, server CPU %.2f s, client "
                      "CPU %.2f s" % (name, res["handshakes"], res["wall_s"],
                                      res["server_cpu_s"], res["client_cpu_s"]), flush=True)

        status = bl.stop(mproc)
        mproc = None
        if status != 0:
            raise RuntimeError("mocksrv exit status %d after SIGTERM" % status)
        for dv in dovecots:
            dv.stop()
        logs = {dv.name: dv.log() for dv in dovecots}
        dovecots = []
        for n, text in logs.items():
            if "Error" in text or "Fatal" in text or "Panic" in text:
                raise RuntimeError("Dovecot (%s) logged errors:\n%s" % (n, text))

        sign1, sign_row1 = openssl_speed("ecdsap256")

        sign = max(sign0[0], sign1[0])  # the higher of the two: the harder target
        stats = {}
        for name, rs in runs.items():
            hs = sum(r["handshakes"] for r in rs)
            cpu = sum(r["server_cpu_s"] for r in rs)
            ccpu = sum(r["client_cpu_s"] for r in rs)
            stats[name] = {
                "wall": statistics.median(r["handshakes"] / r["wall_s"] for r in rs),
                "walls": [r["handshakes"] / r["wall_s"] for r in rs],
                "per_cpu": hs / cpu if cpu else float("inf"),
                "us_per": 1e6 * cpu / hs,
                "client_us_per": 1e6 * ccpu / hs,
                "hs": hs,
                "info": rs[0],
            }
        m = stats["mocksrv"]
        floor = 1.0 / (1.0 / sign + 1.0 / x25519[0])

        info = m["info"]
        lines = [
            "## TLS 1.3 full handshakes (bench_tls.py)",
            "",
            "%s; %s (at the end; %s at the start)" % (bl.now_utc(), bl.machine(), load0),
            "",
            "Client: bench_tls_client, %d threads, %d runs of %.0f s per server, interleaved; "
            "each handshake is a new TCP connection, a TLS 1.3 handshake without resumption, "
            "the +OK greeting, close. Negotiated (all servers alike): %s, %s, key share %s, "
            "%s, server key %s."
            % (threads, rounds, seconds, info["version"], info["cipher"], info["group"],
               info["signature"], info["server_key"]),
            "",
            "    %s speed -seconds 3 ecdsap256   # before: %s" % (os.path.basename(openssl_bin()),
                                                               sign_row0),
            "    %s speed -seconds 3 ecdsap256   # after:  %s" % (os.path.basename(openssl_bin()),
                                                               sign_row1),
            "    %s speed -seconds 3 ecdhx25519  # %s" % (os.path.basename(openssl_bin()), x_row),
            "    %s" % " ".join(mcmd[:-1] + ["tls-bench.yaml"]),
        ]
        if len(servers) > 1:
            lines.append("    dovecot -F -c dovecot.conf   # pop3s, ssl = required, P-256 cert; "
                         "default and service_count = 0 + process_min_avail = 2")
        lines.append("    bench_tls_client -p PORT -t %.0f -c %d -A CA" % (seconds, threads))
        lines += [
            "",
            "| server | handshakes/s (wall, median) | runs | handshakes per server-CPU-second "
            "| server CPU us/handshake | client CPU us/handshake |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, s in stats.items():
            lines.append("| %s | %.0f | %s | %.0f | %.0f | %.0f |" % (
                name, s["wall"], " ".join("%.0f" % w for w in s["walls"]), s["per_cpu"],
                s["us_per"], s["client_us_per"]))
        lines += [
            "",
            "ECDSA P-256 sign/s (openssl speed, per CPU-second): %.1f before, %.1f after; "
            "X25519 derive/s: %.1f. One signature plus one X25519 derive alone allow at most "
            "%.0f handshakes per CPU-second (%.0f%% of the sign rate)."
            % (sign0[0], sign1[0], x25519[0], floor, 100.0 * floor / sign),
            "",
        ]
        ratio = m["per_cpu"] / sign
        lines.append("Target: mocksrv handshakes per server-CPU-second >= %.0f%% of ECDSA P-256 "
                     "sign/s (%.1f): %.0f = %.1f%%, %s. Wall-clock: %.0f handshakes/s = %.1f%% "
                     "of the sign rate."
                     % (100 * TARGET, sign, m["per_cpu"], 100 * ratio,
                        "met" if ratio >= TARGET else "NOT met", m["wall"],
                        100 * m["wall"] / sign))
        for name, s in stats.items():
            if name != "mocksrv":
                lines.append("- vs %s: %.2fx the wall rate, %.2fx the handshakes per "
                             "server-CPU-second." % (name, m["wall"] / s["wall"],
                                                     m["per_cpu"] / s["per_cpu"]))
        bl.append_results("\n".join(lines))
        return 0
    except Exception:
        for dv in dovecots:
            print("bench_tls: Dovecot (%s) log:\n%s" % (dv.name, dv.log()), file=sys.stderr)
        raise
    finally:
        if mproc is not None:
            bl.stop(mproc)
        for dv in dovecots:
            dv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
