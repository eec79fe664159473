"""A scenario too large for the machine (issue 10, item 7): `mocksrv --check` and a start refuse
generate entries whose messages would not fit in memory, with exit status 2, the position of
the generate key and both figures (it used to pass --check and abort "out of memory" at
start); a scenario of a few megabytes still checks and starts, and serves its messages."""
import os
import poplib
import subprocess
import sys
import tempfile
import shutil
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import Mocksrv, binary  # noqa: E402

TOOL_TIMEOUT = 60

SCENARIO = """version: 1
listeners:
  pop3: { protocol: pop3, port: 0 }
limits: { message_size: 1GiB }
users:
  alice:
    password: secret
    mailboxes:
      INBOX:
        messages:
          - raw: "Subject: first\\r\\n\\r\\nhello\\r\\n"
          - raw: "Subject: second\\r\\n\\r\\nhello\\r\\n"
          - generate: {count: %d, size: %s}
"""


def physical_memory():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 0


class ScenarioMemoryTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mocksrv-memory-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def write(self, count, size):
        path = os.path.join(self.tmp, "s.yaml")
        with open(path, "w") as f:
            f.write(SCENARIO % (count, size))
        return path

    def run_mocksrv(self, *args):
        return subprocess.run([binary(), *args], stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=TOOL_TIMEOUT, env=dict(os.environ, TMPDIR=self.tmp))

    def assert_refused(self, count, size):
        path = self.write(count, size)
        for args in (["--check", path], ["--ephemeral", path]):
            p = self.run_mocksrv(*args)
            err = p.stderr.decode("utf-8", "replace")
            self.assertEqual(p.returncode, 2, "%s: exit %d, stderr %r" % (args, p.returncode, err))
            self.assertIn("%s:13:13: users.alice.mailboxes.INBOX.messages[2].generate: the "
                          "mailboxes would need about " % path, err)
            self.assertIn("above the limit of", err)
            self.assertNotIn("out of memory", err)

    def test_million_messages_of_a_gigabyte_are_refused(self):
        self.assert_refused(1000000, "1GiB")

    def test_issue_example_is_refused(self):
        # 1000000 x 64KiB is about 70GiB; refused wherever half the memory is less
        if physical_memory() >= 140 << 30:
            self.skipTest("a machine with 140GiB or more may hold it")
        self.assert_refused(1000000, "64KiB")

    def test_a_few_megabytes_check_and_start(self):
        path = self.write(100, "64KiB")
        p = self.run_mocksrv("--check", path)
        self.assertEqual(p.returncode, 0, p.stderr)
        with Mocksrv(path, env={"TMPDIR": self.tmp}) as srv:
            pop = poplib.POP3(srv.host, srv.port("pop3"), timeout=TOOL_TIMEOUT)
            pop.user("alice")
            pop.pass_("secret")
            count, size = pop.stat()
            self.assertEqual(count, 102)
            self.assertGreater(size, 100 * 64 * 1024 * 0.9)
            pop.quit()


if __name__ == "__main__":
    unittest.main()
