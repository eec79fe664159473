"""The generated CA's directory after a kill (issue 10, item 9): mocksrv without --ca-out writes
the CA to $TMPDIR/mocksrv-PID-XXXXXX, removed at a normal exit; a SIGKILL leaves it behind, and
the next mocksrv started with the same TMPDIR removes it (its PID no longer exists), while it
leaves alone a directory whose process is alive, a directory holding files mocksrv does not
write (only ca.pem is removed), and a symbolic link named like ours (never followed)."""
import os
import signal
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import MocksrvCase, scenario  # noqa: E402

SCENARIO = scenario("tls-interop.yaml")


class StaleCaDirTest(MocksrvCase):
    def setUp(self):
        self.tmp = self.tmpdir()

    def start(self, status=0):
        return self.spawn(SCENARIO, status, env={"TMPDIR": self.tmp})

    def ours(self):
        return sorted(n for n in os.listdir(self.tmp)
                      if n.startswith("mocksrv-") and n[8:9].isdigit())

    def make_dir(self, name, files=("ca.pem",)):
        path = os.path.join(self.tmp, name)
        os.mkdir(path, 0o700)
        for f in files:
            with open(os.path.join(path, f), "w") as fh:
                fh.write("x\n")
        return path

    def test_killed_process_directory_is_swept_by_the_next_start(self):
        first = self.start(status=-signal.SIGKILL)  # killed below
        ca_dir = os.path.dirname(first.ca_file)
        self.assertEqual(os.path.dirname(ca_dir), self.tmp)
        self.assertTrue(os.path.basename(ca_dir).startswith("mocksrv-%d-" % first.proc.pid))
        first.signal(signal.SIGKILL)  # the PID we started
        first.proc.wait(timeout=10)
        dead = first.proc.pid
        self.assertTrue(os.path.isfile(first.ca_file), "a SIGKILL leaves the CA behind")

        # a live process's directory (this test's own PID), one with a file that is not ours,
        # and a symbolic link to a directory, both under the dead PID
        live = self.make_dir("mocksrv-%d-AbC123" % os.getpid())
        foreign = self.make_dir("mocksrv-%d-keepme" % dead, ("ca.pem", "notes.txt"))
        target = tempfile.mkdtemp(prefix="target-", dir=self.tmp)
        with open(os.path.join(target, "ca.pem"), "w") as fh:
            fh.write("not mocksrv's\n")
        link = os.path.join(self.tmp, "mocksrv-%d-link00" % dead)
        os.symlink(target, link)

        second = self.start()
        new_dir = os.path.dirname(second.ca_file)
        self.assertFalse(os.path.exists(ca_dir), "the killed process's directory is still there")
        self.assertTrue(os.path.isfile(second.ca_file))
        self.assertTrue(os.path.isfile(os.path.join(live, "ca.pem")),
                        "the directory of a live process was touched")
        self.assertTrue(os.path.isfile(os.path.join(foreign, "notes.txt")))
        self.assertTrue(os.path.isdir(foreign), "a directory with other files was removed")
        self.assertTrue(os.path.islink(link))
        self.assertTrue(os.path.isfile(os.path.join(target, "ca.pem")), "a symlink was followed")
        self.assertEqual(second.stop(), 0, second.stderr_text())
        self.assertFalse(os.path.exists(new_dir), "a normal exit removes its directory")
        self.assertEqual(self.ours(), sorted([os.path.basename(live), os.path.basename(foreign),
                                              os.path.basename(link)]))


if __name__ == "__main__":
    unittest.main()
