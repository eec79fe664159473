"""LMTP (RFC 2033) with Python's smtplib.LMTP and a raw socket: LHLO, one reply per recipient
after DATA and after BDAT LAST, EHLO/HELO refused, exact spooled bytes and envelope."""
import os
import smtplib
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import MocksrvCase, scenario, smtp_client  # noqa: E402

HOST = "127.0.0.1"


class LmtpTest(MocksrvCase):
    SERVE = scenario("interop-lmtp.yaml")
    SERVE_PORT = "lmtp"

    def lmtp(self):
        s = smtplib.LMTP(HOST, self.port, local_hostname="client.example", timeout=5)
        self.addCleanup(s.close)
        return s

    def test_ready_line_protocol(self):
        self.assertEqual(self.srv.listener("lmtp")["protocol"], "lmtp")
        self.assertEqual(self.srv.listener("smtp")["protocol"], "smtp")

    def test_lhlo_and_single_recipient(self):
        s = self.lmtp()
        c, text = s.ehlo()  # smtplib.LMTP sends LHLO
        self.assertEqual(c, 250)
        self.assertEqual(text.decode().split("\n")[0], "mock.test")
        self.assertTrue(s.has_extn("pipelining"))
        self.assertEqual(s.esmtp_features["size"], "1024")
        body = b"Subject: lmtp\r\n\r\n.dot line\r\nbye\r\n"
        self.assertEqual(s.sendmail("a@client.example", ["alice@mock.test"], body), {})
        self.assertEqual(s.quit(), (221, b"2.0.0 Bye"))
        [(data, env)] = self.new_messages()
        self.assertEqual(data, body)
        self.assertEqual(env["helo"], "client.example")
        self.assertEqual(env["listener"], "lmtp")
        self.assertEqual(env["rcpt_to"], ["alice@mock.test"])

    def test_one_reply_per_recipient_smtplib(self):
        # smtplib.LMTP reads one reply after DATA; the others are read with getreply(), which is
        # how a Python LMTP client collects per-recipient results.
        s = self.lmtp()
        s.ehlo()
        rcpts = ["alice@mock.test", "bob@mock.test", "nobody@mock.test"]
        self.assertEqual(s.mail("a@client.example")[0], 250)
        for r in rcpts:
            self.assertEqual(s.rcpt(r)[0], 250)
        first = s.data(b"Subject: three\r\n\r\nx\r\n")
        results = [first] + [s.getreply() for _ in rcpts[1:]]
        msg_id = self.srv.spool_ids()[-1]
        self.assertEqual(results, [
            (250, ("2.0.0 <%s> Ok: queued as %06d" % (r, msg_id)).encode()) for r in rcpts])
        # The session is in step: nothing extra was left unread.
        self.assertEqual(s.noop(), (250, b"2.0.0 Ok"))
        [(data, env)] = self.new_messages()
        self.assertEqual(data, b"Subject: three\r\n\r\nx\r\n")
        self.assertEqual(env["rcpt_to"], rcpts)

    def test_raw_pipelined_replies_per_recipient(self):
        with smtp_client(self.port) as c:
            self.assertEqual(c.greeting, "220 mock.test LMTP mocksrv")
            self.assertEqual(c.cmd("EHLO client.example"), "500 Error: command not recognized")
            self.assertEqual(c.cmd("HELO client.example"), "500 Error: command not recognized")
            self.assertEqual(c.cmd("MAIL FROM:<a@client.example>"),
                             "503 Error: send LHLO first")
            self.assertEqual(c.cmd("LHLO client.example").split("\n")[0], "250-mock.test")
            self.assertEqual(c.cmd("EHLO client.example"),
                             "500 5.5.2 Error: command not recognized")
            c.send(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<alice@mock.test>\r\n"
                   b"RCPT TO:<bob@mock.test>\r\nDATA\r\n")
            self.assertEqual([c.reply() for _ in range(4)], [
                "250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok",
                "354 End data with <CR><LF>.<CR><LF>"])
            c.send(b"Subject: raw\r\n\r\nbody\r\n.\r\n")
            replies = [c.reply(), c.reply()]
            msg_id = self.srv.spool_ids()[-1]
            self.assertEqual(replies, [
                "250 2.0.0 <alice@mock.test> Ok: queued as %06d" % msg_id,
                "250 2.0.0 <bob@mock.test> Ok: queued as %06d" % msg_id])
            self.assertEqual(c.cmd("HELP"), "214 2.0.0 Commands: LHLO MAIL RCPT DATA BDAT RSET "
                                            "NOOP QUIT VRFY HELP AUTH")
            self.assertEqual(c.cmd("QUIT"), "221 2.0.0 Bye")
        [(data, env)] = self.new_messages()
        self.assertEqual(data, b"Subject: raw\r\n\r\nbody\r\n")
        self.assertEqual(env["rcpt_to"], ["alice@mock.test", "bob@mock.test"])

    def test_bdat_last_replies_per_recipient(self):
        payload = b"Subject: chunked\r\n\r\nlmtp bdat\r\n"
        with smtp_client(self.port) as c:
            c.cmd("LHLO client.example")
            c.cmd("MAIL FROM:<a@client.example>")
            c.cmd("RCPT TO:<alice@mock.test>")
            c.cmd("RCPT TO:<bob@mock.test>")
            c.send(b"BDAT %d LAST\r\n" % len(payload) + payload)
            replies = [c.reply(), c.reply()]
            msg_id = self.srv.spool_ids()[-1]
            self.assertEqual(replies, [
                "250 2.0.0 <alice@mock.test> Ok: queued as %06d" % msg_id,
                "250 2.0.0 <bob@mock.test> Ok: queued as %06d" % msg_id])
            self.assertEqual(c.cmd("NOOP"), "250 2.0.0 Ok")
        [(data, _)] = self.new_messages()
        self.assertEqual(data, payload)

    def test_too_big_rejected_per_recipient(self):
        with smtp_client(self.port) as c:
            c.cmd("LHLO client.example")
            c.cmd("MAIL FROM:<a@client.example>")
            c.cmd("RCPT TO:<alice@mock.test>")
            c.cmd("RCPT TO:<bob@mock.test>")
            c.cmd("DATA")
            c.send(b"Subject: big\r\n\r\n" + b"x" * 2000 + b"\r\n.\r\n")
            self.assertEqual([c.reply(), c.reply()], [
                "552 5.3.4 <alice@mock.test> Message size exceeds fixed maximum message size",
                "552 5.3.4 <bob@mock.test> Message size exceeds fixed maximum message size"])
            self.assertEqual(c.cmd("NOOP"), "250 2.0.0 Ok")
        self.new_messages(0)

    def test_smtp_listener_refuses_lhlo(self):
        with smtp_client(self.srv.port("smtp")) as c:
            self.assertEqual(c.greeting, "220 mock.test ESMTP mocksrv")
            self.assertEqual(c.cmd("LHLO client.example"), "500 Error: command not recognized")


if __name__ == "__main__":
    unittest.main()
