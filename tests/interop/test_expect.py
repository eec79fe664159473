"""Expectations (SPEC 3.5, FAULTS.md 2) against a real mocksrv, with smtplib, poplib and raw
clients: a met sequence gives exit status 0 and no expect.fail; an unmet one gives an
expect.fail event (as the run goes, once), a stderr line and exit status 3 after SIGTERM;
`never` in plaintext on a STARTTLS listener; `no_pregreet` with a greeting delayed by a fault;
`messages`, `sessions` and `quit` when the server stops; `enforce` (the out-of-sequence command
gets SMTP 503 / POP3 -ERR, is not run, and the session goes on); the exit status in `-- CMD`
mode. FAULTS.md example C's `never` runs on fixtures/faults/starttls-family.yaml (example A's
sequence is in test_faults_smtp.py).

One server per test. Only what a client observes is asserted, plus the server's events, its
stderr and its exit status."""
import os
import poplib
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (HOST, MocksrvCase, client_context, code, fault_fixture,  # noqa: E402
                             smtp_client, wait_closed_event)

BODY = b"Subject: expect\r\n\r\nbody\r\n"


def expect_fails(srv):
    return [e for e in srv.events() if e["event"] == "expect.fail"]


def not_met_lines(srv):
    return [l for l in srv.stderr_text().splitlines() if "expectation not met" in l]


class ExpectCase(MocksrvCase):
    """Each test writes its scenario and starts its own server; stop() gives the exit status."""

    def serve(self, yaml, **kw):
        return self.spawn(self.scenario_text(yaml, "scenario.yaml"), **kw)

    def stop(self, srv, want=0):
        """Stops SRV now and returns its exit status; the cleanup asserts it is WANT."""
        srv.want_status = want
        rc = srv.stop()
        self.assertFalse(srv.killed, "mocksrv ignored SIGTERM")
        return rc

    def smtp(self, srv, listener="smtp"):
        s = smtplib.SMTP(HOST, srv.port(listener), local_hostname="client.example", timeout=5)
        self.addCleanup(s.close)
        return s


SEQ = """version: 1
hostname: mock.test
listeners: { smtp: { protocol: smtp, port: 0 } }
expect:
  - when: { listener: smtp, session: 1 }
    sequence: [EHLO, "MAIL FROM:*", "RCPT TO:*", DATA, QUIT]
  - when: { listener: smtp }
    sequence: [EHLO, QUIT]
    match: subsequence
"""


class SequenceTest(ExpectCase):
    def test_met_sequence_exit_0(self):
        srv = self.serve(SEQ)
        s = self.smtp(srv)
        self.assertEqual(s.sendmail("a@client.example", ["b@mock.test"], BODY), {})
        self.assertEqual(s.quit()[0], 221)
        wait_closed_event(srv, 1)
        self.assertEqual(self.stop(srv), 0, srv.stderr_text())
        self.assertEqual(expect_fails(srv), [])
        self.assertEqual(not_met_lines(srv), [])

    def test_unmet_sequence_reported_at_once(self):
        srv = self.serve(SEQ)
        s = self.smtp(srv)
        s.ehlo()
        self.assertEqual(s.noop()[0], 250)  # not enforced: the server answers as usual
        # reported as the run goes: at the NOOP, before the session ends
        ev = srv.wait_event(lambda e: e["event"] == "expect.fail", what="expect.fail")
        self.assertEqual((ev["session"], ev["listener"], ev["expectation"]),
                         (1, "smtp", "expect[0].sequence"))
        # smtplib sends its commands in lower case; patterns match case-insensitively
        self.assertEqual(ev["seen"], "got noop where MAIL FROM:* was expected; "
                                     "commands: ehlo client.example, noop")
        self.assertFalse([e for e in srv.events() if e["event"] == "session.close"])
        self.assertEqual(s.quit()[0], 221)
        wait_closed_event(srv, 1)
        self.assertEqual(self.stop(srv, 3), 3)
        # once per session: no second report at the end; the subsequence entry was met
        self.assertEqual([e["expectation"] for e in expect_fails(srv)], ["expect[0].sequence"])
        [line] = not_met_lines(srv)
        self.assertIn("expectation not met: session 1 (smtp): expect[0].sequence: got noop", line)

    def test_incomplete_sequence_reported_at_end(self):
        srv = self.serve(SEQ)
        with smtp_client(srv.port()) as c:
            self.assertEqual(code(c.cmd("EHLO raw.example")), 250)
            self.assertEqual(c.cmd("MAIL FROM:<a@client.example>"), "250 2.1.0 Ok")
        # the client dropped the connection: both sequences are incomplete
        wait_closed_event(srv, 1)
        evs = expect_fails(srv)
        self.assertEqual([(e["expectation"], e["seen"]) for e in evs],
                         [("expect[0].sequence", "the session ended where RCPT TO:* was "
                           "expected; commands: EHLO raw.example, MAIL FROM:<a@client.example>"),
                          ("expect[1].sequence", "the session ended where QUIT was expected; "
                           "commands: EHLO raw.example, MAIL FROM:<a@client.example>")])
        # every expect.fail of a session comes before its session.close
        names = [e["event"] for e in srv.events() if e.get("session") == 1]
        self.assertEqual(names[-3:], ["expect.fail", "expect.fail", "session.close"])
        self.assertEqual(self.stop(srv, 3), 3)
        self.assertEqual(len(not_met_lines(srv)), 2)

    def test_only_session_1_is_checked_by_the_first_entry(self):
        srv = self.serve(SEQ)
        s = self.smtp(srv)
        s.sendmail("a@client.example", ["b@mock.test"], BODY)
        s.quit()
        # session 2: another order, still EHLO ... QUIT (the subsequence entry)
        s = self.smtp(srv)
        s.ehlo()
        s.noop()
        s.rset()
        s.quit()
        wait_closed_event(srv, 2)
        self.assertEqual(self.stop(srv), 0, srv.stderr_text())


NEVER = """version: 1
hostname: mock.test
listeners: { smtp: { protocol: smtp, port: 0, tls: starttls } }
smtp: { auth: [PLAIN, LOGIN] }
users: { alice: { password: secret, addresses: [alice@mock.test] } }
expect:
  - { when: { listener: smtp, encrypted: false }, never: ["AUTH *", "MAIL FROM:*"] }
"""


class NeverTest(ExpectCase):
    def test_auth_after_starttls_is_fine(self):
        srv = self.serve(NEVER)
        s = self.smtp(srv)
        s.starttls(context=client_context(srv.ca_file))
        self.assertEqual(s.login("alice", "secret")[0], 235)
        self.assertEqual(s.sendmail("alice@mock.test", ["alice@mock.test"], BODY), {})
        s.quit()
        wait_closed_event(srv, 1)
        self.assertEqual(self.stop(srv), 0, srv.stderr_text())
        self.assertEqual(expect_fails(srv), [])

    def test_auth_in_plaintext_fails_once(self):
        srv = self.serve(NEVER)
        s = self.smtp(srv)
        s.ehlo()
        self.assertEqual(s.login("alice", "secret")[0], 235)  # the server still serves it
        s.sendmail("alice@mock.test", ["alice@mock.test"], BODY)  # MAIL: same entry, once
        s.quit()
        wait_closed_event(srv, 1)
        [ev] = expect_fails(srv)
        self.assertEqual(ev["expectation"], "expect[0].never")
        self.assertTrue(ev["seen"].startswith("got AUTH PLAIN "), ev["seen"])
        self.assertTrue(ev["seen"].endswith(', which matches never pattern "AUTH *" '
                                            "(in plaintext)"), ev["seen"])
        self.assertEqual(self.stop(srv, 3), 3)
        self.assertEqual(len(not_met_lines(srv)), 1)


PREGREET = """version: 1
hostname: mock.test
listeners: { mx: { protocol: smtp, port: 0 } }
faults:
  - { when: { listener: mx, at: greeting }, delay: 300ms }
expect:
  - { when: { listener: mx }, no_pregreet: true }
"""


class PregreetTest(ExpectCase):
    def test_client_talking_first_fails(self):
        srv = self.serve(PREGREET)
        t0 = time.monotonic()
        c = smtp_client(srv.port("mx"), read_greeting=False)
        self.addCleanup(c.close)
        c.send("EHLO early.example\r\n")  # before the (delayed) greeting
        self.assertEqual(c.reply(), "220 mock.test ESMTP mocksrv")
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        self.assertEqual(code(c.reply()), 250)  # the early EHLO is answered as usual
        self.assertEqual(c.cmd("QUIT"), "221 2.0.0 Bye")
        wait_closed_event(srv, 1)
        [ev] = expect_fails(srv)
        self.assertEqual((ev["session"], ev["expectation"]), (1, "expect[0].no_pregreet"))
        self.assertEqual(ev["seen"], 'the client sent "EHLO early.example??" before the greeting '
                                     "was complete")
        self.assertEqual(self.stop(srv, 3), 3)
        [line] = not_met_lines(srv)
        self.assertIn("expect[0].no_pregreet", line)

    def test_patient_client_passes(self):
        srv = self.serve(PREGREET)
        with smtp_client(srv.port("mx")) as c:  # reads the greeting before it says anything
            self.assertEqual(c.greeting, "220 mock.test ESMTP mocksrv")
            self.assertEqual(code(c.cmd("EHLO patient.example")), 250)
            c.cmd("QUIT")
            c.wait_closed()
        s = self.smtp(srv, "mx")  # smtplib waits for the greeting too
        s.sendmail("a@client.example", ["b@mock.test"], BODY)
        s.quit()
        wait_closed_event(srv, 2)
        self.assertEqual(self.stop(srv), 0, srv.stderr_text())
        self.assertEqual(expect_fails(srv), [])


SPLIT_GREETING = """version: 1
hostname: mock.test
listeners: { mx: { protocol: smtp, port: 0 } }
faults:
  - name: pregreet-banner
    when: { listener: mx, at: greeting }
    reply: ["220-mx.mock.test ESMTP (please wait)", "220 mx.mock.test ESMTP"]
    split: { lines: true, gap: 400ms }
expect:
  - { when: { listener: mx }, no_pregreet: true }
"""


class SplitGreetingPregreetTest(ExpectCase):
    """FAULTS.md example G's trap, with a shorter gap: the greeting leaves in two writes 400 ms
    apart (the server has sent it all before it looks), a client that talks between them
    fails, one that waits for the last line passes."""

    def test_talker_between_the_lines_fails(self):
        srv = self.serve(SPLIT_GREETING)
        c = smtp_client(srv.port("mx"), read_greeting=False)
        self.addCleanup(c.close)
        self.assertEqual(c.line(), "220-mx.mock.test ESMTP (please wait)")
        c.send("EHLO impatient.example\r\n")
        self.assertEqual(c.line(), "220 mx.mock.test ESMTP")
        self.assertEqual(code(c.reply()), 250)
        c.cmd("QUIT")
        wait_closed_event(srv, 1)
        [ev] = expect_fails(srv)
        self.assertEqual(ev["expectation"], "expect[0].no_pregreet")
        self.assertIn("EHLO impatient.example", ev["seen"])
        self.assertEqual(self.stop(srv, 3), 3)

    def test_patient_clients_pass(self):
        srv = self.serve(SPLIT_GREETING)
        for n in (1, 2):
            s = self.smtp(srv, "mx")  # smtplib reads the whole multi-line greeting first
            self.assertEqual(s.ehlo()[0], 250)
            s.quit()
            wait_closed_event(srv, n)
        with smtp_client(srv.port("mx")) as c:  # answers as soon as the last line is in
            self.assertEqual(code(c.cmd("EHLO quick.example")), 250)
            c.cmd("QUIT")
            c.wait_closed()
        wait_closed_event(srv, 3)
        self.assertEqual(self.stop(srv), 0, srv.stderr_text())


COUNTS = """version: 1
hostname: mock.test
listeners:
  smtp: { protocol: smtp, port: 0 }
  other: { protocol: smtp, port: 0 }
expect:
  - { messages: 1 }
  - { when: { listener: smtp }, sessions: 2 }
  - { when: { listener: smtp }, quit: true }
"""


class CountsTest(ExpectCase):
    def send(self, srv, listener="smtp", quit=True):
        s = self.smtp(srv, listener)
        self.assertEqual(s.sendmail("a@client.example", ["b@mock.test"], BODY), {})
        if quit:
            s.quit()
        else:
            s.close()  # drops the connection without QUIT

    def test_all_met(self):
        srv = self.serve(COUNTS)
        self.send(srv)
        s = self.smtp(srv)
        s.noop()
        s.quit()
        with smtp_client(srv.port("other")) as c:  # not a listener of the sessions/quit entries
            c.send("NOOP\r\n")  # and no QUIT
        wait_closed_event(srv, 3)
        self.assertEqual(self.stop(srv), 0, srv.stderr_text())
        self.assertEqual(expect_fails(srv), [])

    def test_counts_unmet_at_stop(self):
        srv = self.serve(COUNTS)
        self.send(srv)
        self.send(srv, "other")
        wait_closed_event(srv, 2)
        self.assertEqual(expect_fails(srv), [])  # run-wide checks wait for the stop
        self.assertEqual(self.stop(srv, 3), 3)
        evs = expect_fails(srv)
        self.assertEqual([(e["expectation"], e["seen"]) for e in evs],
                         [("expect[0].messages", "2 messages, expected 1"),
                          ("expect[1].sessions", "1 session, expected 2")])
        self.assertNotIn("session", evs[0])  # run-wide: no session
        self.assertEqual(len(not_met_lines(srv)), 2)
        # the stop's expect.fail events come after the last session ended
        names = [e["event"] for e in srv.events()]
        self.assertLess(max(i for i, n in enumerate(names) if n == "session.close"),
                        names.index("expect.fail"))

    def test_quit_missing(self):
        srv = self.serve(COUNTS)
        self.send(srv, quit=False)
        s = self.smtp(srv)
        s.quit()
        wait_closed_event(srv, 2)
        [ev] = expect_fails(srv)
        self.assertEqual((ev["session"], ev["expectation"], ev["seen"]),
                         (1, "expect[2].quit", "the session ended without QUIT (peer-closed)"))
        self.assertEqual(self.stop(srv, 3), 3)

    def test_session_open_at_stop_is_not_a_quit(self):
        srv = self.serve(COUNTS)
        self.send(srv)
        s = self.smtp(srv)
        s.noop()
        # SIGTERM while session 2 is open: it ends with 421 (shutdown), not with QUIT
        self.assertEqual(self.stop(srv, 3), 3)
        self.assertEqual([(e["expectation"], e["seen"]) for e in expect_fails(srv)],
                         [("expect[2].quit", "the session ended without QUIT (shutdown)")])


ENFORCE = """version: 1
hostname: mock.test
listeners:
  smtp: { protocol: smtp, port: 0 }
  pop3: { protocol: pop3, port: 0 }
users:
  alice:
    password: secret
    mailboxes: { INBOX: { messages: [ { raw: "Subject: one\\n\\nbody\\n" } ] } }
expect:
  - when: { listener: smtp }
    sequence: [EHLO, "MAIL FROM:*", "RCPT TO:*", "...", DATA, QUIT]
    enforce: true
  - when: { listener: pop3 }
    sequence: [USER, PASS, STAT, "...", QUIT]
    enforce: true
"""


class EnforceTest(ExpectCase):
    def test_smtp_503_and_the_session_goes_on(self):
        srv = self.serve(ENFORCE)
        s = self.smtp(srv)
        s.ehlo()
        self.assertEqual(s.noop(), (503, b"5.5.1 Command not expected by the scenario"))
        self.assertEqual(s.mail("a@client.example"), (250, b"2.1.0 Ok"))
        # RSET is refused and not run: the transaction is still there for RCPT
        self.assertEqual(s.rset(), (503, b"5.5.1 Command not expected by the scenario"))
        self.assertEqual(s.rcpt("b@mock.test"), (250, b"2.1.5 Ok"))
        self.assertEqual(s.data(BODY)[0], 250)
        self.assertEqual(s.quit()[0], 221)
        self.assertEqual(len(srv.wait_messages(1)), 1)
        wait_closed_event(srv, 1)
        evs = expect_fails(srv)
        self.assertEqual([e["expectation"] for e in evs], ["expect[0].sequence"] * 2)
        self.assertTrue(evs[0]["seen"].startswith("got noop where MAIL FROM:* was expected "
                                                  "(refused: enforce)"), evs[0]["seen"])
        self.assertTrue(evs[1]["seen"].startswith("got rset where RCPT TO:* was expected"),
                        evs[1]["seen"])
        # the sequence itself was completed: no report at the end
        self.assertEqual(self.stop(srv, 3), 3)

    def test_smtp_compliant_client_exit_0(self):
        srv = self.serve(ENFORCE)
        s = self.smtp(srv)
        self.assertEqual(s.sendmail("a@client.example", ["b@mock.test", "c@mock.test"], BODY),
                         {})
        s.quit()
        wait_closed_event(srv, 1)
        self.assertEqual(self.stop(srv), 0, srv.stderr_text())

    def test_pop3_err_and_the_session_goes_on(self):
        srv = self.serve(ENFORCE)
        p = poplib.POP3(HOST, srv.port("pop3"), timeout=5)
        self.addCleanup(p.close)
        p.user("alice")
        p.pass_("secret")
        with self.assertRaises(poplib.error_proto) as cm:
            p.list()
        self.assertEqual(cm.exception.args[0], b"-ERR command not expected by the scenario")
        self.assertEqual(p.stat(), (1, len(b"Subject: one\r\n\r\nbody\r\n")))
        self.assertTrue(p.quit().startswith(b"+OK"))
        wait_closed_event(srv, 1)
        [ev] = expect_fails(srv)
        self.assertEqual(ev["expectation"], "expect[1].sequence")
        self.assertTrue(ev["seen"].startswith("got LIST where STAT was expected"), ev["seen"])
        self.assertEqual(self.stop(srv, 3), 3)


CMD = """version: 1
hostname: mock.test
listeners: { smtp: { protocol: smtp, port: 0 } }
expect:
  - { messages: 1 }
"""

SEND_ONE = ("import os, smtplib\n"
            "s = smtplib.SMTP(os.environ['MOCKSRV_SMTP_HOST'],"
            " int(os.environ['MOCKSRV_SMTP_PORT']), timeout=5)\n"
            "s.sendmail('cmd@client.example', ['b@mock.test'], b'Subject: x\\r\\n\\r\\nhi\\r\\n')\n"
            "s.quit()\n")


class CmdModeTest(ExpectCase):
    """SPEC 2: with -- CMD, CMD's status when non-zero, else 3 if an expectation failed."""

    def test_met_and_cmd_ok(self):
        srv = self.serve(CMD, cmd=[sys.executable, "-c", SEND_ONE])
        self.assertEqual(srv.wait(10), 0, srv.stderr_text())

    def test_unmet_and_cmd_ok(self):
        srv = self.serve(CMD, status=3, cmd=["sh", "-c", "exit 0"])
        self.assertEqual(srv.wait(10), 3)
        self.assertEqual([e["seen"] for e in expect_fails(srv)], ["0 messages, expected 1"])

    def test_cmd_failure_wins(self):
        srv = self.serve(CMD, status=5, cmd=["sh", "-c", "exit 5"])
        self.assertEqual(srv.wait(10), 5)
        self.assertEqual(len(expect_fails(srv)), 1)  # still reported

    def test_met_and_cmd_failure(self):
        srv = self.serve(CMD, status=4,
                         cmd=[sys.executable, "-c", SEND_ONE + "raise SystemExit(4)\n"])
        self.assertEqual(srv.wait(10), 4)
        self.assertEqual(expect_fails(srv), [])


class ExampleCNeverTest(ExpectCase):
    """FAULTS.md example C's expect: on fixtures/faults/starttls-family.yaml: session 2 has
    STARTTLS stripped from its EHLO; a client that logs in anyway does so in plaintext, which
    `never: ["AUTH *", "MAIL FROM:*"]` (encrypted: false) reports. Session 1 uses STARTTLS when
    it is offered and answered with 220 (whatever the TLS faults of session 1 become), and only
    then logs in."""

    def start(self):
        return self.spawn(fault_fixture("starttls-family.yaml"))

    def careful_session(self, srv):
        s = self.smtp(srv)
        s.ehlo("careful.example")
        if not s.has_extn("starttls"):
            s.quit()
            return
        try:
            s.starttls(context=client_context(srv.ca_file))
        except smtplib.SMTPResponseException:
            s.quit()  # TLS refused: no login in plaintext
            return
        s.ehlo("careful.example")
        self.assertEqual(s.login("alice", "secret")[0], 235)
        s.quit()

    def test_careful_client_exit_0(self):
        srv = self.start()
        self.careful_session(srv)
        wait_closed_event(srv, 1)
        self.assertEqual(self.stop(srv), 0, srv.stderr_text())
        self.assertEqual(expect_fails(srv), [])

    def test_stripped_session_logging_in_plaintext_exit_3(self):
        srv = self.start()
        self.careful_session(srv)
        s = self.smtp(srv)  # session 2: STARTTLS stripped
        s.ehlo("naive.example")
        self.assertFalse(s.has_extn("starttls"))
        self.assertEqual(s.login("alice", "secret")[0], 235)
        s.quit()
        wait_closed_event(srv, 2)
        [ev] = expect_fails(srv)
        self.assertEqual((ev["session"], ev["expectation"]), (2, "expect[0].never"))
        self.assertTrue(ev["seen"].startswith("got AUTH "), ev["seen"])
        self.assertEqual(self.stop(srv, 3), 3)


if __name__ == "__main__":
    unittest.main()
