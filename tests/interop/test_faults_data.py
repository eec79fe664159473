"""End of DATA and the remaining `when` keys (fixtures/faults/smtp-data.yaml):

- command "." with reply 451 (nth: 1): the first message of each session is answered 451 and not
  stored (the spool stays empty); the session goes on and the next message is stored;
- user: a rule only for sessions where alice has authenticated;
- encrypted: false / true on a plaintext listener;
- session: "2-3" and [5, 7] (a range: 5, 6 and 7).

One server per test: the session counters start from zero in every case."""
import base64
import os
import smtplib
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (HOST, MocksrvCase, code, fault_events, fault_fixture,  # noqa: E402
                             smtp_client, wait_closed_event)

BODY1 = b"Subject: first\r\n\r\nrefused at end of data\r\n"
BODY2 = b"Subject: second\r\n\r\naccepted\r\n"


def plain(user):
    return base64.b64encode(b"\0" + user.encode() + b"\0secret").decode()


class DataTest(MocksrvCase):
    def setUp(self):
        self.srv = self.spawn(fault_fixture("smtp-data.yaml"))
        self.port = self.srv.port("smtp")

    def transaction(self, c, body):
        self.assertEqual(c.cmd("MAIL FROM:<a@client.example>"), "250 2.1.0 Ok")
        self.assertEqual(c.cmd("RCPT TO:<alice@mock.test>"), "250 2.1.5 Ok")
        self.assertEqual(code(c.cmd("DATA")), 354)
        c.send(body + b".\r\n")
        return c.reply()

    def test_end_of_data_451_not_stored_session_goes_on(self):
        with smtp_client(self.port) as c:
            c.cmd("EHLO client.example")
            self.assertEqual(self.transaction(c, BODY1), "451 4.3.0 Queue full, try later")
            self.assertEqual(c.cmd("NOOP"), "250 2.0.0 Ok")
            self.assertEqual(self.srv.spool_ids(), [])
            # the transaction is over: a new MAIL is accepted (no "nested MAIL")
            self.assertRegex(self.transaction(c, BODY2), r"^250 2\.0\.0 Ok: queued as \d{6}$")
            self.assertEqual(c.cmd("QUIT"), "221 2.0.0 Bye")
            c.wait_closed()
        [(data, env)] = self.srv.wait_messages(1)
        self.assertEqual(data, BODY2)
        self.assertEqual(env["rcpt_to"], ["alice@mock.test"])
        wait_closed_event(self.srv, 1)
        [ev] = fault_events(self.srv, "dot-451")
        self.assertEqual((ev["at"], ev["command"], ev["counters"]["match"], ev["actions"]),
                         ("command", ".", 1, ["reply"]))

    def test_end_of_data_451_with_smtplib(self):
        with smtplib.SMTP(HOST, self.port, timeout=5) as s:
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                s.sendmail("a@client.example", ["alice@mock.test"], BODY1)
            self.assertEqual(cm.exception.smtp_code, 451)
            self.assertEqual(self.srv.spool_ids(), [])
            self.assertEqual(s.noop()[0], 250)
            self.assertEqual(s.sendmail("a@client.example", ["alice@mock.test"], BODY2), {})
        # nth counts per session: a new session's first message is refused again
        with smtplib.SMTP(HOST, self.port, timeout=5) as s:
            with self.assertRaises(smtplib.SMTPDataError):
                s.sendmail("a@client.example", ["alice@mock.test"], BODY1)
        msgs = self.srv.wait_messages(1)
        self.assertEqual([d for d, _ in msgs], [BODY2])

    def test_user(self):
        with smtp_client(self.port) as c:
            c.cmd("EHLO client.example")
            self.assertEqual(c.cmd("NOOP"), "250 2.0.0 Ok")  # nobody authenticated
            self.assertEqual(code(c.cmd("AUTH PLAIN " + plain("bob"))), 235)
            self.assertEqual(c.cmd("NOOP"), "250 2.0.0 Ok")  # bob
        with smtp_client(self.port) as c:
            c.cmd("EHLO client.example")
            self.assertEqual(code(c.cmd("AUTH PLAIN " + plain("alice"))), 235)
            self.assertEqual(c.cmd("NOOP"), "250 2.0.0 hello alice")
            self.assertEqual(c.cmd("NOOP"), "250 2.0.0 hello alice")

    def test_encrypted(self):
        with smtp_client(self.port) as c:
            c.cmd("EHLO client.example")
            self.assertEqual(c.cmd("NOOP enc"), "250 2.0.0 plaintext")
            self.assertEqual(c.cmd("NOOP tlsonly"), "250 2.0.0 Ok")

    def test_session_ranges(self):
        got = []
        for _ in range(8):
            with smtp_client(self.port) as c:
                got.append(c.cmd("HELP"))
                c.cmd("QUIT")
                c.wait_closed()
        normal = got[0]
        self.assertNotIn("sessions", normal)
        two, five = "214 2.0.0 sessions two to three", "214 2.0.0 sessions five to seven"
        self.assertEqual(got, [normal, two, two, normal, five, five, five, normal])


if __name__ == "__main__":
    unittest.main()
