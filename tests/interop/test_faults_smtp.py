"""FAULTS.md example A (fixtures/faults/smtp-transactional.yaml): SMTP transactional errors, all
deterministic, as smtplib and a raw client see them.

- rcpt3-451: the 3rd RCPT of every session gets 451, the others their normal 250;
- first-auth-fails (count: run, replies with pass): the first AUTH of the run gets 454, every
  later one (same session or another) is served normally;
- slow-end-of-data: the reply to "." comes no earlier than 300 ms after it was sent;
- busy-second-session: MAIL in the 2nd connection gets 421 and then EOF (close: fin);
- expect: session 1 must follow A's sequence (EHLO, STARTTLS, EHLO, AUTH, ..., AUTH, MAIL, three
  RCPT, ..., QUIT): a client that does gets exit status 0, one that does not gets an
  expect.fail and exit status 3. Most fault tests below use a plain session 1 (no STARTTLS), so
  they expect exit status 3 too.

One server per test: the session and run counters start from zero in every case."""
import base64
import os
import smtplib
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (HOST, MocksrvCase, Wire, client_context, code,  # noqa: E402
                             fault_events, fault_fixture, smtp_client,
                             wait_closed_event)

RCPTS = ["r1@mock.test", "r2@mock.test", "r3@mock.test", "r4@mock.test", "r5@mock.test"]
BODY = b"Subject: faults A\r\n\r\nbody\r\n"
PLAIN = base64.b64encode(b"\0alice\0secret").decode()


class TransactionalTest(MocksrvCase):
    def setUp(self):
        self.srv = self.spawn(fault_fixture("smtp-transactional.yaml"))
        self.port = self.srv.port("smtp")
        # A's expect: session 1 must follow the sequence; the fault tests' session 1 does not
        # (no STARTTLS), so their run ends with an unmet expectation
        self.srv.want_status = 3

    def smtplib_client(self):
        s = smtplib.SMTP(HOST, self.port, local_hostname="client.example", timeout=5)
        self.addCleanup(s.close)
        return s

    # ---- expect: A's sequence for session 1 ----

    def session_commands(self, sid):
        return [e["line"].split(" ")[0] for e in self.srv.events()
                if e["event"] == "command" and e["session"] == sid]

    def test_client_following_the_sequence_exit_0(self):
        s = self.smtplib_client()
        s.starttls(context=client_context(self.srv.ca_file))
        # PLAIN gets 454 (first-auth-fails), smtplib falls back to LOGIN: two AUTH commands
        self.assertEqual(s.login("alice", "secret")[0], 235)
        refused = s.sendmail("a@client.example", RCPTS[:3], BODY)
        self.assertEqual(list(refused), ["r3@mock.test"])  # rcpt3-451
        s.quit()
        wait_closed_event(self.srv, 1)
        # the events also log LOGIN's password line and the end of DATA; both are payload,
        # not commands of the sequence (FAULTS.md 5)
        self.assertEqual(self.session_commands(1),
                         ["ehlo", "STARTTLS", "ehlo", "AUTH", "AUTH", "c2VjcmV0", "mail", "rcpt",
                          "rcpt", "rcpt", "data", ".", "quit"])
        self.assertEqual([e for e in self.srv.events() if e["event"] == "expect.fail"], [])
        self.srv.want_status = 0

    def test_client_skipping_starttls_exit_3(self):
        s = self.smtplib_client()
        self.assertEqual(s.login("alice", "secret")[0], 235)  # in plaintext: no STARTTLS
        s.quit()
        ev = self.srv.wait_event(lambda e: e["event"] == "expect.fail", what="expect.fail")
        self.assertEqual((ev["session"], ev["expectation"]), (1, "expect[0].sequence"))
        self.assertRegex(ev["seen"], r"^got AUTH PLAIN \S+ where STARTTLS was expected; "
                                     r"commands: ehlo client\.example, AUTH PLAIN ")
        wait_closed_event(self.srv, 1)
        self.assertEqual(self.srv.stop(), 3)
        self.assertIn("expectation not met: session 1 (smtp): expect[0].sequence: got AUTH PLAIN",
                      self.srv.stderr_text())
        # reported once: the session's end adds nothing
        self.assertEqual(len([e for e in self.srv.events() if e["event"] == "expect.fail"]), 1)

    # ---- rcpt3-451 ----

    def test_third_rcpt_gets_451_with_smtplib(self):
        s = self.smtplib_client()
        refused = s.sendmail("a@client.example", RCPTS, BODY)
        self.assertEqual(refused,
                         {"r3@mock.test": (451, b"4.3.0 Mailbox temporarily unavailable")})
        s.quit()
        [(data, env)] = self.srv.wait_messages(1)
        self.assertEqual(data, BODY)
        self.assertEqual(env["rcpt_to"], ["r1@mock.test", "r2@mock.test", "r4@mock.test",
                                          "r5@mock.test"])

    def test_third_rcpt_exact_replies_and_per_session_counter(self):
        def session():
            with smtp_client(self.port) as c:
                c.cmd("EHLO client.example")
                c.cmd("MAIL FROM:<a@client.example>")
                got = [c.cmd("RCPT TO:<%s>" % r) for r in RCPTS]
                c.cmd("RSET")
                c.cmd("MAIL FROM:<a@client.example>")  # the counter counts RCPT, not MAIL
                got.append(c.cmd("RCPT TO:<r6@mock.test>"))
                self.assertEqual(c.cmd("QUIT"), "221 2.0.0 Bye")
                c.wait_closed()
                return got

        want = ["250 2.1.5 Ok", "250 2.1.5 Ok", "451 4.3.0 Mailbox temporarily unavailable",
                "250 2.1.5 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok"]
        self.assertEqual(session(), want)
        # session 2 is busy-second-session's: MAIL gets 421; skip it with a bare connection
        with smtp_client(self.port) as c:
            self.assertEqual(c.cmd("QUIT"), "221 Bye")
            c.wait_closed()
        # session 3: the nth counter started again at 0
        self.assertEqual(session(), want)
        self.srv.wait_event(lambda e: e["event"] == "session.close" and e["session"] == 3,
                            what="session 3 closed")
        evs = fault_events(self.srv, "rcpt3-451")
        self.assertEqual([(e["session"], e["at"], e["command"], e["counters"]["match"],
                           e["counters"]["session"], e["counters"]["fired"], e["actions"])
                          for e in evs],
                         [(1, "command", "RCPT", 3, 1, 1, ["reply"]),
                          (3, "command", "RCPT", 3, 3, 2, ["reply"])])

    # ---- busy-second-session ----

    def test_second_session_mail_421_then_disconnect_smtplib(self):
        s = self.smtplib_client()
        self.assertEqual(s.sendmail("a@client.example", ["r1@mock.test"], BODY), {})
        s.quit()
        s2 = self.smtplib_client()
        self.assertEqual(s2.ehlo()[0], 250)
        self.assertEqual(s2.mail("a@client.example"), (421, b"4.3.2 System shutting down"))
        with self.assertRaises(smtplib.SMTPServerDisconnected):
            s2.noop()
        # sendmail itself reports the 421 as a refused sender (and closes): session 3 is normal
        s3 = self.smtplib_client()
        self.assertEqual(s3.sendmail("a@client.example", ["r1@mock.test"], BODY), {})
        s3.quit()
        self.assertEqual(len(self.srv.wait_messages(2)), 2)

    def test_second_session_mail_421_then_eof_raw(self):
        with smtp_client(self.port) as c:
            c.cmd("EHLO one.example")
            self.assertEqual(c.cmd("MAIL FROM:<a@client.example>"), "250 2.1.0 Ok")
            c.cmd("QUIT")
            c.wait_closed()
        w = Wire(self.port)
        self.addCleanup(w.close)
        self.assertEqual(w.reply(), "220 mock.test ESMTP mocksrv")
        self.assertEqual(w.cmd("EHLO two.example").split("\n")[0], "250-mock.test")
        w.send("MAIL FROM:<a@client.example>\r\n")
        self.assertEqual(w.take_until(b"\r\n"), b"421 4.3.2 System shutting down\r\n")
        rest, how = w.read_to_end()
        self.assertEqual((rest, how), (b"", "eof"))
        sid = 2
        ev = wait_closed_event(self.srv, sid)
        self.assertEqual(ev["reason"], "fault")
        [fe] = fault_events(self.srv, "busy-second-session")
        self.assertEqual(fe["session"], sid)
        self.assertEqual(fe["counters"]["session"], 2)
        self.assertEqual(sorted(fe["actions"]), ["close", "reply"])
        self.assertEqual(self.srv.spool_ids(), [])

    def test_sendmail_in_second_session_sees_421(self):
        with smtp_client(self.port) as c:
            c.cmd("QUIT")
            c.wait_closed()
        s = self.smtplib_client()
        with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
            s.sendmail("a@client.example", ["r1@mock.test"], BODY)
        self.assertEqual(cm.exception.smtp_code, 421)

    # ---- first-auth-fails: replies [454, pass], count: run ----

    def test_first_auth_454_then_success_same_session(self):
        s = self.smtplib_client()
        s.ehlo()
        s.user, s.password = "alice", "secret"
        with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
            s.auth("PLAIN", s.auth_plain)
        self.assertEqual(cm.exception.smtp_code, 454)
        self.assertEqual(cm.exception.smtp_error, b"4.7.0 Temporary authentication failure")
        self.assertEqual(s.auth("PLAIN", s.auth_plain)[0], 235)

    def auth_commands(self, sid):
        return [e["line"].split(" ")[:2] for e in self.srv.events()
                if e["event"] == "command" and e["session"] == sid
                and e["line"].upper().startswith("AUTH")]

    def test_first_auth_454_across_reconnects(self):
        # count: run: the replies list is walked by the run's matches, not per connection
        with smtp_client(self.port) as c:
            c.cmd("EHLO client.example")
            self.assertEqual(c.cmd("AUTH PLAIN " + PLAIN),
                             "454 4.7.0 Temporary authentication failure")
            self.assertEqual(c.cmd("QUIT"), "221 2.0.0 Bye")
            c.wait_closed()
        # session 2 (busy-second-session does not touch AUTH): the 2nd AUTH of the run = pass
        with smtp_client(self.port) as c:
            c.cmd("EHLO client.example")
            self.assertEqual(c.cmd("AUTH PLAIN " + PLAIN), "235 2.7.0 Authentication successful")
            c.cmd("QUIT")
            c.wait_closed()
        # every later one is served normally: smtplib logs in with one AUTH command
        s = self.smtplib_client()
        self.assertEqual(s.login("alice", "secret")[0], 235)
        s.quit()
        wait_closed_event(self.srv, 3)
        self.assertEqual(len(self.auth_commands(3)), 1, self.auth_commands(3))
        evs = fault_events(self.srv, "first-auth-fails")
        self.assertEqual([(e["session"], e["counters"]["match"]) for e in evs[:2]],
                         [(1, 1), (2, 2)])
        self.assertEqual(evs[0]["actions"], ["reply"])
        auths = [e for e in self.srv.events() if e["event"] == "auth"]
        self.assertEqual([(a["session"], a["ok"]) for a in auths], [(2, True), (3, True)])

    def test_smtplib_login_falls_back_after_454(self):
        # smtplib tries PLAIN (454: the first AUTH of the run), then LOGIN (pass): logged in
        s = self.smtplib_client()
        self.assertEqual(s.login("alice", "secret")[0], 235)
        s.quit()
        wait_closed_event(self.srv, 1)
        self.assertEqual([a[1] for a in self.auth_commands(1)], ["PLAIN", "LOGIN"])

    # ---- slow-end-of-data ----

    def test_end_of_data_reply_delayed(self):
        w = Wire(self.port)
        self.addCleanup(w.close)
        w.reply()
        w.cmd("EHLO client.example")
        self.assertEqual(w.cmd("MAIL FROM:<a@client.example>"), "250 2.1.0 Ok")
        self.assertEqual(w.cmd("RCPT TO:<r1@mock.test>"), "250 2.1.5 Ok")
        self.assertEqual(code(w.cmd("DATA")), 354)
        w.send(BODY + b".\r\n")
        sent = w.sent_at
        self.assertRegex(w.reply(), r"^250 2\.0\.0 Ok: queued as \d{6}$")
        self.assertGreaterEqual(w.reads[-1][0] - sent, 0.300)
        # the rule is at end-of-DATA only: DATA's 354 and other replies are not delayed
        self.assertEqual(w.cmd("QUIT"), "221 2.0.0 Bye")
        [(data, _)] = self.srv.wait_messages(1)
        self.assertEqual(data, BODY)
        [fe] = fault_events(self.srv, "slow-end-of-data")
        self.assertEqual((fe["at"], fe["command"], fe["drawn"], fe["actions"]),
                         ("command", ".", {"delay_ms": 300}, ["delay"]))


if __name__ == "__main__":
    unittest.main()
