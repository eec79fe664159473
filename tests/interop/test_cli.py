"""The mocksrv command line (SPEC 2): --check, usage errors, the ready line and --ready-file,
--events (file and -), --listen, --exit-after, --idle-exit, signals, `-- CMD`, the events'
fields, invalid UTF-8 in events, and the -v transcript."""
import base64
import os
import select
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (Mocksrv, binary, code, parse_event_lines, scenario,  # noqa: E402
                             smtp_client, wait_for)

HOST = "127.0.0.1"


def run(*args, timeout=10):
    return subprocess.run([binary()] + list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout)


def send_one(port, subject="cli"):
    body = b"Subject: %s\r\n\r\nbody\r\n" % subject.encode()
    with smtplib.SMTP(HOST, port, local_hostname="client.example", timeout=5) as s:
        s.sendmail("a@client.example", ["alice@mock.test"], body)
    return body


class CheckAndUsageTest(unittest.TestCase):
    def test_check_valid(self):
        path = scenario("interop.yaml")
        r = run("--check", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(), "%s: ok\n" % path)

    def test_check_default(self):
        r = run("--check")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(), "<default>: ok\n")

    def test_check_unknown_key(self):
        path = scenario("bad/unknown_key.yaml")
        r = run("--check", path)
        self.assertEqual(r.returncode, 2)
        err = r.stderr.decode()
        self.assertIn("%s:7:5: smtp.max_sizee: unknown key" % path, err)
        self.assertIn('did you mean "max_size"', err)
        self.assertEqual(r.stdout, b"")

    def test_check_syntax_error(self):
        r = run("--check", scenario("bad/syntax.yaml"))
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr.decode(), r"syntax\.yaml:\d+:\d+: ")

    def test_check_refuses_what_start_refuses_in_listen(self):
        # --check answers as a start would: an IMAP listener or an unknown name is exit 2
        for spec, words in (("imap=0", "IMAP is not served"), ("nosuch=0", "nosuch")):
            with self.subTest(spec=spec):
                r = run("--check", "--listen", spec)
                self.assertEqual(r.returncode, 2, r.stdout)
                self.assertEqual(r.stdout, b"")
                self.assertIn(words, r.stderr.decode())
        r = run("--check", "--listen", "pop3=0")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_bad_scenario_never_starts(self):
        # Without --check too: exit 2, no ready line (SPEC 8: never half-configured).
        r = run("--ephemeral", scenario("bad/range.yaml"))
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stdout, b"")
        self.assertRegex(r.stderr.decode(), r"range\.yaml:\d+:\d+: limits\.smtp_line_length")

    def test_missing_scenario_file(self):
        r = run("--check", "/nonexistent/x.yaml")
        self.assertEqual(r.returncode, 2)
        self.assertIn("/nonexistent/x.yaml", r.stderr.decode())

    def test_usage_errors(self):
        cases = [(["--bogus"], "unknown option --bogus"),
                 (["--spool"], "--spool needs an argument"),
                 (["--exit-after", "x"], '--exit-after: bad count "x"'),
                 (["--idle-exit", "-1"], "--idle-exit"),
                 (["a.yaml", "b.yaml"], 'unexpected argument "b.yaml"'),
                 (["--"], "-- needs a command")]
        for args, want in cases:
            with self.subTest(args=args):
                r = run(*args)
                self.assertEqual(r.returncode, 2)
                self.assertIn(want, r.stderr.decode())
                self.assertEqual(r.stdout, b"")

    def test_version_and_help(self):
        r = run("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.decode(), r"^mocksrv \d+\.\d+\.\d+\n$")
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        self.assertTrue(r.stdout.decode().startswith("usage: mocksrv "))
        for opt in ("--listen", "--ephemeral", "--ready-file", "--events", "--spool",
                    "--check", "--exit-after", "--idle-exit"):
            self.assertIn(opt, r.stdout.decode())

    def test_runtime_failures_exit_1(self):
        with tempfile.NamedTemporaryFile() as f:
            r = run("--ephemeral", "--spool", f.name)
            self.assertEqual(r.returncode, 1)
            self.assertIn(f.name, r.stderr.decode())
            self.assertEqual(r.stdout, b"")
        busy = socket.socket()
        busy.bind((HOST, 0))
        busy.listen(1)
        try:
            r = run("--listen", "smtp=127.0.0.1:%d" % busy.getsockname()[1])
            self.assertEqual(r.returncode, 1)
            self.assertIn("cannot listen", r.stderr.decode())
            self.assertEqual(r.stdout, b"")
        finally:
            busy.close()


class ReadyTest(unittest.TestCase):
    def test_ready_line(self):
        with Mocksrv(scenario("interop.yaml")) as srv:
            ready = srv.ready
            self.assertEqual(ready["event"], "ready")
            self.assertEqual(ready["pid"], srv.proc.pid)
            self.assertRegex(ready["version"], r"^\d+\.\d+\.\d+$")
            self.assertEqual(ready["seed"], 7)  # from the scenario
            self.assertEqual(ready["spool"], srv.spool_dir)
            self.assertIn("ca_file", ready)
            [l] = ready["listeners"]
            self.assertEqual({k: l[k] for k in ("name", "protocol", "tls", "host")},
                             {"name": "smtp", "protocol": "smtp", "tls": "none",
                              "host": "127.0.0.1"})
            self.assertGreater(l["port"], 0)
            # Ready means accepting.
            with smtp_client(l["port"]) as c:
                self.assertEqual(c.greeting, "220 mock.test ESMTP mocksrv")
        self.assertEqual(srv.returncode, 0)

    def test_seed_option(self):
        with Mocksrv(scenario("interop.yaml"), args=["--seed", "12345"]) as srv:
            self.assertEqual(srv.ready["seed"], 12345)

    def test_ready_file(self):
        with Mocksrv(scenario("interop.yaml"), ready_file=True) as srv:
            self.assertEqual(srv.ready["pid"], srv.proc.pid)
            self.assertEqual(send_one(srv.port()), srv.wait_messages(1)[0][0])
            with open(srv.ready_file, "rb") as f:
                self.assertEqual(f.read().count(b"\n"), 1)
            self.assertFalse(os.path.exists(srv.ready_file + ".tmp"))
        self.assertEqual(srv.returncode, 0)
        self.assertEqual(srv.stdout_rest, b"")  # nothing on stdout

    def test_ready_fd(self):
        r, w = os.pipe()
        proc = subprocess.Popen([binary(), "--ephemeral", scenario("interop.yaml"),
                                 "--ready-fd", str(w)], pass_fds=(w,), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.close(w)
        try:
            data = b""
            deadline = time.monotonic() + 10
            while not data.endswith(b"\n"):
                left = deadline - time.monotonic()
                self.assertGreater(left, 0, "no ready line on --ready-fd")
                ready, _, _ = select.select([r], [], [], left)
                if ready:
                    chunk = os.read(r, 4096)
                    self.assertNotEqual(chunk, b"", "--ready-fd closed before the ready line")
                    data += chunk
            [ready] = parse_event_lines(data)
            self.assertEqual(ready["event"], "ready")
            self.assertEqual(ready["pid"], proc.pid)
            # mocksrv closes the descriptor after the line: the reader sees EOF.
            self.assertEqual(os.read(r, 4096), b"")
            with smtp_client(ready["listeners"][0]["port"]) as c:
                self.assertEqual(code(c.greeting), 220)
        finally:
            os.close(r)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(out, b"")

    def test_listen_override_and_add(self):
        # No --ephemeral: the default scenario's smtp is on 3025; --listen moves it to port 0
        # and adds the standard lmtp listener.
        with Mocksrv(None, ephemeral=False,
                     args=["--listen", "smtp=127.0.0.1:0", "--listen", "lmtp=0"]) as srv:
            smtp, lmtp = srv.listener("smtp"), srv.listener("lmtp")
            self.assertNotIn(smtp["port"], (0, 3025))
            self.assertEqual(smtp["host"], "127.0.0.1")
            self.assertEqual(lmtp["protocol"], "lmtp")
            self.assertNotIn(lmtp["port"], (0, 3024))
            with smtp_client(smtp["port"]) as c:
                self.assertEqual(c.greeting, "220 localhost ESMTP mocksrv")
            with smtp_client(lmtp["port"]) as c:
                self.assertEqual(c.greeting, "220 localhost LMTP mocksrv")
                self.assertEqual(code(c.cmd("LHLO client.example")), 250)
        self.assertEqual(srv.returncode, 0)

    def test_listen_unknown_name(self):
        r = run("--ephemeral", "--listen", "nosuch=0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--listen nosuch", r.stderr.decode())
        self.assertEqual(r.stdout, b"")

    def test_events_on_stdout(self):
        with Mocksrv(scenario("interop.yaml"), events=False, args=["--events", "-"]) as srv:
            self.assertEqual(srv.ready["event"], "ready")
            send_one(srv.port())
            srv.wait_messages(1)
        self.assertEqual(srv.returncode, 0)
        events = parse_event_lines(srv.stdout_rest)
        names = [e["event"] for e in events]
        self.assertEqual(names[0], "session.open")
        for want in ("command", "reply", "message", "session.close"):
            self.assertIn(want, names)
        self.assertNotIn("ready", names)  # the ready line came first, once


class LifecycleTest(unittest.TestCase):
    def test_exit_after(self):
        with Mocksrv(scenario("interop.yaml"), args=["--exit-after", "2"]) as srv:
            with smtp_client(srv.port()) as a, smtp_client(srv.port()) as b:
                self.assertEqual(a.cmd("QUIT"), "221 Bye")
                a.wait_closed()
                # One session ended, one still open: still running.
                self.assertEqual(b.cmd("NOOP"), "250 Ok")
                self.assertIsNone(srv.proc.poll())
                b.cmd("QUIT")
            self.assertEqual(srv.wait(5), 0)

    def test_exit_after_one_message(self):
        with Mocksrv(scenario("interop.yaml"), args=["--exit-after", "1"]) as srv:
            body = send_one(srv.port())
            self.assertEqual(srv.wait(5), 0)
            [(data, _)] = [srv.message(i) for i in srv.spool_ids()]
            self.assertEqual(data, body)

    def test_idle_exit(self):
        start = time.monotonic()
        with Mocksrv(scenario("interop.yaml"), args=["--idle-exit", "0.5"]) as srv:
            self.assertEqual(srv.wait(5), 0)
        self.assertGreaterEqual(time.monotonic() - start, 0.45)

    def test_idle_exit_waits_for_open_sessions(self):
        with Mocksrv(scenario("interop.yaml"), args=["--idle-exit", "0.3"]) as srv:
            with smtp_client(srv.port()) as c:
                held_until = time.monotonic() + 0.9
                while time.monotonic() < held_until:  # a silent open session for 3x idle-exit
                    self.assertIsNone(srv.proc.poll(), "exited with a session open")
                    time.sleep(0.05)
                self.assertEqual(c.cmd("NOOP"), "250 Ok")
                c.cmd("QUIT")
            self.assertEqual(srv.wait(5), 0)

    def test_sigterm_with_open_session(self):
        with Mocksrv(scenario("interop.yaml")) as srv:
            c = smtp_client(srv.port())
            d = smtp_client(srv.port())
            self.addCleanup(c.close)
            self.addCleanup(d.close)
            c.cmd("EHLO client.example")
            d.cmd("EHLO client.example")
            d.cmd("MAIL FROM:<a@client.example>")
            d.cmd("RCPT TO:<alice@mock.test>")
            self.assertEqual(code(d.cmd("DATA")), 354)
            d.send(b"Subject: interrupted\r\n\r\nhalf")
            srv.signal(signal.SIGTERM)
            self.assertEqual(c.reply(), "421 4.3.2 mock.test Service shutting down")
            self.assertEqual(d.reply(), "421 4.3.2 mock.test Service shutting down")
            self.assertEqual(c.wait_closed(), b"")
            self.assertEqual(d.wait_closed(), b"")
            self.assertEqual(srv.wait(5), 0)
            self.assertEqual(srv.spool_ids(), [])
            closes = [e for e in srv.events() if e["event"] == "session.close"]
            self.assertEqual([e["reason"] for e in closes], ["shutdown", "shutdown"])
        self.assertFalse(srv.killed)

    def test_sigterm_races_with_client_bytes(self):
        # SIGTERM arriving together with client bytes (a partial command line, or part of a
        # DATA body) must still end the session with 421 4.3.2 and let mocksrv exit 0. The
        # race is timing-dependent, so it is tried several times; the first miss fails.
        for mode in ("data", "line"):
            for attempt in range(20):
                with self.subTest(mode=mode, attempt=attempt):
                    self.sigterm_race_once(mode)

    def sigterm_race_once(self, mode):
        srv = Mocksrv(scenario("interop.yaml")).start()
        try:
            with smtp_client(srv.port()) as c:
                c.cmd("EHLO client.example")
                if mode == "data":
                    c.cmd("MAIL FROM:<a@client.example>")
                    c.cmd("RCPT TO:<alice@mock.test>")
                    self.assertEqual(code(c.cmd("DATA")), 354)
                    c.send(b"Subject: race\r\n\r\nhalf a body")
                else:
                    c.send(b"NOOP no line end yet")
                srv.signal(signal.SIGTERM)
                try:
                    reply = c.reply(timeout=3)
                except AssertionError:
                    reply = None
            self.assertEqual(reply, "421 4.3.2 mock.test Service shutting down",
                             "SIGTERM with client bytes in flight (%s): no 421" % mode)
        finally:
            rc = srv.stop(timeout=3)
            srv.cleanup()
        self.assertFalse(srv.killed, "mocksrv hung after SIGTERM and was killed")
        self.assertEqual(rc, 0)

    def test_sigint(self):
        with Mocksrv(scenario("interop.yaml")) as srv:
            with smtp_client(srv.port()) as c:
                srv.signal(signal.SIGINT)
                self.assertEqual(c.reply(), "421 mock.test Service shutting down")
            self.assertEqual(srv.wait(5), 0)

    def test_sighup_keeps_serving(self):
        with Mocksrv(scenario("interop.yaml")) as srv:
            srv.signal(signal.SIGHUP)
            # Still serving after the signal has been handled.
            body = send_one(srv.port())
            self.assertEqual(srv.wait_messages(1)[0][0], body)
            self.assertIsNone(srv.proc.poll())
        self.assertEqual(srv.returncode, 0)


class CommandTest(unittest.TestCase):
    def test_cmd_env_and_exit_status(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "env.txt")
            script = ('echo "$MOCKSRV_SMTP_HOST $MOCKSRV_SMTP_PORT $MOCKSRV_SPOOL '
                      '$MOCKSRV_EVENTS" > %s; exit 7' % out)
            with Mocksrv(scenario("interop.yaml"), cmd=["sh", "-c", script]) as srv:
                self.assertEqual(srv.wait(10), 7)
                with open(out) as f:
                    host, port, spool, events = f.read().split()
                self.assertEqual(host, "127.0.0.1")
                self.assertEqual(int(port), srv.port("smtp"))
                self.assertEqual(spool, srv.spool_dir)
                self.assertEqual(events, srv.events_path)

    def test_cmd_talks_to_server(self):
        client = ("import os, smtplib\n"
                  "s = smtplib.SMTP(os.environ['MOCKSRV_SMTP_HOST'],"
                  " int(os.environ['MOCKSRV_SMTP_PORT']), timeout=5)\n"
                  "s.sendmail('cmd@client.example', ['alice@mock.test'],"
                  " b'Subject: from CMD\\r\\n\\r\\nhi\\r\\n')\n"
                  "s.quit()\n")
        with Mocksrv(scenario("interop.yaml"), cmd=[sys.executable, "-c", client]) as srv:
            self.assertEqual(srv.wait(10), 0, srv.stderr_text())
            [(data, env)] = [srv.message(i) for i in srv.spool_ids()]
            self.assertEqual(data, b"Subject: from CMD\r\n\r\nhi\r\n")
            self.assertEqual(env["mail_from"], "cmd@client.example")

    def test_cmd_not_found(self):
        with Mocksrv(scenario("interop.yaml"), cmd=["/nonexistent/cmd"]) as srv:
            self.assertEqual(srv.wait(10), 127)

    def test_cmd_env_names(self):
        # MOCKSRV_<NAME>_PORT: the name upper-cased, '-' to '_'.
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "dash.yaml")
            with open(path, "w") as f:
                f.write("version: 1\nlisteners:\n  lmtp-in: { protocol: lmtp, port: 0 }\n"
                        "  Mx_2: { protocol: smtp, port: 0 }\n")
            out = os.path.join(tmp, "env.txt")
            script = 'echo "$MOCKSRV_LMTP_IN_PORT $MOCKSRV_MX_2_PORT" > %s' % out
            with Mocksrv(path, cmd=["sh", "-c", script]) as srv:
                self.assertEqual(srv.wait(10), 0)
                with open(out) as f:
                    self.assertEqual(f.read().split(),
                                     [str(srv.port("lmtp-in")), str(srv.port("Mx_2"))])


class EventsTest(unittest.TestCase):
    def test_session_events(self):
        with Mocksrv(scenario("interop.yaml")) as srv:
            c = smtp_client(srv.port(), read_greeting=False)
            sent = received = b""

            def exchange(line):
                nonlocal sent, received
                c.send(line + b"\r\n")
                sent += line + b"\r\n"
                r = c.reply()
                received += b"".join(l.encode() + b"\r\n" for l in r.split("\n"))
                return r

            g = c.reply()
            received += g.encode() + b"\r\n"
            peer = "%s:%d" % c.sock.getsockname()
            exchange(b"EHLO client.example")
            exchange(b"AUTH PLAIN " + base64.b64encode(b"\0alice\0secret"))
            exchange(b"MAIL FROM:<a@client.example>")
            exchange(b"RCPT TO:<alice@mock.test>")
            exchange(b"DATA")
            exchange(b"Subject: ev\r\n\r\nx\r\n.")
            self.assertEqual(exchange(b"QUIT"), "221 2.0.0 Bye")
            c.wait_closed()
            c.close()
            srv.wait_event(lambda e: e["event"] == "session.close", what="session.close")
            events = srv.events()
        self.assertEqual(srv.returncode, 0)

        for e in events:
            self.assertIsInstance(e["t"], (int, float))
            self.assertGreaterEqual(e["t"], 0)
            self.assertEqual(e["session"], 1)
            self.assertEqual(e["listener"], "smtp")
        ts = [e["t"] for e in events]
        self.assertEqual(ts, sorted(ts))
        names = [e["event"] for e in events]
        self.assertEqual(names[0], "session.open")
        self.assertEqual(names[-1], "session.close")
        self.assertEqual(events[0]["peer"], peer)
        self.assertEqual(events[0]["protocol"], "smtp")
        commands = [e["line"] for e in events if e["event"] == "command"]
        self.assertEqual(commands, [
            "EHLO client.example", "AUTH PLAIN AGFsaWNlAHNlY3JldA==",
            "MAIL FROM:<a@client.example>", "RCPT TO:<alice@mock.test>", "DATA", ".", "QUIT"])
        replies = [e["lines"] for e in events if e["event"] == "reply"]
        self.assertEqual(replies[0], ["220 mock.test ESMTP mocksrv"])
        self.assertEqual(replies[1][0], "250-mock.test")
        self.assertEqual(replies[1][-1], "250 CHUNKING")
        self.assertEqual(replies[2:], [
            ["235 2.7.0 Authentication successful"], ["250 2.1.0 Ok"], ["250 2.1.5 Ok"],
            ["354 End data with <CR><LF>.<CR><LF>"], ["250 2.0.0 Ok: queued as 000001"],
            ["221 2.0.0 Bye"]])
        [auth] = [e for e in events if e["event"] == "auth"]
        self.assertEqual((auth["user"], auth["mechanism"], auth["ok"]), ("alice", "PLAIN", True))
        [msg] = [e for e in events if e["event"] == "message"]
        self.assertEqual(msg["id"], 1)
        self.assertEqual(msg["from"], "a@client.example")
        self.assertEqual(msg["to"], ["alice@mock.test"])
        self.assertEqual(msg["size"], len(b"Subject: ev\r\n\r\nx\r\n"))
        self.assertEqual(msg["auth_user"], "alice")
        self.assertEqual(msg["spool"], os.path.join(srv.spool_dir, "000001.eml"))
        # The message is stored (event emitted) before the 250 that announces it goes out.
        queued = [i for i, e in enumerate(events)
                  if e["event"] == "reply" and "queued as" in e["lines"][0]]
        self.assertEqual(len(queued), 1)
        self.assertLess(names.index("message"), queued[0])
        close = events[-1]
        self.assertEqual(close["reason"], "quit")
        self.assertEqual(close["bytes_in"], len(sent))
        self.assertEqual(close["bytes_out"], len(received))

    def test_invalid_utf8_is_escaped(self):
        with Mocksrv(scenario("interop.yaml")) as srv:
            with smtp_client(srv.port()) as c:
                c.send(b"NOOP \xff\xfe\xc3(\r\n")
                self.assertEqual(c.reply(), "250 Ok")
                c.send(b"VRFY \xff\xc0\xaf\r\n")
                self.assertEqual(code(c.reply()), 550)
                c.send(b"NO\x00OP\r\n")
                self.assertEqual(code(c.reply()), 500)
                c.send("NOOP gr\u00fc\u00df \u2603\r\n".encode())
                self.assertEqual(c.reply(), "250 Ok")
                c.cmd("QUIT")
                c.wait_closed()
            srv.wait_event(lambda e: e["event"] == "session.close", what="session.close")
            events = srv.events()  # fails if any line is not valid JSON
            with open(srv.events_path, "rb") as f:
                f.read().decode("utf-8")  # the file as a whole is valid UTF-8
        commands = [e["line"] for e in events if e["event"] == "command"]
        self.assertEqual(commands, ["NOOP \\xFF\\xFE\\xC3(", "VRFY \\xFF\\xC0\\xAF",
                                    "NO\\x00OP", "NOOP gr\u00fc\u00df \u2603", "QUIT"])
        replies = [e["lines"] for e in events if e["event"] == "reply"]
        # client bytes echoed in a reply are made printable ASCII (RFC 5321 reply text)
        self.assertIn(["550 <???>: Recipient address rejected: User unknown"], replies)


class VerboseTest(unittest.TestCase):
    def session(self, srv):
        with smtp_client(srv.port()) as c:
            c.cmd("EHLO client.example")
            c.cmd("NOOP")
            c.cmd("QUIT")
            c.wait_closed()

    def test_verbose_transcript(self):
        with Mocksrv(scenario("interop.yaml"), verbose=True) as srv:
            self.session(srv)
            wait_for(lambda: "quit" in srv.stderr_text(), what="the transcript's close line")
        err = srv.stderr_text()
        for pattern in (r"\[\s*1 smtp\] \* connected", r"\[\s*1 smtp\] > 220 mock.test ESMTP",
                        r"\[\s*1 smtp\] < EHLO client\.example", r"\[\s*1 smtp\] < NOOP",
                        r"\[\s*1 smtp\] > 250 2\.0\.0 Ok", r"\[\s*1 smtp\] < QUIT",
                        r"\[\s*1 smtp\] > 221 2\.0\.0 Bye", r"\[\s*1 smtp\] \* quit"):
            self.assertRegex(err, pattern)
        self.assertNotIn("\x1b[", err)  # not a TTY, and NO_COLOR

    def test_default_and_quiet_have_no_transcript(self):
        for args in ([], ["-q"]):
            with self.subTest(args=args):
                with Mocksrv(scenario("interop.yaml"), args=args) as srv:
                    self.session(srv)
                self.assertEqual(srv.returncode, 0)
                self.assertNotIn("EHLO", srv.stderr_text())
        self.assertEqual(srv.stderr_text(), "")  # -q: errors only


if __name__ == "__main__":
    unittest.main()
