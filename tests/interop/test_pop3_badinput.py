"""Bad input to mocksrv's POP3 engine over a raw socket: malformed commands, commands in the wrong
state, RETR/DELE/LIST/TOP of a deleted or absent message, huge arguments and over-long lines,
binary garbage, split and pipelined commands, SASL mistakes, the maildrop lock, the bad-command
limit and the idle timeout. Each bad command gets one "-ERR" line and the session goes on
(checked with a following command), except where a limit says the server gives up.

Replies are checked exactly as pop3.c words them."""
import base64
import os
import random
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (MocksrvCase, crlf, mail, pop3_client, pop3_stuffed,  # noqa: E402
                             scenario, wait_for)

NO_MSG = "-ERR There's no message %s."
UNKNOWN = "-ERR Unknown command."
TOO_MANY = "-ERR Too many arguments."
BAD_NUM = "-ERR Invalid message number."
TOP_SYNTAX = "-ERR Syntax: TOP msg lines"
IN_AUTH = "-ERR Unknown command in AUTHORIZATION state."
IN_TRANS = "-ERR Unknown command in TRANSACTION state."
AUTH_FAIL = "-ERR [AUTH] Invalid username or password."
IN_USE = "-ERR [IN-USE] Mailbox is locked by another POP3 session."


def b64(s):
    return base64.b64encode(s.encode("utf-8")).decode("ascii")


class Pop3BadInputTest(MocksrvCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.spawn_shared(scenario("pop3-interop.yaml"), spool=False)
        cls.port = cls.srv.port("pop3")

    def raw(self, port=None):
        c = pop3_client(port or self.port)
        self.addCleanup(c.close)
        self.assertTrue(c.greeting.startswith("+OK mocksrv POP3 server ready"), c.greeting)
        return c

    def login(self, user="bob"):
        # bob's maildrop (one message) by default: alice's is left to tests that need it.
        c = self.raw()
        self.assertEqual(c.cmd("USER " + user), "+OK")
        self.assertTrue(c.cmd("PASS secret").startswith("+OK Logged in: "))
        return c

    def still_works(self, c, state="trans"):
        if state == "trans":
            self.assertEqual(c.cmd("NOOP"), "+OK")
            self.assertRegex(c.cmd("STAT"), r"^\+OK \d+ \d+$")
        else:
            self.assertEqual(c.cmd("CAPA"), "+OK Capability list follows")
            self.assertTrue(c.multiline().endswith(b"\r\n.\r\n"))

    def check_all(self, c, cases, state="trans"):
        """cases: (bytes or str sent as one line with CRLF, expected status line)."""
        for line, want in cases:
            with self.subTest(line=line):
                if isinstance(line, str):
                    line = line.encode("utf-8")
                c.send(line + b"\r\n")
                self.assertEqual(c.reply(), want)
                self.still_works(c, state)

    # ---- malformed commands ----

    def test_malformed_in_authorization_state(self):
        c = self.raw()
        self.check_all(c, [
            ("", UNKNOWN),
            ("   ", UNKNOWN),
            ("FOO", UNKNOWN),
            ("RETRIEVE 1", UNKNOWN),  # longer than any verb
            (" USER alice", UNKNOWN),  # leading blank
            ("STAT", IN_AUTH),
            ("RETR 1", IN_AUTH),
            ("DELE 1", IN_AUTH),
            ("NOOP", IN_AUTH),
            ("USER", "-ERR Missing user name."),
            ("PASS secret", "-ERR No USER given."),
            ("APOP alice", "-ERR Syntax: APOP name digest"),
            ("APOP", "-ERR Syntax: APOP name digest"),
            ("APOP alice 0123456789abcdef0123456789abcdef", AUTH_FAIL),
            ("CAPA extra", TOO_MANY),
        ], state="auth")
        # A failed PASS forgets the USER: PASS again needs a new USER.
        self.assertEqual(c.cmd("USER alice"), "+OK")
        self.assertEqual(c.cmd("PASS wrong"), AUTH_FAIL)
        self.assertEqual(c.cmd("PASS secret"), "-ERR No USER given.")
        self.assertEqual(c.cmd("QUIT"), "+OK Logging out.")
        self.assertEqual(c.wait_closed(), b"")

    def test_malformed_in_transaction_state(self):
        # Two sessions: every case but the absent messages counts against limits.bad_commands
        # (default 20 per session).
        c = self.login()
        self.check_all(c, [
            ("FOO 1", UNKNOWN),
            ("USER bob", IN_TRANS),
            ("PASS secret", IN_TRANS),
            ("APOP bob x", IN_TRANS),
            ("AUTH PLAIN", IN_TRANS),
            ("STAT 1", TOO_MANY),
            ("NOOP x", TOO_MANY),
            ("RSET now", TOO_MANY),
        ])
        self.assertEqual(c.cmd("QUIT"), "+OK Logging out, 1 messages left.")
        c = self.login()
        self.check_all(c, [
            ("RETR", BAD_NUM),
            ("RETR abc", BAD_NUM),
            ("RETR -1", BAD_NUM),
            ("RETR +1", BAD_NUM),
            ("RETR 1x", BAD_NUM),
            ("RETR 1 2", TOO_MANY),
            ("RETR 0", NO_MSG % "0"),
            ("RETR 2", NO_MSG % "2"),
            ("LIST 0", NO_MSG % "0"),
            ("LIST 9", NO_MSG % "9"),
            ("UIDL 9", NO_MSG % "9"),
            ("DELE 2", NO_MSG % "2"),
            ("LIST x", BAD_NUM),
            ("TOP 1", TOP_SYNTAX),
            ("TOP 1 x", TOP_SYNTAX),
            ("TOP 1 -1", TOP_SYNTAX),
            ("TOP 1 2 3", TOP_SYNTAX),
            ("TOP 2 0", NO_MSG % "2"),
            ("TOP x 0", BAD_NUM),
        ])
        self.assertEqual(c.cmd("QUIT"), "+OK Logging out, 1 messages left.")

    def test_commands_are_case_insensitive(self):
        c = self.raw()
        self.assertEqual(c.cmd("user bob"), "+OK")
        self.assertTrue(c.cmd("pass secret").startswith("+OK Logged in: 1 messages"))
        self.assertRegex(c.cmd("sTaT"), r"^\+OK 1 \d+$")
        self.assertEqual(c.cmd("Uidl 1"), "+OK 1 42.1")
        self.assertEqual(c.cmd("quit"), "+OK Logging out, 1 messages left.")

    # ---- deleted and absent messages ----

    def test_deleted_message(self):
        c = self.login()
        size = int(c.cmd("LIST 1").split()[2])
        self.assertEqual(c.cmd("DELE 1"), "+OK Marked to be deleted.")
        for cmd in ("RETR 1", "DELE 1", "LIST 1", "UIDL 1", "TOP 1 0"):
            with self.subTest(cmd=cmd):
                self.assertEqual(c.cmd(cmd), "-ERR Message 1 is deleted.")
                self.still_works(c)
        self.assertEqual(c.cmd("STAT"), "+OK 0 0")
        self.assertEqual(c.cmd_multi("LIST"), ("+OK 0 messages (0 octets)", b".\r\n"))
        self.assertEqual(c.cmd_multi("UIDL"), ("+OK", b".\r\n"))
        self.assertEqual(c.cmd("RSET"), "+OK 1 messages (%d octets)." % size)
        self.assertEqual(c.cmd("STAT"), "+OK 1 %d" % size)
        # Not deleted after all: RETR works again, byte for byte.
        self.assertEqual(c.cmd_multi("RETR 1"),
                         ("+OK %d octets" % size, pop3_stuffed(mail("pop3-binary.eml"))))
        self.assertEqual(c.cmd("QUIT"), "+OK Logging out, 1 messages left.")

    # ---- huge arguments and long lines ----

    def test_huge_message_numbers(self):
        c = self.login()
        for n in ("4294967295", "4294967296", "99999999999999999999", "1" * 300):
            for verb in ("RETR", "DELE", "LIST", "UIDL", "TOP"):
                with self.subTest(verb=verb, n=n[:20]):
                    if verb == "TOP" and int(n) > 0xFFFFFFFF:
                        continue  # test_top_with_a_huge_message_number_names_the_number
                    arg = n + " 0" if verb == "TOP" else n
                    self.assertEqual(c.cmd("%s %s" % (verb, arg)), NO_MSG % n)
                    self.still_works(c)

    def test_top_with_a_huge_message_number_names_the_number(self):
        # "TOP 2 0" says "There's no message 2."; past 2^32-1 the text must not take in the
        # line count either.
        c = self.login()
        for n in ("4294967296", "9" * 40):
            with self.subTest(n=n):
                self.assertEqual(c.cmd("TOP %s 0" % n), NO_MSG % n)
                self.still_works(c)

    def test_top_with_a_huge_line_count_is_the_whole_message(self):
        # RFC 1939 7: "If the number of lines requested by the POP3 client is greater than
        # the number of lines in the body, then the POP3 server sends the entire message."
        c = self.login()
        whole = c.cmd_multi("RETR 1")[1]
        for n in ("4294967295", "4294967296", "99999999999", "9" * 40):
            with self.subTest(n=n):
                self.assertEqual(c.cmd_multi("TOP 1 %s" % n), ("+OK", whole))
                self.still_works(c)

    def test_huge_arguments_within_the_line_limit(self):
        c = self.raw()
        name = "u" * 500  # "USER " + 500 = 505 bytes + CRLF: within the default 512
        self.assertEqual(c.cmd("USER " + name), "+OK")
        self.assertEqual(c.cmd("PASS " + "p" * 500), AUTH_FAIL)
        self.assertEqual(c.cmd("APOP %s %s" % (name[:400], "f" * 32)), AUTH_FAIL)
        self.assertEqual(c.cmd("AUTH " + "M" * 500), "-ERR Unsupported authentication mechanism.")
        self.still_works(c, "auth")

    def test_over_long_lines(self):
        c = self.login()
        for size in (513, 600, 5000, 100000, 1 << 20):
            with self.subTest(size=size):
                c.send(b"NOOP " + b"x" * (size - 7) + b"\r\n")
                self.assertEqual(c.reply(timeout=10), "-ERR Line too long.")
                self.still_works(c)
        # An over-long line sent in pieces, with the next command behind it in the last piece.
        c.send(b"RETR " + b"9" * 400)
        c.send(b"9" * 400)
        c.send(b"\r\nSTAT\r\n")
        self.assertEqual(c.reply(), "-ERR Line too long.")
        self.assertRegex(c.reply(), r"^\+OK 1 \d+$")
        self.assertEqual(c.cmd("QUIT"), "+OK Logging out, 1 messages left.")

    # ---- binary garbage ----

    def test_binary_garbage(self):
        c = self.login()
        cases = [
            b"\x00",
            b"NOOP\x00",
            b"STAT\x00\x00\x00",
            b"\xff\xfe\xfd\xfc",
            b"RETR \xff",
            b"\x1b[2J\x07\x08",
            b"\xc3\xa9t\xc3\xa9",
            b"\r\r\r",
            b"RETR\t1",
        ]
        wants = [UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, BAD_NUM, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN]
        for line, want in zip(cases, wants):
            with self.subTest(line=line):
                c.send(line + b"\r\n")
                self.assertEqual(c.reply(), want)
                self.still_works(c)
        # Random binary lines (no LF inside, fixed seed): one -ERR each, then the session goes on.
        # Fewer than limits.bad_commands (20) bad lines in this session, counting the above.
        rng = random.Random(1939)
        for _ in range(8):
            line = bytes(rng.choice([b for b in range(256) if b != 10])
                         for _ in range(rng.randint(1, 200)))
            c.send(line + b"\r\n")
            self.assertTrue(c.reply().startswith("-ERR "), line)
        self.still_works(c)
        # The events file is still valid JSON lines (bytes escaped), events() checks every line.
        self.assertTrue(any(e["event"] == "command" for e in self.srv.events()))
        self.assertEqual(c.cmd("QUIT"), "+OK Logging out, 1 messages left.")

    def test_random_binary_sessions_never_hang_or_crash(self):
        # Blobs with LFs (many "lines" each), each in its own session; the server answers every
        # line and stays up (a new session works after each).
        rng = random.Random(5034)
        for i in range(10):
            blob = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4000)))
            with pop3_client(self.port) as c:
                c.send(blob + b"\r\nQUIT\r\n")
                rest = c.wait_closed(timeout=10)
                lines = rest.split(b"\r\n")
                self.assertTrue(all(l.startswith((b"+OK", b"-ERR")) for l in lines if l)
                                or b"+OK Capability list follows" in rest, rest[:200])
        c = self.raw()
        self.still_works(c, "auth")

    # ---- line framing ----

    def test_split_and_pipelined_commands(self):
        c = self.raw()
        for piece in (b"US", b"ER b", b"ob\r", b"\nPA", b"SS secret\r\nST", b"AT\r\n"):
            c.send(piece)
        self.assertEqual(c.reply(), "+OK")
        self.assertTrue(c.reply().startswith("+OK Logged in: 1 messages"))
        self.assertRegex(c.reply(), r"^\+OK 1 \d+$")
        # Pipelined in one packet (RFC 2449 PIPELINING): answered in order, bad ones included.
        c.send(b"NOOP\r\nFOO\r\nUIDL 1\r\nRETR 7\r\nLIST\r\nNOOP\r\n")
        self.assertEqual(c.reply(), "+OK")
        self.assertEqual(c.reply(), UNKNOWN)
        self.assertEqual(c.reply(), "+OK 1 42.1")
        self.assertEqual(c.reply(), NO_MSG % "7")
        self.assertTrue(c.reply().startswith("+OK 1 messages ("))
        self.assertRegex(c.multiline().decode(), r"^1 \d+\r\n\.\r\n$")
        self.assertEqual(c.reply(), "+OK")
        # A bare LF ends a line too (lenient, as most servers are).
        c.send(b"NOOP\n")
        self.assertEqual(c.reply(), "+OK")
        self.assertEqual(c.cmd("QUIT"), "+OK Logging out, 1 messages left.")

    # ---- SASL ----

    def test_auth_mistakes(self):
        c = self.raw()
        self.assertEqual(c.cmd("AUTH CRAM-MD5"), "-ERR Unsupported authentication mechanism.")
        self.assertEqual(c.cmd("AUTH GSSAPI"), "-ERR Unsupported authentication mechanism.")
        self.assertEqual(c.cmd("AUTH PLAIN !!!notbase64"),
                         "-ERR Invalid base64 data in continued response.")
        self.assertEqual(c.cmd("AUTH PLAIN " + b64("\0alice\0wrong")),
                         "-ERR [AUTH] Authentication failed.")
        self.assertEqual(c.cmd("AUTH LOGIN"), "+ " + b64("Username:"))
        self.assertEqual(c.cmd("*"), "-ERR Authentication canceled.")
        self.assertEqual(c.cmd("AUTH PLAIN"), "+ ")
        self.assertEqual(c.cmd("A" * 20000), "-ERR Authentication response too long.")
        self.still_works(c, "auth")
        # And then it works.
        self.assertTrue(c.cmd("AUTH PLAIN " + b64("\0bob\0secret"))
                        .startswith("+OK Logged in: 1 messages"))
        self.assertEqual(c.cmd("AUTH PLAIN " + b64("\0bob\0secret")), IN_TRANS)
        self.still_works(c)

    def test_auth_mechanisms_that_work(self):
        for mech, steps in (
                ("PLAIN", ["AUTH PLAIN " + b64("\0bob\0secret")]),
                ("PLAIN", ["AUTH PLAIN", b64("\0bob\0secret")]),
                ("LOGIN", ["AUTH LOGIN", b64("bob"), b64("secret")]),
                ("XOAUTH2", ["AUTH XOAUTH2 " + b64("user=bob\x01auth=Bearer secret\x01\x01")])):
            with self.subTest(mech=mech, steps=len(steps)):
                with pop3_client(self.port) as c:
                    for step in steps[:-1]:
                        self.assertTrue(c.cmd(step).startswith("+ "))
                    self.assertTrue(c.cmd(steps[-1]).startswith("+OK Logged in: 1 messages"))
                    self.assertEqual(c.cmd("QUIT"), "+OK Logging out, 1 messages left.")

    def test_bare_auth_lists_mechanisms(self):
        c = self.raw()
        self.assertEqual(c.cmd_multi("AUTH"), ("+OK", b"PLAIN\r\nLOGIN\r\nXOAUTH2\r\n.\r\n"))

    # ---- the maildrop lock ----

    def test_second_login_is_refused_while_locked(self):
        a = self.login("alice")
        b = self.raw()
        self.assertEqual(b.cmd("USER alice"), "+OK")
        self.assertEqual(b.cmd("PASS secret"), IN_USE)
        self.assertEqual(b.cmd("AUTH PLAIN " + b64("\0alice\0secret")), IN_USE)
        self.still_works(b, "auth")
        # The lock is released by QUIT ...
        self.assertEqual(a.cmd("QUIT"), "+OK Logging out, 7 messages left.")
        self.assertEqual(b.cmd("USER alice"), "+OK")
        self.assertTrue(b.cmd("PASS secret").startswith("+OK Logged in: 7 messages"))
        # ... and by a connection that just goes away (noticed asynchronously: poll).
        b.close()

        def login_ok():
            with pop3_client(self.port) as c:
                c.cmd("USER alice")
                ok = c.cmd("PASS secret").startswith("+OK Logged in: ")
                c.cmd("QUIT")
                return ok
        wait_for(login_ok, what="the lock of a closed session to be released")

    def test_bad_password_does_not_take_the_lock(self):
        b = self.raw()
        self.assertEqual(b.cmd("USER alice"), "+OK")
        self.assertEqual(b.cmd("PASS wrong"), AUTH_FAIL)
        a = self.login("alice")
        self.assertEqual(a.cmd("QUIT"), "+OK Logging out, 7 messages left.")

    # ---- the server stays up ----

    def test_zz_server_still_serves(self):
        # Runs last (alphabetical): after all of the above, a normal session still works.
        c = self.login("alice")
        self.assertTrue(c.cmd("STAT").startswith("+OK 7 "))
        status, body = c.cmd_multi("RETR 1")
        self.assertEqual(body, pop3_stuffed(crlf(mail("pop3-plain.eml"))))
        self.assertEqual(c.cmd("QUIT"), "+OK Logging out, 7 messages left.")


class Pop3LimitsTest(MocksrvCase):
    """pop3-strict.yaml: limits.idle_timeout 1s and limits.bad_commands 3."""

    def setUp(self):
        self.srv = self.spawn(scenario("pop3-strict.yaml"), spool=False)
        self.port = self.srv.port("pop3")

    def closes(self, ev_reason):
        return self.srv.wait_event(
            lambda e: e["event"] == "session.close" and e.get("reason") == ev_reason,
            what="session.close with reason %s" % ev_reason)

    def test_too_many_bad_commands(self):
        with pop3_client(self.port) as c:
            self.assertEqual(c.cmd("FOO"), UNKNOWN)
            self.assertEqual(c.cmd("RETR 1"), IN_AUTH)
            # Errors the client cannot help (wrong password) count too; the third one ends it.
            c.cmd("USER alice")
            self.assertEqual(c.cmd("PASS nope"), AUTH_FAIL)
            self.assertEqual(c.reply(), "-ERR Too many bad commands.")
            self.assertEqual(c.wait_closed(), b"")

    def test_absent_messages_are_not_bad_commands(self):
        with pop3_client(self.port) as c:
            c.cmd("USER alice")
            self.assertTrue(c.cmd("PASS secret").startswith("+OK Logged in: 1 messages"))
            for _ in range(5):
                self.assertEqual(c.cmd("RETR 2"), NO_MSG % "2")
            self.assertEqual(c.cmd("DELE 1"), "+OK Marked to be deleted.")
            for _ in range(5):
                self.assertEqual(c.cmd("RETR 1"), "-ERR Message 1 is deleted.")
            self.assertEqual(c.cmd("NOOP"), "+OK")
            self.assertEqual(c.cmd("QUIT"), "+OK Logging out, 0 messages left.")

    def test_idle_timeout_before_login(self):
        with pop3_client(self.port) as c:
            start = time.monotonic()
            self.assertEqual(c.reply(timeout=5), "-ERR Disconnected for inactivity.")
            self.assertEqual(c.wait_closed(), b"")
            self.assertGreaterEqual(time.monotonic() - start, 0.9)
        self.closes("timeout")

    def test_idle_timeout_after_login_keeps_the_maildrop(self):
        with pop3_client(self.port) as c:
            c.cmd("USER alice")
            self.assertTrue(c.cmd("PASS secret").startswith("+OK Logged in: 1 messages"))
            self.assertEqual(c.cmd("DELE 1"), "+OK Marked to be deleted.")
            self.assertEqual(c.reply(timeout=5), "-ERR Disconnected for inactivity.")
            self.assertEqual(c.wait_closed(), b"")
        self.closes("timeout")
        # No UPDATE state after an autologout (RFC 1939 3): the message is still there, and the
        # lock was released.
        with pop3_client(self.port) as c:
            c.cmd("USER alice")
            self.assertTrue(c.cmd("PASS secret").startswith("+OK Logged in: 1 messages"))
            self.assertEqual(c.cmd("QUIT"), "+OK Logging out, 1 messages left.")

    def test_activity_keeps_the_session(self):
        # A command every 0.4 s for 2 s: never idle for the 1 s timeout.
        with pop3_client(self.port) as c:
            c.cmd("USER alice")
            c.cmd("PASS secret")
            deadline = time.monotonic() + 2.0
            n = 0
            while time.monotonic() < deadline and n < 10:
                self.assertEqual(c.cmd("NOOP"), "+OK")
                n += 1
                time.sleep(0.4)  # the silence under test, not synchronisation
            self.assertEqual(c.cmd("QUIT"), "+OK Logging out, 1 messages left.")


if __name__ == "__main__":
    unittest.main()
