"""Bad input and limits (SPEC 8) over raw sockets: over-long lines, binary garbage, bare LF, NUL
bytes, oversized DATA and BDAT, BDAT framing errors, too many errors, the idle timeout and the
sessions limit. Every case checks the exact reply, that the session goes on (or is closed when
the limit says so), and after each test that a NEW client can still send a message."""
import os
import random
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import MocksrvCase, code, scenario, smtp_client  # noqa: E402

HOST = "127.0.0.1"


class ServerCase(MocksrvCase):
    """One mocksrv per class; after every test a fresh smtplib client must still be served."""
    SERVE = scenario("interop.yaml")
    SERVE_PORT = "smtp"

    def tearDown(self):
        # The server still serves: a new client sends a message and it is spooled exactly.
        body = b"Subject: still alive\r\n\r\n%s\r\n" % self.id().encode()
        with smtplib.SMTP(HOST, self.port, local_hostname="after.test", timeout=5) as s:
            self.assertEqual(s.sendmail("after@client.example", ["alice@mock.test"], body), {})
        data, env = self.srv.message(self.srv.spool_ids()[-1])
        self.assertEqual(data, body)
        self.assertEqual(env["helo"], "after.test")

    def new_messages(self):
        return [self.srv.message(i) for i in self.srv.spool_ids() if i not in self.before]

    def client(self, ehlo=True):
        c = smtp_client(self.port)
        self.addCleanup(c.close)
        if ehlo:
            self.assertEqual(code(c.cmd("EHLO client.example")), 250)
        return c


class LineTest(ServerCase):
    def test_overlong_line(self):
        c = self.client()
        self.assertEqual(c.cmd("NOOP " + "x" * 600), "500 5.5.2 Error: line too long")
        self.assertEqual(c.cmd("NOOP"), "250 2.0.0 Ok")

    def test_line_length_boundary(self):
        # RFC 5321 4.5.3.1.4: 512 octets including CRLF is the limit, and it is allowed.
        c = self.client()
        self.assertEqual(c.cmd("NOOP " + "x" * 505), "250 2.0.0 Ok")  # 512 with CRLF
        self.assertEqual(c.cmd("NOOP " + "x" * 506), "500 5.5.2 Error: line too long")
        self.assertEqual(c.cmd("NOOP"), "250 2.0.0 Ok")

    def test_huge_line_in_pieces_gets_one_reply(self):
        c = self.client()
        for _ in range(10):
            c.send(b"y" * 10000)
        c.send(b"\r\nNOOP\r\n")
        self.assertEqual(c.reply(), "500 5.5.2 Error: line too long")
        self.assertEqual(c.reply(), "250 2.0.0 Ok")
        self.assertEqual(c.cmd("MAIL FROM:<a@client.example>"), "250 2.1.0 Ok")

    def test_overlong_line_pipelined_with_commands(self):
        c = self.client()
        c.send(b"MAIL FROM:<a@client.example>\r\n" + b"RCPT TO:<" + b"z" * 1000 +
               b"@mock.test>\r\nRCPT TO:<alice@mock.test>\r\nDATA\r\n")
        self.assertEqual([c.reply() for _ in range(4)], [
            "250 2.1.0 Ok", "500 5.5.2 Error: line too long", "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>"])
        self.assertEqual(code(c.cmd("Subject: x\r\n\r\nbody\r\n.")), 250)
        [(data, env)] = self.new_messages()
        self.assertEqual(env["rcpt_to"], ["alice@mock.test"])

    def test_binary_garbage(self):
        rng = random.Random(20240506)
        lines = []
        for _ in range(12):
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
            raw = raw.replace(b"\r", b"").replace(b"\n", b"") or b"\xff"
            lines.append(raw)
        c = self.client()
        c.send(b"".join(l + b"\r\n" for l in lines) + b"NOOP\r\n")
        replies = [c.reply() for _ in lines]
        for line, r in zip(lines, replies):
            self.assertRegex(r, r"^500 5\.5\.2 Error: (command not recognized|bad syntax)$",
                             "garbage %r" % line)
        self.assertEqual(c.reply(), "250 2.0.0 Ok")
        self.assertEqual(c.cmd("NOOP"), "250 2.0.0 Ok")

    def test_bare_lf_commands(self):
        c = self.client(ehlo=False)
        c.send(b"EHLO lf.example\nNOOP\n")
        self.assertEqual(c.reply().split("\n")[0], "250-mock.test")
        self.assertEqual(c.reply(), "250 2.0.0 Ok")
        c.send(b"MAIL FROM:<lf@client.example>\nRCPT TO:<alice@mock.test>\nDATA\n")
        self.assertEqual([c.reply() for _ in range(3)], [
            "250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>"])
        c.send(b"Subject: lf\r\n\r\nbody\r\n.\r\n")
        self.assertEqual(code(c.reply()), 250)
        [(data, env)] = self.new_messages()
        self.assertEqual(data, b"Subject: lf\r\n\r\nbody\r\n")
        self.assertEqual(env["helo"], "lf.example")

    def test_bare_lf_dot_does_not_end_data(self):
        # SMTP smuggling: only CRLF.CRLF ends DATA; LF.LF and CRLF.LF are message content.
        c = self.client()
        c.cmd("MAIL FROM:<a@client.example>")
        c.cmd("RCPT TO:<alice@mock.test>")
        self.assertEqual(code(c.cmd("DATA")), 354)
        c.send(b"Subject: smuggle\r\n\r\nfirst\n.\nMAIL FROM:<evil@x>\r\nend\r\n.\r\n")
        self.assertEqual(code(c.reply()), 250)
        self.assertEqual(c.cmd("NOOP"), "250 2.0.0 Ok")
        [(data, _)] = self.new_messages()
        self.assertEqual(data, b"Subject: smuggle\r\n\r\nfirst\n.\nMAIL FROM:<evil@x>\r\nend\r\n")

    def test_nul_bytes(self):
        c = self.client()
        c.send(b"NO\x00OP\r\n")
        self.assertEqual(c.reply(), "500 5.5.2 Error: bad syntax")
        c.send(b"MAIL FROM:<a\x00b@client.example>\r\n")
        self.assertEqual(c.reply(), "500 5.5.2 Error: bad syntax")
        c.send(b"\x00\r\n")
        self.assertEqual(c.reply(), "500 5.5.2 Error: bad syntax")
        self.assertEqual(c.cmd(""), "500 5.5.2 Error: bad syntax")
        self.assertEqual(c.cmd("MAIL FROM:<a@client.example>"), "250 2.1.0 Ok")

    def test_command_trickled_byte_by_byte(self):
        c = self.client()
        for b in b"MAIL FROM:<slow@client.example>\r\n":
            c.send(bytes([b]))
        self.assertEqual(c.reply(), "250 2.1.0 Ok")

    def test_bdat_wrong_length(self):
        # Declared 10, sent 20: the chunk is the first 10 bytes, the other 10 are a command.
        c = self.client()
        c.cmd("MAIL FROM:<a@client.example>")
        c.cmd("RCPT TO:<alice@mock.test>")
        c.send(b"BDAT 10 LAST\r\n0123456789GARBAGE!\r\n")
        self.assertRegex(c.reply(), r"^250 2\.0\.0 Ok: queued as \d{6}$")
        self.assertEqual(c.reply(), "500 5.5.2 Error: command not recognized")
        self.assertEqual(c.cmd("NOOP"), "250 2.0.0 Ok")
        [(data, _)] = self.new_messages()
        self.assertEqual(data, b"0123456789")

    def test_bdat_garbage_size(self):
        c = self.client()
        c.cmd("MAIL FROM:<a@client.example>")
        c.cmd("RCPT TO:<alice@mock.test>")
        for args in ("abc", "", "-5", "10 NOTLAST", "10  LAST", "1x LAST",
                     "99999999999999999999999"):
            with self.subTest(args=args):
                self.assertEqual(c.cmd(("BDAT " + args).rstrip(" ") if args else "BDAT"),
                                 "501 5.5.4 Syntax: BDAT size [LAST]")
        # The transaction survived the syntax errors.
        c.send(b"BDAT 4 LAST\r\nok\r\n")
        self.assertEqual(code(c.reply()), 250)
        [(data, _)] = self.new_messages()
        self.assertEqual(data, b"ok\r\n")

    def test_bdat_without_transaction_stays_in_step(self):
        c = self.client()
        c.send(b"BDAT 12 LAST\r\nNOOP\r\nNOOP\r\nNOOP\r\n")
        self.assertEqual(c.reply(), "503 5.5.1 Error: need MAIL command")
        self.assertEqual(c.reply(), "250 2.0.0 Ok")  # the chunk was skipped, not executed
        self.assertEqual(c.cmd("RSET"), "250 2.0.0 Ok")
        self.assertEqual(self.new_messages(), [])

    def test_data_command_with_argument(self):
        c = self.client()
        c.cmd("MAIL FROM:<a@client.example>")
        c.cmd("RCPT TO:<alice@mock.test>")
        self.assertEqual(c.cmd("DATA now"), "501 5.5.4 Syntax: DATA")
        self.assertEqual(code(c.cmd("DATA")), 354)
        self.assertEqual(code(c.cmd("x\r\n.")), 250)

    def test_peer_closes_mid_data(self):
        c = smtp_client(self.port)
        c.cmd("EHLO client.example")
        c.cmd("MAIL FROM:<a@client.example>")
        c.cmd("RCPT TO:<alice@mock.test>")
        c.cmd("DATA")
        c.send(b"Subject: cut\r\n\r\nhalf a message")
        c.close()
        ev = self.srv.wait_event(lambda e: e["event"] == "session.close"
                                 and e["reason"] == "peer-closed", what="session.close")
        self.assertIn("bytes_in", ev)
        self.assertEqual(self.new_messages(), [])


class SizeTest(ServerCase):
    SERVE = scenario("interop-small.yaml")  # smtp.max_size: 1KiB

    def start_data(self, c):
        self.assertEqual(c.cmd("MAIL FROM:<a@client.example>"), "250 2.1.0 Ok")
        self.assertEqual(c.cmd("RCPT TO:<alice@mock.test>"), "250 2.1.5 Ok")
        self.assertEqual(code(c.cmd("DATA")), 354)

    def test_ehlo_advertises_size(self):
        c = self.client(ehlo=False)
        self.assertIn("250-SIZE 1024", c.cmd("EHLO client.example").split("\n"))

    def test_data_larger_than_size(self):
        c = self.client()
        self.start_data(c)
        c.send(b"Subject: big\r\n\r\n" + (b"x" * 78 + b"\r\n") * 30 + b".\r\n")
        self.assertEqual(c.reply(),
                         "552 5.3.4 Message size exceeds fixed maximum message size")
        self.assertEqual(c.cmd("NOOP"), "250 2.0.0 Ok")
        # The next transaction in the same session works.
        self.start_data(c)
        self.assertRegex(c.cmd("Subject: small\r\n\r\nok\r\n."),
                         r"^250 2\.0\.0 Ok: queued as \d{6}$")
        [(data, _)] = self.new_messages()
        self.assertEqual(data, b"Subject: small\r\n\r\nok\r\n")

    def test_size_boundary(self):
        exact = b"S: x\r\n\r\n" + b"y" * (1024 - 10) + b"\r\n"
        self.assertEqual(len(exact), 1024)
        c = self.client()
        self.start_data(c)
        c.send(exact + b".\r\n")
        self.assertEqual(code(c.reply()), 250)
        self.start_data(c)
        c.send(b"z" + exact + b".\r\n")
        self.assertEqual(code(c.reply()), 552)
        [(data, env)] = self.new_messages()
        self.assertEqual(data, exact)
        self.assertEqual(env["size"], 1024)

    def test_declared_size_too_big(self):
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<a@client.example> SIZE=1025"),
                         "552 5.3.4 Message size exceeds fixed limit")
        self.assertEqual(c.cmd("MAIL FROM:<a@client.example> SIZE=1024"), "250 2.1.0 Ok")

    def test_bdat_larger_than_size(self):
        c = self.client()
        c.cmd("MAIL FROM:<a@client.example>")
        c.cmd("RCPT TO:<alice@mock.test>")
        c.send(b"BDAT 1000\r\n" + b"a" * 1000)
        self.assertEqual(c.reply(), "250 2.0.0 1000 bytes received")
        c.send(b"BDAT 100 LAST\r\n" + b"b" * 100)
        self.assertEqual(c.reply(), "552 5.3.4 Message size exceeds fixed maximum message size")
        self.assertEqual(c.cmd("NOOP"), "250 2.0.0 Ok")
        self.assertEqual(self.new_messages(), [])

    def test_smtplib_too_big(self):
        with smtplib.SMTP(HOST, self.port, timeout=5) as s:
            with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
                s.sendmail("a@client.example", ["alice@mock.test"], b"x" * 2000)
            self.assertEqual(cm.exception.smtp_code, 552)


class ErrorLimitTest(ServerCase):
    SERVE = scenario("interop-strict.yaml")  # limits.bad_commands: 3

    def test_too_many_errors(self):
        c = self.client()
        c.send(b"BAD1\r\nBAD2\r\nBAD3\r\nNOOP\r\n")
        self.assertEqual([c.reply() for _ in range(3)],
                         ["500 5.5.2 Error: command not recognized"] * 3)
        self.assertEqual(c.reply(), "421 4.7.0 mock.test Error: too many errors")
        self.assertEqual(c.wait_closed(), b"")  # NOOP never answered

    def test_mixed_errors_count(self):
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<unclosed"), "501 5.5.4 Syntax: MAIL FROM:<address>")
        self.assertEqual(c.cmd("NOOP"), "250 2.0.0 Ok")
        self.assertEqual(c.cmd("RCPT TO:<a@b>"), "503 5.5.1 Error: need MAIL command")
        c.send(b"x" * 700 + b"\r\n")
        self.assertEqual(c.reply(), "500 5.5.2 Error: line too long")
        self.assertEqual(c.reply(), "421 4.7.0 mock.test Error: too many errors")
        c.wait_closed()

    def test_errors_are_per_session(self):
        c = self.client()
        self.assertEqual(code(c.cmd("BAD")), 500)
        self.assertEqual(code(c.cmd("BAD")), 500)
        d = self.client()
        self.assertEqual(code(d.cmd("BAD")), 500)
        self.assertEqual(code(d.cmd("BAD")), 500)
        self.assertEqual(c.cmd("NOOP"), "250 2.0.0 Ok")
        self.assertEqual(d.cmd("QUIT"), "221 2.0.0 Bye")


class IdleTest(ServerCase):
    SERVE = scenario("interop-idle.yaml")  # limits.idle_timeout: 1s

    def test_idle_timeout(self):
        # Three silent clients at once: before EHLO, after EHLO, in the middle of DATA.
        start = time.monotonic()
        a = self.client(ehlo=False)
        b = self.client()
        d = self.client()
        d.cmd("MAIL FROM:<a@client.example>")
        d.cmd("RCPT TO:<alice@mock.test>")
        self.assertEqual(code(d.cmd("DATA")), 354)
        d.send(b"Subject: never finished\r\n\r\npartial")
        self.assertEqual(a.reply(timeout=5), "421 mock.test Error: timeout exceeded")
        self.assertEqual(b.reply(timeout=5), "421 4.4.2 mock.test Error: timeout exceeded")
        self.assertEqual(d.reply(timeout=5), "421 4.4.2 mock.test Error: timeout exceeded")
        self.assertGreaterEqual(time.monotonic() - start, 0.9)
        for c in (a, b, d):
            self.assertEqual(c.wait_closed(), b"")
        self.assertEqual(self.new_messages(), [])
        closes = [e for e in self.srv.events() if e["event"] == "session.close"]
        self.assertEqual([e["reason"] for e in closes[-3:]], ["timeout"] * 3)

    def test_activity_resets_the_timer(self):
        c = self.client()
        deadline = time.monotonic() + 1.6
        while time.monotonic() < deadline:  # traffic every 0.3 s for longer than the timeout
            self.assertEqual(c.cmd("NOOP"), "250 2.0.0 Ok")
            time.sleep(0.3)
        self.assertEqual(c.cmd("QUIT"), "221 2.0.0 Bye")


class SessionsTest(ServerCase):
    SERVE = scenario("interop-sessions.yaml")  # limits.sessions: 2

    def test_third_session_refused(self):
        a = smtp_client(self.port)
        b = smtp_client(self.port)
        self.assertEqual(a.greeting, "220 mock.test ESMTP mocksrv")
        self.assertEqual(b.greeting, "220 mock.test ESMTP mocksrv")
        with smtp_client(self.port, read_greeting=False) as c:
            self.assertEqual(c.reply(), "421 mock.test Error: too many sessions, try again later")
            self.assertEqual(c.wait_closed(), b"")
        # The two sessions are unaffected (no EHLO: replies without enhanced codes).
        self.assertEqual(a.cmd("NOOP"), "250 Ok")
        self.assertEqual(b.cmd("NOOP"), "250 Ok")
        # One leaves: a new session is accepted again.
        self.assertEqual(a.cmd("QUIT"), "221 Bye")
        a.wait_closed()
        a.close()
        with smtp_client(self.port) as c:
            self.assertEqual(c.greeting, "220 mock.test ESMTP mocksrv")
            self.assertEqual(c.cmd("QUIT"), "221 Bye")
            c.wait_closed()
        self.assertEqual(b.cmd("QUIT"), "221 Bye")
        b.wait_closed()
        b.close()

    def test_many_refused_then_served(self):
        a = smtp_client(self.port)
        b = smtp_client(self.port)
        for _ in range(5):
            with smtp_client(self.port, read_greeting=False) as c:
                self.assertEqual(code(c.reply()), 421)
                c.wait_closed()
        for c in (a, b):
            self.assertEqual(c.cmd("QUIT"), "221 Bye")
            c.wait_closed()
            c.close()


if __name__ == "__main__":
    unittest.main()
