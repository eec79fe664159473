"""SMTP -> POP3 round trip through mocksrv's shared store: a message sent with smtplib to alice is
retrieved with poplib unchanged (the bytes smtplib put in DATA, un-stuffed, are the bytes RETR
gives back, and the spool agrees); several recipients each get it; a POP3 session keeps its
snapshot while mail arrives (RFC 1939 numbering is fixed for a session) and the next one sees it;
DELE + QUIT removes it again."""
import os
import poplib
import smtplib
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import MocksrvCase, scenario  # noqa: E402

HOST = "127.0.0.1"
N_ALICE = 7  # messages in alice's INBOX from pop3-interop.yaml
UIDVALIDITY = 1700000000

MESSAGE = (
    b"From: Sender <sender@client.example>\r\n"
    b"To: Alice <alice@mock.test>\r\n"
    b"Subject: round trip\r\n"
    b"Message-ID: <roundtrip-1@client.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Hello Alice,\r\n"
    b".\r\n"
    b"..two dots\r\n"
    b".one dot\r\n"
    b"trailing blanks  \r\n"
    + "gr\u00fc\u00dfe \u2603\r\n".encode("utf-8")
    + b"x" * 900 + b"\r\n"
    b"\r\n"
    b"Bye.\r\n")


class RoundTripTest(MocksrvCase):
    def setUp(self):
        self.srv = self.spawn(scenario("pop3-interop.yaml"))

    def send(self, rcpts, data=MESSAGE, **kw):
        s = smtplib.SMTP(HOST, self.srv.port("smtp"), local_hostname="client.example", timeout=5)
        try:
            self.assertEqual(s.sendmail("sender@client.example", rcpts, data, **kw), {})
            s.quit()
        finally:
            s.close()

    def pop(self, user="alice"):
        p = poplib.POP3(HOST, self.srv.port("pop3"), timeout=5)
        self.addCleanup(p.close)
        p.user(user)
        self.assertTrue(p.pass_("secret" if user != "carol" else "").startswith(b"+OK Logged in"))
        return p

    @staticmethod
    def retr(p, n):
        return b"\r\n".join(p.retr(n)[1]) + b"\r\n"

    def test_smtplib_to_poplib_unchanged(self):
        self.send(["alice@mock.test"], mail_options=["BODY=8BITMIME"])
        [(spooled, env)] = self.srv.wait_messages(1)
        self.assertEqual(spooled, MESSAGE)
        self.assertEqual(env["rcpt_to"], ["alice@mock.test"])
        p = self.pop()
        count, _ = p.stat()
        self.assertEqual(count, N_ALICE + 1)
        self.assertEqual(p.list(count), b"+OK %d %d" % (count, len(MESSAGE)))
        self.assertEqual(p.uidl(count), b"+OK %d %d.%d" % (count, UIDVALIDITY, N_ALICE + 1))
        self.assertEqual(self.retr(p, count), MESSAGE)
        head = MESSAGE.split(b"\r\n\r\n")[0].split(b"\r\n")
        self.assertEqual(p.top(count, 2)[1], head + [b"", b"Hello Alice,", b"."])
        p.quit()

    def test_every_recipient_gets_it(self):
        self.send(["alice@mock.test", "bob@mock.test", "carol@mock.test",
                   "nobody@elsewhere.example"])
        for user, before in (("alice", N_ALICE), ("bob", 1), ("carol", 0)):
            with self.subTest(user=user):
                p = self.pop(user)
                self.assertEqual(p.stat()[0], before + 1)
                self.assertEqual(self.retr(p, before + 1), MESSAGE)
                p.quit()

    def test_open_session_keeps_its_snapshot(self):
        p1 = self.pop()
        self.assertEqual(p1.stat()[0], N_ALICE)
        self.send(["alice@mock.test"])
        self.srv.wait_messages(1)
        # Same numbering for the rest of the session: the new message is not in it.
        self.assertEqual(p1.stat()[0], N_ALICE)
        with self.assertRaises(poplib.error_proto):
            p1.retr(N_ALICE + 1)
        self.assertEqual(p1.quit(), b"+OK Logging out, 7 messages left.")
        p2 = self.pop()
        self.assertEqual(p2.stat()[0], N_ALICE + 1)
        self.assertEqual(self.retr(p2, N_ALICE + 1), MESSAGE)

    def test_mail_arriving_during_update_is_kept(self):
        # DELE of everything, a new message arrives, then QUIT: UPDATE removes only what the
        # session marked (by UID), so the new message stays.
        p1 = self.pop()
        for i in range(1, N_ALICE + 1):
            p1.dele(i)
        self.send(["alice@mock.test"])
        self.srv.wait_messages(1)
        self.assertEqual(p1.quit(), b"+OK Logging out, 0 messages left.")
        p2 = self.pop()
        self.assertEqual(p2.stat(), (1, len(MESSAGE)))
        self.assertEqual(p2.uidl(1), b"+OK 1 %d.%d" % (UIDVALIDITY, N_ALICE + 1))
        self.assertEqual(self.retr(p2, 1), MESSAGE)
        p2.dele(1)
        p2.quit()
        p3 = self.pop()
        self.assertEqual(p3.stat(), (0, 0))

    def test_lf_only_and_unterminated_input(self):
        # smtplib turns a str's bare LFs into CRLF and ends the data with CRLF; what the spool
        # keeps is what POP3 serves.
        self.send(["alice@mock.test"], data="Subject: lf\n\nline1\n.dot\nline3")
        [(spooled, _)] = self.srv.wait_messages(1)
        self.assertEqual(spooled, b"Subject: lf\r\n\r\nline1\r\n.dot\r\nline3\r\n")
        p = self.pop()
        self.assertEqual(self.retr(p, N_ALICE + 1), spooled)


if __name__ == "__main__":
    unittest.main()
