"""Python's smtplib (a client we did not write) against mocksrv: EHLO, message bytes and
envelope in the spool, every SASL mechanism, pipelining, SMTPUTF8, BDAT, SIZE, DSN and the small
commands. Replies are checked exactly as smtp.c words them."""
import base64
import os
import random
import re
import smtplib
import sys
import threading
import unittest
from email.message import EmailMessage

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import MocksrvCase, code, crlf, mail, scenario, smtp_client  # noqa: E402

HOST = "127.0.0.1"


class SmtplibTest(MocksrvCase):
    SERVE = scenario("interop.yaml")
    SERVE_PORT = "smtp"

    def smtp(self, **kw):
        s = smtplib.SMTP(HOST, self.port, local_hostname="client.example", timeout=5, **kw)
        self.addCleanup(s.close)
        return s

    # ---- EHLO ----

    def test_ehlo_extensions(self):
        s = self.smtp()
        c, text = s.ehlo("client.example")
        self.assertEqual(c, 250)
        lines = text.decode().split("\n")
        self.assertEqual(lines[0], "mock.test")
        self.assertEqual(lines[1:], [
            "PIPELINING", "SIZE 10485760", "VRFY", "HELP",
            "AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2 OAUTHBEARER", "ENHANCEDSTATUSCODES", "8BITMIME",
            "DSN", "SMTPUTF8", "CHUNKING"])
        for ext in ("pipelining", "8bitmime", "enhancedstatuscodes", "smtputf8", "chunking",
                    "dsn"):
            self.assertTrue(s.has_extn(ext), ext)
        self.assertEqual(s.esmtp_features["size"], "10485760")
        self.assertEqual(s.esmtp_features["auth"].split(),
                         ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", "OAUTHBEARER"])
        self.assertEqual(s.quit()[0], 221)

    def test_helo_greeting_and_no_enhanced_codes(self):
        s = self.smtp()
        self.assertEqual(s.helo("old.client"), (250, b"mock.test"))
        # RFC 2034: enhanced codes only after EHLO.
        self.assertEqual(s.noop(), (250, b"Ok"))
        self.assertEqual(s.mail("a@client.example"), (250, b"Ok"))
        self.assertEqual(s.rcpt("alice@mock.test"), (250, b"Ok"))

    # ---- sendmail: exact bytes and envelope ----

    def test_sendmail_bytes_and_envelope(self):
        body = crlf(mail("simple.eml"))
        s = self.smtp()
        refused = s.sendmail("sender@client.example", ["alice@mock.test", "bob@mock.test"], body)
        self.assertEqual(refused, {})
        s.quit()
        [(data, env)] = self.new_messages()
        # smtplib stuffed ".a line", "..two dots" and "." on the wire; the spool has them back.
        self.assertEqual(data, body)
        self.assertIn(b"\r\n.a line that starts", data)
        self.assertIn(b"\r\n..two dots\r\n", data)
        self.assertIn(b"\r\n.\r\nthe line above", data)
        self.assertEqual(env["mail_from"], "sender@client.example")
        self.assertEqual(env["mail_params"], "size=%d" % len(body))
        self.assertEqual(env["rcpt_to"], ["alice@mock.test", "bob@mock.test"])
        self.assertEqual(env["rcpt_params"], ["", ""])
        self.assertEqual(env["helo"], "client.example")
        self.assertEqual(env["size"], len(body))
        self.assertIsNone(env["auth_user"])
        self.assertIs(env["tls"], False)
        self.assertEqual(env["listener"], "smtp")
        self.assertIsInstance(env["session"], int)
        self.assertIsInstance(env["received_ms"], int)

    def test_sendmail_lf_only_string_becomes_crlf(self):
        # smtplib converts a str message's bare LFs to CRLF; the spool keeps CRLF.
        s = self.smtp()
        s.sendmail("a@client.example", "alice@mock.test", "Subject: lf\n\nline1\nline2\n")
        [(data, env)] = self.new_messages()
        self.assertEqual(data, b"Subject: lf\r\n\r\nline1\r\nline2\r\n")

    def test_data_without_final_crlf(self):
        # smtplib adds CRLF before the end marker when the message does not end with one.
        s = self.smtp()
        s.sendmail("a@client.example", "alice@mock.test", b"Subject: x\r\n\r\nno newline")
        [(data, _)] = self.new_messages()
        self.assertEqual(data, b"Subject: x\r\n\r\nno newline\r\n")

    def test_8bit_body(self):
        body = "Subject: 8bit\r\n\r\ngr\u00fc\u00dfe \u2603\r\n".encode("utf-8")
        s = self.smtp()
        s.sendmail("a@client.example", "alice@mock.test", body, mail_options=["BODY=8BITMIME"])
        [(data, env)] = self.new_messages()
        self.assertEqual(data, body)
        self.assertIn("BODY=8BITMIME", env["mail_params"].split())

    # ---- AUTH ----

    def auth_with(self, mech, user="alice", password="secret", initial=True):
        s = self.smtp()
        s.ehlo()
        s.user, s.password = user, password
        method = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login,
                  "CRAM-MD5": s.auth_cram_md5}[mech]
        return s, s.auth(mech, method, initial_response_ok=initial)

    def test_login_picks_cram_md5_and_records_auth_user(self):
        s = self.smtp()
        self.assertEqual(s.login("alice", "secret"), (235, b"2.7.0 Authentication successful"))
        s.sendmail("a@client.example", "bob@mock.test", b"Subject: auth\r\n\r\nx\r\n")
        [(_, env)] = self.new_messages()
        self.assertEqual(env["auth_user"], "alice")

    def test_auth_plain(self):
        for initial in (True, False):
            with self.subTest(initial_response=initial):
                s, r = self.auth_with("PLAIN", initial=initial)
                self.assertEqual(r, (235, b"2.7.0 Authentication successful"))
                # A second AUTH in the session is refused (RFC 4954 section 4).
                self.assertEqual(s.docmd("AUTH", "PLAIN")[0], 503)

    def test_auth_login(self):
        for initial in (True, False):
            with self.subTest(initial_response=initial):
                s, r = self.auth_with("LOGIN", initial=initial)
                self.assertEqual(r, (235, b"2.7.0 Authentication successful"))
                s.sendmail("a@client.example", "alice@mock.test", b"Subject: l\r\n\r\nx\r\n")
        msgs = self.new_messages(2)
        self.assertEqual([env["auth_user"] for _, env in msgs], ["alice", "alice"])

    def test_auth_cram_md5(self):
        s, r = self.auth_with("CRAM-MD5")
        self.assertEqual(r, (235, b"2.7.0 Authentication successful"))

    def test_auth_wrong_password(self):
        for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
            with self.subTest(mech=mech):
                with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
                    self.auth_with(mech, password="wrong")
                self.assertEqual(cm.exception.smtp_code, 535)
                self.assertEqual(cm.exception.smtp_error, b"5.7.8 Error: authentication failed")

    def test_login_unknown_user(self):
        s = self.smtp()
        with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
            s.login("mallory", "secret")
        self.assertEqual(cm.exception.smtp_code, 535)

    def test_failed_auth_then_mail_has_no_auth_user(self):
        s = self.smtp()
        with self.assertRaises(smtplib.SMTPAuthenticationError):
            s.login("alice", "nope")
        s.sendmail("a@client.example", "alice@mock.test", b"Subject: anon\r\n\r\nx\r\n")
        [(_, env)] = self.new_messages()
        self.assertIsNone(env["auth_user"])

    def test_auth_cancel_and_bad_base64(self):
        with smtp_client(self.port) as c:
            c.cmd("EHLO client.example")
            self.assertEqual(c.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6")
            self.assertEqual(c.cmd("*"), "501 5.7.0 Authentication aborted")
            self.assertEqual(c.cmd("AUTH PLAIN !!!notbase64"), "501 5.5.2 Cannot decode response")
            self.assertEqual(c.cmd("AUTH GSSAPI"),
                             "504 5.5.4 Unsupported authentication mechanism")
            self.assertEqual(c.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6")
            self.assertEqual(c.cmd("A" * 13000),
                             "500 5.5.6 Authentication exchange line is too long")
            self.assertEqual(c.cmd("AUTH PLAIN ="), "501 5.5.2 Cannot decode response")
            self.assertEqual(c.cmd("MAIL FROM:<a@client.example>"), "250 2.1.0 Ok")
            self.assertEqual(c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA=="),
                             "503 5.5.1 Error: MAIL transaction in progress")
            self.assertEqual(c.cmd("NOOP"), "250 2.0.0 Ok")
        with smtp_client(self.port) as c:
            c.cmd("HELO client.example")  # AUTH is an ESMTP extension (RFC 4954)
            self.assertEqual(c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA=="),
                             "503 Error: authentication not enabled")

    def test_concurrent_clients(self):
        n = 20
        bodies = [b"Subject: concurrent %d\r\n\r\n%s\r\n" % (i, b"x" * (i * 97)) for i in range(n)]
        errors = []

        def send(i):
            try:
                with smtplib.SMTP(HOST, self.port, local_hostname="c%d.example" % i,
                                  timeout=10) as s:
                    s.sendmail("c%d@client.example" % i, ["alice@mock.test"], bodies[i])
            except Exception as e:  # reported below, in the test's thread
                errors.append((i, e))

        threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        msgs = self.new_messages(n)
        by_helo = {env["helo"]: (data, env) for data, env in msgs}
        for i in range(n):
            data, env = by_helo["c%d.example" % i]
            self.assertEqual(data, bodies[i])
            self.assertEqual(env["mail_from"], "c%d@client.example" % i)
        self.assertEqual(len({env["session"] for _, env in msgs}), n)

    def test_xoauth2_and_oauthbearer(self):
        xoauth2 = base64.b64encode(b"user=alice\x01auth=Bearer secret\x01\x01").decode()
        bearer = base64.b64encode(
            b"n,a=alice,\x01host=127.0.0.1\x01port=25\x01auth=Bearer secret\x01\x01").decode()
        for mech, payload in (("XOAUTH2", xoauth2), ("OAUTHBEARER", bearer)):
            with self.subTest(mech=mech, initial_response=True):
                with smtp_client(self.port) as c:
                    c.cmd("EHLO client.example")
                    self.assertEqual(c.cmd("AUTH %s %s" % (mech, payload)),
                                     "235 2.7.0 Authentication successful")
                    self.assertEqual(code(c.cmd("MAIL FROM:<a@client.example>")), 250)
            with self.subTest(mech=mech, initial_response=False):
                with smtp_client(self.port) as c:
                    c.cmd("EHLO client.example")
                    self.assertEqual(c.cmd("AUTH %s" % mech), "334 ")
                    self.assertEqual(c.cmd(payload), "235 2.7.0 Authentication successful")

    def test_xoauth2_bad_token(self):
        bad = base64.b64encode(b"user=alice\x01auth=Bearer wrong\x01\x01").decode()
        with smtp_client(self.port) as c:
            c.cmd("EHLO client.example")
            r = c.cmd("AUTH XOAUTH2 " + bad)
            self.assertEqual(code(r), 334)
            # The error challenge is base64 JSON (Google's XOAUTH2 protocol).
            self.assertIn(b'"status":"401"', base64.b64decode(r[4:]))
            self.assertEqual(c.cmd(""), "535 5.7.8 Error: authentication failed")
        bad = base64.b64encode(b"n,a=alice,\x01auth=Bearer wrong\x01\x01").decode()
        with smtp_client(self.port) as c:
            c.cmd("EHLO client.example")
            r = c.cmd("AUTH OAUTHBEARER " + bad)
            self.assertEqual(code(r), 334)
            self.assertIn(b'"status":"invalid_token"', base64.b64decode(r[4:]))
            self.assertEqual(c.cmd("AQ=="), "535 5.7.8 Error: authentication failed")

    # ---- pipelining ----

    def test_pipelined_batch(self):
        with smtp_client(self.port) as c:
            c.cmd("EHLO client.example")
            c.send(b"MAIL FROM:<p@client.example>\r\nRCPT TO:<alice@mock.test>\r\n"
                   b"RCPT TO:<bob@mock.test>\r\nRCPT TO:<carol@mock.test>\r\nDATA\r\n")
            # RFC 2920: the server answers the whole group, in order; mocksrv flushes once per
            # group, so on loopback the replies come in one recv.
            batch = c.recv_batch()
            self.assertEqual(batch, b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
                                    b"250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n")
            c.send(b"Subject: pipelined\r\n\r\nhi\r\n.\r\nNOOP\r\nQUIT\r\n")
            self.assertEqual(c.reply(), "250 2.0.0 Ok: queued as %06d" % self.srv.spool_ids()[-1])
            self.assertEqual(c.reply(), "250 2.0.0 Ok")
            self.assertEqual(c.reply(), "221 2.0.0 Bye")
            c.wait_closed()
        [(data, env)] = self.new_messages()
        self.assertEqual(data, b"Subject: pipelined\r\n\r\nhi\r\n")
        self.assertEqual(env["rcpt_to"], ["alice@mock.test", "bob@mock.test", "carol@mock.test"])

    def test_pipelined_errors_stay_in_order(self):
        with smtp_client(self.port) as c:
            c.cmd("EHLO client.example")
            c.send(b"RCPT TO:<early@mock.test>\r\nMAIL FROM:<a@client.example>\r\n"
                   b"RCPT TO:<>\r\nRCPT TO:<ok@mock.test>\r\nRSET\r\nDATA\r\n")
            self.assertEqual([c.reply() for _ in range(6)], [
                "503 5.5.1 Error: need MAIL command", "250 2.1.0 Ok",
                "501 5.5.4 Syntax: RCPT TO:<address>", "250 2.1.5 Ok", "250 2.0.0 Ok",
                "503 5.5.1 Error: need MAIL command"])

    def test_recipient_limit(self):
        with smtp_client(self.port) as c:
            c.cmd("EHLO client.example")
            c.send(b"MAIL FROM:<a@client.example>\r\n" +
                   b"".join(b"RCPT TO:<r%d@mock.test>\r\n" % i for i in range(1001)))
            self.assertEqual(c.reply(), "250 2.1.0 Ok")
            replies = [c.reply() for _ in range(1001)]
            self.assertEqual(replies[:1000], ["250 2.1.5 Ok"] * 1000)
            self.assertEqual(replies[1000], "452 4.5.3 Error: too many recipients")
            self.assertEqual(code(c.cmd("DATA")), 354)
            self.assertEqual(code(c.cmd("Subject: many\r\n\r\nx\r\n.")), 250)
        [(_, env)] = self.new_messages()
        self.assertEqual(len(env["rcpt_to"]), 1000)
        self.assertEqual(env["rcpt_to"][999], "r999@mock.test")

    def test_large_message_in_random_pieces(self):
        # 3 MiB of seeded random lines, some starting with dots, sent stuffed in random splits:
        # the spool must hold the exact unstuffed bytes.
        rng = random.Random(5321)
        lines = []
        size = 0
        while size < 3 * 1024 * 1024:
            n = rng.choice((0, 1, 2, 40, 76, 200, 998))
            line = bytes(rng.randrange(0x20, 0x7f) for _ in range(n))
            if rng.random() < 0.1:
                line = b"." * rng.randrange(1, 3) + line
            lines.append(line)
            size += len(line) + 2
        body = b"Subject: large\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"
        wire = re.sub(rb"(?m)^\.", b"..", body) + b".\r\n"
        with smtp_client(self.port, timeout=20) as c:
            c.cmd("EHLO client.example")
            c.cmd("MAIL FROM:<big@client.example> SIZE=%d" % len(body))
            c.cmd("RCPT TO:<alice@mock.test>")
            self.assertEqual(code(c.cmd("DATA")), 354)
            pos = 0
            while pos < len(wire):
                step = rng.choice((1, 2, 3, 7, 100, 1500, 65536))
                c.send(wire[pos:pos + step])
                pos += step
            self.assertEqual(code(c.reply()), 250)
        [(data, env)] = self.new_messages()
        self.assertEqual(len(data), len(body))
        self.assertEqual(data, body)
        self.assertEqual(env["size"], len(body))

    # ---- SMTPUTF8 ----

    def test_smtputf8_sendmail(self):
        sender, rcpt = "j\u00f6rg@client.example", "\u00e5lice@mock.test"
        body = ("From: %s\r\nTo: %s\r\nSubject: utf8\r\n\r\nhej\r\n" % (sender, rcpt)).encode()
        s = self.smtp()
        s.sendmail(sender, [rcpt], body, mail_options=["SMTPUTF8"])
        [(data, env)] = self.new_messages()
        self.assertEqual(data, body)
        self.assertEqual(env["mail_from"], sender)
        self.assertEqual(env["rcpt_to"], [rcpt])
        self.assertIn("SMTPUTF8", env["mail_params"].split())

    def test_smtputf8_send_message(self):
        m = EmailMessage()
        m["From"] = "J\u00f6rg <j\u00f6rg@client.example>"
        m["To"] = "\u00e5lice@mock.test"
        m["Subject"] = "gr\u00fc\u00dfe"
        m.set_content("hej d\u00e5\n")
        s = self.smtp()
        s.send_message(m)  # adds SMTPUTF8 by itself for the international addresses
        [(data, env)] = self.new_messages()
        self.assertEqual(env["mail_from"], "j\u00f6rg@client.example")
        self.assertEqual(env["rcpt_to"], ["\u00e5lice@mock.test"])
        self.assertIn("SMTPUTF8", env["mail_params"].split())
        self.assertIn("From: J\u00f6rg <j\u00f6rg@client.example>\r\n".encode(), data)
        self.assertIn("Subject: gr\u00fc\u00dfe\r\n".encode(), data)
        self.assertTrue(data.endswith(b"\r\n"))
        self.assertNotIn(b"\n", data.replace(b"\r\n", b""))

    def test_utf8_address_without_smtputf8(self):
        with smtp_client(self.port) as c:
            c.cmd("EHLO client.example")
            self.assertEqual(c.cmd("MAIL FROM:<j\u00f6rg@client.example>"),
                             "553 5.6.7 Must declare SMTPUTF8 to send UTF8 addresses")
            self.assertEqual(c.cmd("MAIL FROM:<a@client.example>"), "250 2.1.0 Ok")
            self.assertEqual(c.cmd("RCPT TO:<\u00e5lice@mock.test>"),
                             "553 5.6.7 Must declare SMTPUTF8 to send UTF8 addresses")
            self.assertEqual(c.cmd("RCPT TO:<alice@mock.test>"), "250 2.1.5 Ok")
        # smtplib itself refuses to send a non-ASCII address without SMTPUTF8.
        s = self.smtp()
        with self.assertRaises(UnicodeEncodeError):
            s.sendmail("j\u00f6rg@client.example", "alice@mock.test", b"x\r\n")

    # ---- BDAT (RFC 3030) ----

    def test_bdat_chunks(self):
        chunk1 = b"Subject: bdat\r\n\r\nfirst chunk\r\n.starts with a dot\r\n"
        chunk2 = b"bare LF\n and \x00 NUL and no final CRLF"
        with smtp_client(self.port) as c:
            c.cmd("EHLO client.example")
            self.assertEqual(c.cmd("MAIL FROM:<b@client.example> BODY=8BITMIME"), "250 2.1.0 Ok")
            self.assertEqual(c.cmd("RCPT TO:<alice@mock.test>"), "250 2.1.5 Ok")
            c.send(b"BDAT %d\r\n" % len(chunk1) + chunk1)
            self.assertEqual(c.reply(), "250 2.0.0 %d bytes received" % len(chunk1))
            self.assertEqual(c.cmd("DATA"), "503 5.5.1 Error: BDAT in progress")
            c.send(b"BDAT 0\r\n")
            self.assertEqual(c.reply(), "250 2.0.0 0 bytes received")
            c.send(b"BDAT %d LAST\r\n" % len(chunk2) + chunk2)
            r = c.reply()
            self.assertRegex(r, r"^250 2\.0\.0 Ok: queued as \d{6}$")
        [(data, env)] = self.new_messages()
        self.assertEqual(data, chunk1 + chunk2)  # exact: no unstuffing, no line-end repair
        self.assertEqual(env["size"], len(chunk1) + len(chunk2))
        self.assertEqual(env["mail_params"], "BODY=8BITMIME")

    def test_bdat_pipelined_with_commands(self):
        payload = b"Subject: one write\r\n\r\nbody\r\n"
        with smtp_client(self.port) as c:
            c.cmd("EHLO client.example")
            c.send(b"MAIL FROM:<b@client.example>\r\nRCPT TO:<alice@mock.test>\r\n"
                   b"BDAT %d LAST\r\n" % len(payload) + payload + b"NOOP\r\n")
            self.assertEqual(c.reply(), "250 2.1.0 Ok")
            self.assertEqual(c.reply(), "250 2.1.5 Ok")
            self.assertEqual(code(c.reply()), 250)
            self.assertEqual(c.reply(), "250 2.0.0 Ok")
        [(data, _)] = self.new_messages()
        self.assertEqual(data, payload)

    # ---- SIZE ----

    def test_size_declared_too_big(self):
        with smtp_client(self.port) as c:
            c.cmd("EHLO client.example")
            self.assertEqual(c.cmd("MAIL FROM:<a@client.example> SIZE=10485761"),
                             "552 5.3.4 Message size exceeds fixed limit")
            self.assertEqual(c.cmd("MAIL FROM:<a@client.example> SIZE=10485760"), "250 2.1.0 Ok")
            c.cmd("RSET")
            self.assertEqual(c.cmd("MAIL FROM:<a@client.example> SIZE=12x"),
                             "501 5.5.4 Bad message size syntax")
            self.assertEqual(c.cmd("MAIL FROM:<a@client.example> SIZE=99999999999999999999999"),
                             "501 5.5.4 Bad message size syntax")
        s = self.smtp()
        with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
            s.sendmail("a@client.example", "alice@mock.test", b"x" * 100,
                       mail_options=["SIZE=20000000"])
        self.assertEqual(cm.exception.smtp_code, 552)

    # ---- DSN (RFC 3461) ----

    def test_dsn_params_in_envelope(self):
        with smtp_client(self.port) as c:
            c.cmd("EHLO client.example")
            self.assertEqual(c.cmd("MAIL FROM:<a@client.example> RET=HDRS ENVID=x"),
                             "250 2.1.0 Ok")
            self.assertEqual(c.cmd("RCPT TO:<alice@mock.test> NOTIFY=SUCCESS,FAILURE "
                                   "ORCPT=rfc822;a@b"), "250 2.1.5 Ok")
            self.assertEqual(c.cmd("RCPT TO:<bob@mock.test> NOTIFY=NEVER"), "250 2.1.5 Ok")
            self.assertEqual(c.cmd("RCPT TO:<bob@mock.test> NOTIFY=NEVER,SUCCESS"),
                             "501 5.5.4 Bad NOTIFY parameter syntax")
            self.assertEqual(c.cmd("RCPT TO:<bob@mock.test> FOO=BAR"),
                             "555 5.5.4 Unsupported option: FOO")
            self.assertEqual(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>")
            self.assertEqual(code(c.cmd("Subject: dsn\r\n\r\nx\r\n.")), 250)
        [(_, env)] = self.new_messages()
        self.assertEqual(env["mail_params"], "RET=HDRS ENVID=x")
        self.assertEqual(env["rcpt_to"], ["alice@mock.test", "bob@mock.test"])
        self.assertEqual(env["rcpt_params"], ["NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b",
                                              "NOTIFY=NEVER"])

    def test_dsn_through_smtplib(self):
        s = self.smtp()
        s.sendmail("a@client.example", ["alice@mock.test"], b"Subject: d\r\n\r\nx\r\n",
                   mail_options=["RET=FULL", "ENVID=abc123"],
                   rcpt_options=["NOTIFY=DELAY", "ORCPT=rfc822;alice@mock.test"])
        [(_, env)] = self.new_messages()
        self.assertEqual(env["mail_params"].split()[1:], ["RET=FULL", "ENVID=abc123"])
        self.assertEqual(env["rcpt_params"], ["NOTIFY=DELAY ORCPT=rfc822;alice@mock.test"])

    # ---- small commands ----

    def test_rset_noop_vrfy_help_quit(self):
        s = self.smtp()
        s.ehlo("client.example")
        self.assertEqual(s.noop(), (250, b"2.0.0 Ok"))
        self.assertEqual(s.docmd("NOOP", "with an argument"), (250, b"2.0.0 Ok"))
        self.assertEqual(s.mail("a@client.example"), (250, b"2.1.0 Ok"))
        self.assertEqual(s.rcpt("alice@mock.test"), (250, b"2.1.5 Ok"))
        self.assertEqual(s.rset(), (250, b"2.0.0 Ok"))
        # RSET ended the transaction.
        self.assertEqual(s.docmd("DATA"), (503, b"5.5.1 Error: need MAIL command"))
        self.assertEqual(s.docmd("RSET", "x"), (501, b"5.5.4 Syntax: RSET"))
        self.assertEqual(s.verify("alice"), (250, b"2.1.5 alice <alice@mock.test>"))
        self.assertEqual(s.verify("<bob@mock.test>"), (250, b"2.1.5 bob <bob@mock.test>"))
        self.assertEqual(s.verify("nobody"),
                         (550, b"5.1.1 <nobody>: Recipient address rejected: User unknown"))
        c, text = s.docmd("HELP")
        self.assertEqual(c, 214)
        self.assertEqual(text, b"2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT "
                               b"VRFY HELP AUTH")
        self.assertEqual(s.quit(), (221, b"2.0.0 Bye"))

    def test_sequence_errors(self):
        with smtp_client(self.port) as c:
            self.assertEqual(c.greeting, "220 mock.test ESMTP mocksrv")
            self.assertEqual(c.cmd("MAIL FROM:<a@b>"), "503 Error: send HELO/EHLO first")
            self.assertEqual(c.cmd("EHLO"), "501 Syntax: EHLO hostname")
            c.cmd("EHLO client.example")
            self.assertEqual(c.cmd("MAIL TO:<a@b>"), "501 5.5.4 Syntax: MAIL FROM:<address>")
            self.assertEqual(c.cmd("MAIL FROM:<a@b>"), "250 2.1.0 Ok")
            self.assertEqual(c.cmd("MAIL FROM:<a@b>"), "503 5.5.1 Error: nested MAIL command")
            self.assertEqual(c.cmd("DATA"), "503 5.5.1 Error: need RCPT command")
            self.assertEqual(c.cmd("RCPT TO:<r@b> BOGUS"), "555 5.5.4 Unsupported option: BOGUS")
            self.assertEqual(c.cmd("FROB"), "500 5.5.2 Error: command not recognized")
            self.assertEqual(c.cmd("QUIT"), "221 2.0.0 Bye")
            self.assertEqual(c.wait_closed(), b"")

    def test_null_sender(self):
        s = self.smtp()
        s.ehlo()
        self.assertEqual(s.docmd("MAIL", "FROM:<>"), (250, b"2.1.0 Ok"))
        self.assertEqual(s.rcpt("alice@mock.test")[0], 250)
        self.assertEqual(s.data(b"Subject: bounce\r\n\r\nx\r\n")[0], 250)
        [(_, env)] = self.new_messages()
        self.assertEqual(env["mail_from"], "")


if __name__ == "__main__":
    unittest.main()
