#!/usr/bin/env python3
"""test_spool_full.py - a message the spool cannot hold leaves nothing in it.

The spool is a small tmpfs (mounted here, so the test needs root; without root or when the mount
is refused it is skipped, saying why). A filler file leaves a few pages free; smtplib sends
messages until one gets a 4xx. Then every NNNNNN.eml has its NNNNNN.json and the other way
round, no temporary file is left, and the pairs are exactly the messages that got 250. Each file
takes one page of the tmpfs and the filler leaves an odd number of pages, so the refused message
runs out of space between its two files: the case where a half-written message used to stay.
Once the filler is deleted, the next message is accepted and its files are its own.
"""

import json
import os
import re
import smtplib
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import Mocksrv  # noqa: E402

SCENARIO = """version: 1
hostname: spool.test
listeners:
  smtp: { protocol: smtp, port: 0 }
"""

MAX_MESSAGES = 40  # the tmpfs holds far fewer: the loop ends with a 4xx well before


def body(i):
    """About 1 KiB: the .eml takes one page of the tmpfs, as does its .json."""
    return ("Subject: message %d\r\n\r\n" % i + ("line %d of message %d\r\n" % (i, i)) * 40)


def listing(spool):
    """(eml ids, json ids, other names) in the spool directory."""
    names = os.listdir(spool)
    eml = sorted(int(n[:6]) for n in names if re.fullmatch(r"\d{6}\.eml", n))
    js = sorted(int(n[:6]) for n in names if re.fullmatch(r"\d{6}\.json", n))
    other = sorted(n for n in names
                   if not re.fullmatch(r"\d{6}\.(eml|json)", n) and n != "filler")
    return eml, js, other


class SpoolFullTest(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to mount a small tmpfs as the spool")
        self.mnt = tempfile.mkdtemp(prefix="mocksrv-spool-")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", self.mnt],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        if r.returncode != 0:
            os.rmdir(self.mnt)
            self.skipTest("mount -t tmpfs refused (exit %d): %s"
                          % (r.returncode, r.stderr.decode("utf-8", "replace").strip()))

    def tearDown(self):
        subprocess.run(["umount", self.mnt], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30)
        os.rmdir(self.mnt)

    def fill(self, free_pages):
        """Writes a filler file that leaves free_pages pages of the tmpfs free."""
        st = os.statvfs(self.mnt)
        size = (st.f_bavail - free_pages) * st.f_frsize
        self.assertGreater(size, 0)
        filler = os.path.join(self.mnt, "filler")
        with open(filler, "wb") as f:
            f.write(b"x" * size)
        self.assertEqual(os.statvfs(self.mnt).f_bavail, free_pages)
        return filler

    def send(self, port, i):
        """One message with smtplib: its 250 (True) or its 4xx (False)."""
        s = smtplib.SMTP("127.0.0.1", port, timeout=10)
        try:
            s.ehlo("client.test")
            s.sendmail("sender%d@client.test" % i, ["rcpt@spool.test"], body(i))
            return True
        except smtplib.SMTPDataError as e:
            self.assertTrue(400 <= e.smtp_code < 500, "want a 4xx, got %r" % (e,))
            return False
        finally:
            s.quit()

    def assert_consistent(self, accepted):
        eml, js, other = listing(self.mnt)
        self.assertEqual(other, [], "temporary or stray files left in the spool")
        self.assertEqual(eml, js, "every .eml must have its .json and the other way round")
        self.assertEqual(len(eml), len(accepted),
                         "spooled %s, but the messages that got 250 were %s" % (eml, accepted))
        for msg_id, i in zip(eml, accepted):
            base = os.path.join(self.mnt, "%06d" % msg_id)
            with open(base + ".eml", "rb") as f:
                self.assertEqual(f.read(), body(i).encode())
            with open(base + ".json", "rb") as f:
                env = json.loads(f.read().decode("utf-8"))
            self.assertEqual(env["id"], msg_id)
            self.assertEqual(env["mail_from"], "sender%d@client.test" % i)

    def test_refused_message_leaves_no_file(self):
        filler = self.fill(free_pages=5)
        with Mocksrv(tempfile_scenario(self), spool=False, args=["--spool", self.mnt]) as srv:
            port = srv.port("smtp")
            accepted = []  # the i of each message that got 250, in order
            refused = None
            for i in range(1, MAX_MESSAGES + 1):
                if self.send(port, i):
                    accepted.append(i)
                else:
                    refused = i
                    break
            self.assertIsNotNone(refused, "no message was refused: the tmpfs never filled up")
            self.assertGreater(len(accepted), 0)
            self.assert_consistent(accepted)

            # room again: the next message is accepted and nothing of the refused one is mixed in
            os.unlink(filler)
            i = refused + 1
            self.assertTrue(self.send(port, i), "not accepted after space was freed")
            accepted.append(i)
            self.assert_consistent(accepted)
            self.assertIn("spool:", srv.stderr_text())
        self.assertEqual(srv.returncode, 0)


def tempfile_scenario(test):
    d = tempfile.mkdtemp(prefix="mocksrv-spool-sc-")
    path = os.path.join(d, "s.yaml")
    with open(path, "w") as f:
        f.write(SCENARIO)
    test.addCleanup(lambda: (os.unlink(path), os.rmdir(d)))
    return path


if __name__ == "__main__":
    unittest.main()
