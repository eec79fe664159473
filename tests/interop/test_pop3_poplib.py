"""Python's poplib (a client we did not write) against mocksrv's POP3 engine: the greeting and CAPA,
USER/PASS, APOP, STAT, LIST, UIDL, TOP, RETR of every message compared byte for byte with the
fixture, DELE + RSET, DELE + QUIT (a new session sees the message gone, and --state-out agrees),
the maildrop lock and an empty maildrop. Replies are checked exactly as pop3.c words them.

poplib hands back each line without its CRLF and with the byte-stuffing removed, so a message is
rebuilt as b"\\r\\n".join(lines) + b"\\r\\n": exact for messages whose lines all end in CRLF (the
fixtures of alice's maildrop are chosen so). A message without a final line end gets one on the
wire (RFC 1939 3), so the comparison is with pop3_wire(fixture)."""
import os
import poplib
import re
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (MocksrvCase, mail, pop3_alice_fixed, pop3_client,  # noqa: E402
                             pop3_stuffed, pop3_wire, scenario, wait_for)

HOST = "127.0.0.1"
SCENARIO = scenario("pop3-interop.yaml")
UIDVALIDITY = 1700000000
N_MESSAGES = 7  # alice: four fixed messages, then three generated ones
N_FIXED = 4


def joined(lines):
    return b"\r\n".join(lines) + b"\r\n"


class PoplibTest(MocksrvCase):
    def start(self, scenario_path=SCENARIO, args=()):
        return self.spawn(scenario_path, args=args, spool=False)

    def setUp(self):
        self.srv = self.start()
        self.port = self.srv.port("pop3")

    def pop(self, port=None):
        p = poplib.POP3(HOST, port or self.port, timeout=5)
        self.addCleanup(p.close)
        return p

    def login(self, user="alice", password="secret", port=None):
        p = self.pop(port)
        self.assertEqual(p.user(user), b"+OK")
        resp = p.pass_(password)
        self.assertTrue(resp.startswith(b"+OK Logged in: "), resp)
        return p

    def retr_all(self, p, count):
        out = []
        for i in range(1, count + 1):
            resp, lines, octets = p.retr(i)
            data = joined(lines)
            self.assertTrue(resp.startswith(b"+OK "), resp)
            self.assertEqual(octets, len(data))
            out.append(data)
        return out

    # ---- greeting, CAPA ----

    def test_greeting_has_apop_timestamp_and_capa(self):
        p = self.pop()
        self.assertRegex(p.getwelcome(), rb"^\+OK mocksrv POP3 server ready <\d+\.\d+@mock\.test>$")
        self.assertEqual(p.capa(), {
            "TOP": [], "USER": [], "UIDL": [], "RESP-CODES": [], "AUTH-RESP-CODE": [],
            "PIPELINING": [], "SASL": ["PLAIN", "LOGIN", "XOAUTH2"],
            "IMPLEMENTATION": ["mocksrv", self.srv.ready["version"]]})
        self.assertEqual(p.quit(), b"+OK Logging out.")

    # ---- USER/PASS, STAT, LIST, UIDL ----

    def test_user_pass_stat_list_uidl(self):
        fixed = pop3_alice_fixed()
        p = self.pop()
        self.assertEqual(p.user("alice"), b"+OK")
        resp = p.pass_("secret")
        count, total = p.stat()
        self.assertEqual(count, N_MESSAGES)
        self.assertEqual(resp, b"+OK Logged in: 7 messages (%d octets)." % total)
        resp, lines, _ = p.list()
        self.assertEqual(resp, b"+OK 7 messages (%d octets)" % total)
        sizes = [int(l.split()[1]) for l in lines]
        self.assertEqual([int(l.split()[0]) for l in lines], list(range(1, N_MESSAGES + 1)))
        # LIST gives the stored size (RFC 1939 "exact size"), the fixtures' lengths.
        self.assertEqual(sizes[:N_FIXED], [len(m) for m in fixed])
        self.assertEqual(sum(sizes), total)
        for i, size in enumerate(sizes, 1):
            self.assertEqual(p.list(i), b"+OK %d %d" % (i, size))
        resp, lines, _ = p.uidl()
        self.assertEqual(resp, b"+OK")
        self.assertEqual(lines, [b"%d %d.%d" % (i, UIDVALIDITY, i)
                                 for i in range(1, N_MESSAGES + 1)])
        self.assertEqual(p.uidl(3), b"+OK 3 %d.3" % UIDVALIDITY)
        self.assertEqual(p.noop(), b"+OK")
        self.assertEqual(p.quit(), b"+OK Logging out, 7 messages left.")

    def test_retr_every_message_byte_for_byte(self):
        fixed = pop3_alice_fixed()
        p = self.login()
        _, lines, _ = p.list()
        sizes = [int(l.split()[1]) for l in lines]
        got = []
        for i in range(1, N_MESSAGES + 1):
            resp, lines, octets = p.retr(i)
            data = joined(lines)
            self.assertEqual(resp, b"+OK %d octets" % sizes[i - 1])
            self.assertEqual(octets, len(data))
            got.append(data)
        for i, want in enumerate(fixed):
            self.assertEqual(got[i], pop3_wire(want), "message %d" % (i + 1))
        # The lone "." and dotted lines came back un-stuffed.
        self.assertIn(b"\r\n.\r\n..\r\n.a line that starts", got[0])
        # Generated messages: every line ends in CRLF (gen.h), so LIST's size is the length.
        for i in range(N_FIXED, N_MESSAGES):
            self.assertEqual(len(got[i]), sizes[i], "message %d" % (i + 1))
            self.assertTrue(got[i].startswith(b"Return-Path: "), got[i][:40])
        # RETR does not change anything: the same bytes again, in another session too.
        self.assertEqual(p.retr(2)[1], got[1].split(b"\r\n")[:-1])
        p.quit()
        p = self.login()
        for i in range(1, N_MESSAGES + 1):
            self.assertEqual(joined(p.retr(i)[1]), got[i - 1], "message %d" % i)
        p.quit()

    def test_retr_wire_bytes_are_stuffed(self):
        # What poplib un-stuffed above, as it was on the wire: exactly pop3_stuffed(fixture).
        fixed = pop3_alice_fixed()
        with pop3_client(self.port) as c:
            self.assertEqual(c.cmd("USER alice"), "+OK")
            self.assertTrue(c.cmd("PASS secret").startswith("+OK Logged in: "))
            for i, want in enumerate(fixed, 1):
                status, body = c.cmd_multi("RETR %d" % i)
                self.assertEqual(status, "+OK %d octets" % len(want))
                self.assertEqual(body, pop3_stuffed(want), "message %d" % i)
            self.assertEqual(c.cmd("QUIT"), "+OK Logging out, 7 messages left.")

    # ---- APOP ----

    def test_apop(self):
        p = self.pop()
        resp = p.apop("alice", "secret")
        self.assertTrue(resp.startswith(b"+OK Logged in: 7 messages ("), resp)
        self.assertEqual(joined(p.retr(1)[1]), pop3_wire(pop3_alice_fixed()[0]))
        p.quit()
        p = self.pop()
        with self.assertRaises(poplib.error_proto) as cm:
            p.apop("alice", "wrong")
        self.assertEqual(cm.exception.args[0], b"-ERR [AUTH] Invalid username or password.")
        with self.assertRaises(poplib.error_proto) as cm:
            p.apop("nobody", "secret")
        self.assertEqual(cm.exception.args[0], b"-ERR [AUTH] Invalid username or password.")
        # The session goes on: APOP again with the right secret works.
        self.assertTrue(p.apop("alice", "secret").startswith(b"+OK Logged in: "))
        self.assertEqual(p.stat()[0], N_MESSAGES)
        ok = [e for e in self.srv.events() if e["event"] == "auth"]
        self.assertEqual([(e.get("user"), e.get("ok")) for e in ok],
                         [("alice", True), ("alice", False), ("nobody", False), ("alice", True)])

    def test_each_greeting_has_its_own_timestamp(self):
        stamps = set()
        for _ in range(3):
            p = self.pop()
            stamps.add(re.search(rb"<[^>]+>", p.getwelcome()).group(0))
            p.quit()
        self.assertEqual(len(stamps), 3, stamps)

    # ---- TOP ----

    def test_top(self):
        fixed = pop3_alice_fixed()
        p = self.login()
        for i, msg in enumerate(fixed, 1):
            head, _, body = pop3_wire(msg).partition(b"\r\n\r\n")
            head_lines = head.split(b"\r\n")
            body_lines = body.split(b"\r\n")[:-1]
            for n in (0, 1, 3, 100):
                resp, lines, _ = p.top(i, n)
                self.assertEqual(resp, b"+OK")
                self.assertEqual(lines, head_lines + [b""] + body_lines[:n],
                                 "TOP %d %d" % (i, n))
        # TOP of a generated message with a count beyond its body is the whole message.
        whole = p.retr(5)[1]
        self.assertEqual(p.top(5, 100000)[1], whole)

    # ---- DELE, RSET, QUIT ----

    def test_dele_rset_quit_keeps_everything(self):
        p = self.login()
        total = p.stat()[1]
        self.assertEqual(p.dele(1), b"+OK Marked to be deleted.")
        self.assertEqual(p.dele(7), b"+OK Marked to be deleted.")
        self.assertEqual(p.stat()[0], N_MESSAGES - 2)
        self.assertEqual([l.split()[0] for l in p.list()[1]], [b"2", b"3", b"4", b"5", b"6"])
        self.assertEqual(p.rset(), b"+OK 7 messages (%d octets)." % total)
        self.assertEqual(p.stat(), (N_MESSAGES, total))
        self.assertEqual(p.quit(), b"+OK Logging out, 7 messages left.")
        p = self.login()
        self.assertEqual(p.stat(), (N_MESSAGES, total))

    def test_dele_without_quit_changes_nothing(self):
        # A session that ends without QUIT never enters UPDATE (RFC 1939 6).
        p = self.login()
        p.dele(1)
        p.close()
        # The server releases the lock when it sees the close; poll for it with a deadline.

        def try_login():
            q = poplib.POP3(HOST, self.port, timeout=5)
            try:
                q.user("alice")
                q.pass_("secret")
                return q
            except poplib.error_proto:
                q.close()
                return None
        q = wait_for(try_login, what="the maildrop lock to be released")
        self.addCleanup(q.close)
        self.assertEqual(q.stat()[0], N_MESSAGES)

    def dele_quit_and_check(self, srv_port, deleted):
        """Deletes message numbers `deleted` with DELE + QUIT; returns {uidl: bytes} of what
        is left, read in a new session, after checking it."""
        p = self.login(port=srv_port)
        before = dict(zip([l.split()[1] for l in p.uidl()[1]], self.retr_all(p, N_MESSAGES)))
        for n in deleted:
            self.assertEqual(p.dele(n), b"+OK Marked to be deleted.")
        self.assertEqual(p.quit(), b"+OK Logging out, %d messages left."
                         % (N_MESSAGES - len(deleted)))
        p = self.login(port=srv_port)
        left = N_MESSAGES - len(deleted)
        self.assertEqual(p.stat()[0], left)
        uidls = [l.split()[1] for l in p.uidl()[1]]
        want_uids = [i for i in range(1, N_MESSAGES + 1) if i not in deleted]
        self.assertEqual(uidls, [b"%d.%d" % (UIDVALIDITY, u) for u in want_uids])
        after = dict(zip(uidls, self.retr_all(p, left)))
        for uidl, data in after.items():
            self.assertEqual(data, before[uidl], uidl)
        # The deleted numbers are gone: numbering starts again at 1, so the last ones are.
        with self.assertRaises(poplib.error_proto) as cm:
            p.retr(left + 1)
        self.assertEqual(cm.exception.args[0], b"-ERR There's no message %d." % (left + 1))
        p.quit()
        return after

    def test_dele_quit_expunges(self):
        after = self.dele_quit_and_check(self.port, [2, 5])
        fixed = pop3_alice_fixed()
        self.assertEqual(after[b"%d.1" % UIDVALIDITY], pop3_wire(fixed[0]))
        self.assertEqual(after[b"%d.3" % UIDVALIDITY], pop3_wire(fixed[2]))
        self.assertNotIn(b"%d.2" % UIDVALIDITY, after)

    def test_dele_quit_then_state_out_agrees(self):
        tmp = self.tmpdir()
        state = os.path.join(tmp, "state.yaml")
        srv = self.start(args=["--state-out", state])
        after = self.dele_quit_and_check(srv.port("pop3"), [1, 4, 7])
        with pop3_client(srv.port("pop3")) as c:
            c.cmd("USER bob")
            c.cmd("PASS secret")
            bob_msg = c.cmd_multi("RETR 1")[1]
            c.cmd("QUIT")
        rc = srv.stop()
        self.assertEqual(rc, 0, srv.stderr_text())
        self.assertFalse(srv.killed)
        with open(state, "rb") as f:
            text = f.read().decode("utf-8")
        self.assertIn("uidvalidity: %d" % UIDVALIDITY, text)
        self.assertNotIn("pop3 plain", text)  # message 1 (UID 1) was deleted
        alice = text[text.index("\n  alice:\n"):text.index("\n  bob:\n")]
        self.assertEqual(re.findall(r"^\s*- uid: (\d+)$", alice, re.M), ["2", "3", "5", "6"])
        # The state is a scenario: a server started from it serves exactly what was left, with
        # the same UIDs (so the same UIDL), and bob's binary message byte for byte.
        srv2 = self.start(state)
        port2 = srv2.port("pop3")
        p = self.login(port=port2)
        self.assertEqual(p.stat()[0], len(after))
        uidls = [l.split()[1] for l in p.uidl()[1]]
        self.assertEqual(uidls, list(after))
        self.assertEqual(dict(zip(uidls, self.retr_all(p, len(after)))), after)
        p.quit()
        with pop3_client(port2) as c:
            c.cmd("USER bob")
            self.assertTrue(c.cmd("PASS secret").startswith("+OK Logged in: 1 messages"))
            self.assertEqual(c.cmd("UIDL 1"), "+OK 1 42.1")
            self.assertEqual(c.cmd_multi("RETR 1")[1], bob_msg)
            self.assertEqual(bob_msg, pop3_stuffed(mail("pop3-binary.eml")))

    # ---- the maildrop lock ----

    def test_maildrop_lock(self):
        p1 = self.login()
        total = p1.stat()[1]
        p2 = self.pop()
        self.assertEqual(p2.user("alice"), b"+OK")
        with self.assertRaises(poplib.error_proto) as cm:
            p2.pass_("secret")
        self.assertEqual(cm.exception.args[0],
                         b"-ERR [IN-USE] Mailbox is locked by another POP3 session.")
        with self.assertRaises(poplib.error_proto) as cm:
            p2.apop("alice", "secret")
        self.assertEqual(cm.exception.args[0],
                         b"-ERR [IN-USE] Mailbox is locked by another POP3 session.")
        # Another user's maildrop is not locked.
        p3 = self.login("bob")
        self.assertEqual(p3.stat()[0], 1)
        self.assertEqual(p1.quit(), b"+OK Logging out, 7 messages left.")
        # p2 is still in the AUTHORIZATION state and may try again.
        self.assertEqual(p2.user("alice"), b"+OK")
        self.assertEqual(p2.pass_("secret"), b"+OK Logged in: 7 messages (%d octets)." % total)

    # ---- failures and the empty maildrop ----

    def test_wrong_password_and_unknown_user(self):
        p = self.pop()
        for user, password in (("alice", "wrong"), ("mallory", "secret"), ("alice", "")):
            with self.subTest(user=user, password=password):
                p.user(user)
                with self.assertRaises(poplib.error_proto) as cm:
                    p.pass_(password)
                self.assertEqual(cm.exception.args[0],
                                 b"-ERR [AUTH] Invalid username or password.")
        # The session goes on.
        self.assertEqual(p.user("alice"), b"+OK")
        self.assertTrue(p.pass_("secret").startswith(b"+OK Logged in: "))

    def test_empty_maildrop_and_empty_password(self):
        p = self.pop()
        p.user("carol")
        self.assertEqual(p.pass_(""), b"+OK Logged in: 0 messages (0 octets).")
        self.assertEqual(p.stat(), (0, 0))
        self.assertEqual(p.list()[:2], (b"+OK 0 messages (0 octets)", []))
        self.assertEqual(p.uidl()[:2], (b"+OK", []))
        with self.assertRaises(poplib.error_proto) as cm:
            p.retr(1)
        self.assertEqual(cm.exception.args[0], b"-ERR There's no message 1.")
        self.assertEqual(p.rset(), b"+OK 0 messages (0 octets).")
        self.assertEqual(p.quit(), b"+OK Logging out, 0 messages left.")


if __name__ == "__main__":
    unittest.main()
