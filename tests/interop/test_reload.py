#!/usr/bin/env python3
"""test_reload.py - SIGHUP reloads the scenario's mailboxes and settings without dropping
listeners or sessions (SPEC 2); a broken scenario is refused and the previous state stays.

Python's poplib and smtplib observe the effect: the INBOX a new POP3 session sees, the SIZE a
new SMTP session is offered, and an SMTP session opened before the reload that keeps working.

Fault counters across a reload (FAULTS.md 5): a rule whose name and definition did not change
keeps its run counters, a changed rule starts again; raw SMTP sessions observe which NOOP gets
the rule's reply.
"""

import os
import poplib
import signal
import smtplib
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import Mocksrv, smtp_client  # noqa: E402

SCENARIO = """version: 1
hostname: reload.test
listeners:
  smtp: {{ protocol: smtp, port: 0 }}
  pop3: {{ protocol: pop3, port: 0 }}
smtp:
  max_size: {max_size}
users:
  alice:
    password: secret
    addresses: [alice@reload.test]
    mailboxes:
      INBOX:
        messages:
{messages}
"""


def write(path, max_size, subjects):
    messages = "".join('          - raw: "Subject: %s\\n\\nbody\\n"\n' % s for s in subjects)
    with open(path, "w") as f:
        f.write(SCENARIO.format(max_size=max_size, messages=messages))


def inbox(port):
    p = poplib.POP3("127.0.0.1", port, timeout=10)
    try:
        p.user("alice")
        p.pass_("secret")
        count = p.stat()[0]
        return [b"\r\n".join(p.retr(i + 1)[1]) for i in range(count)]
    finally:
        p.quit()


FAULTS_SCENARIO = """version: 1
listeners:
  smtp: {{ protocol: smtp, port: 0 }}
faults:
  - name: second-noop
    when: {{ command: NOOP, nth: 2, count: run }}
    reply: "{second}"
  - name: other
    when: {{ command: HELP }}
    reply: "{other}"
"""


def write_faults(path, second, other):
    with open(path, "w") as f:
        f.write(FAULTS_SCENARIO.format(second=second, other=other))


def session_reply(port, command="NOOP"):
    """One SMTP session: the reply to COMMAND, then QUIT."""
    with smtp_client(port) as c:
        reply = c.cmd(command)
        c.cmd("QUIT")
        return reply


def size_offered(port):
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    try:
        s.ehlo("c")
        return int(s.esmtp_features["size"])
    finally:
        s.quit()


class ReloadTest(unittest.TestCase):
    def test_sighup_reloads_mailboxes_and_settings(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "s.yaml")
            write(path, "1KiB", ["first"])
            with Mocksrv(path) as srv:
                pop3, smtp = srv.port("pop3"), srv.port("smtp")
                self.assertEqual(inbox(pop3), [b"Subject: first\r\n\r\nbody"])
                self.assertEqual(size_offered(smtp), 1024)
                with smtp_client(smtp) as open_session:
                    self.assertEqual(open_session.cmd("EHLO before.reload")[:3], "250")
                    write(path, "2KiB", ["one", "two"])
                    srv.signal(signal.SIGHUP)
                    reload = srv.wait_event(lambda e: e["event"] == "reload", what="reload")
                    self.assertTrue(reload["ok"])
                    # same listeners, new world
                    self.assertEqual(srv.port("pop3"), pop3)
                    self.assertEqual(inbox(pop3), [b"Subject: one\r\n\r\nbody",
                                                   b"Subject: two\r\n\r\nbody"])
                    self.assertEqual(size_offered(smtp), 2048)
                    # the session opened before the reload goes on
                    self.assertEqual(open_session.cmd("NOOP"), "250 2.0.0 Ok")
                    self.assertEqual(open_session.cmd("QUIT"), "221 2.0.0 Bye")
            self.assertEqual(srv.returncode, 0)

    def reload(self, srv, count):
        """SIGHUP, then waits for the COUNT-th reload event, which must say ok."""
        srv.signal(signal.SIGHUP)
        srv.wait_event(lambda e: e["event"] == "reload"
                       and sum(x["event"] == "reload" for x in srv.events()) >= count,
                       what="reload %d" % count)
        self.assertTrue([e for e in srv.events() if e["event"] == "reload"][count - 1]["ok"])

    def test_reload_keeps_counters_of_unchanged_rules(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "s.yaml")
            write_faults(path, "250 second noop", "214 one")
            with Mocksrv(path) as srv:
                port = srv.port("smtp")
                # nth: 2 with count: run: the second session's NOOP
                self.assertEqual(session_reply(port), "250 Ok")
                self.assertEqual(session_reply(port), "250 second noop")
                # another rule changes: second-noop keeps its count (3 and 4 now; were it
                # reset, the 4th session would be its 2nd match and get the reply)
                write_faults(path, "250 second noop", "214 two")
                self.reload(srv, 1)
                self.assertEqual(session_reply(port, "HELP"), "214 two")
                self.assertEqual(session_reply(port), "250 Ok")
                self.assertEqual(session_reply(port), "250 Ok")
                # its own definition changes: counting starts again
                write_faults(path, "250 second noop, again", "214 two")
                self.reload(srv, 2)
                self.assertEqual(session_reply(port), "250 Ok")
                self.assertEqual(session_reply(port), "250 second noop, again")
                fired = [e["counters"]["match"] for e in srv.events()
                         if e["event"] == "fault" and e["rule"] == "second-noop"]
                self.assertEqual(fired, [2, 2])
            self.assertEqual(srv.returncode, 0)

    def test_bad_scenario_keeps_previous_state(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "s.yaml")
            write(path, "1KiB", ["kept"])
            with Mocksrv(path) as srv:
                with open(path, "a") as f:
                    f.write("bogus_key: 1\n")
                srv.signal(signal.SIGHUP)
                reload = srv.wait_event(lambda e: e["event"] == "reload", what="reload")
                self.assertFalse(reload["ok"])
                self.assertIn("s.yaml:", reload["error"])
                self.assertIn("bogus_key", reload["error"])
                self.assertEqual(inbox(srv.port("pop3")), [b"Subject: kept\r\n\r\nbody"])
                self.assertEqual(size_offered(srv.port("smtp")), 1024)
            self.assertEqual(srv.returncode, 0)
            self.assertIn("reload failed", srv.stderr_text())


if __name__ == "__main__":
    unittest.main()
