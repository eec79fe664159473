"""TLS files that are not what they claim (issue 10, item 3), against the mocksrv binary:

- a tls.client_ca that is empty, DER or garbage, a tls.cert without a certificate and a tls.key
  that does not match tls.cert are refused by `mocksrv --check` and by a plain start, with exit
  status 2 and "FILE:LINE:COLUMN: tls.KEY: PATH: ..." naming the key's position (they used to
  pass --check and start, and the first TLS client aborted the process);
- a client CA spoiled after start (the generated certificate's SSL_CTX is built at the first
  handshake and reads it then) fails that session with a tls.fail event saying why, and the
  server goes on: a second client is served, and once the file is good again, TLS works."""
import os
import smtplib
import ssl
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import MocksrvCase, binary, cert, client_context  # noqa: E402

TOOL_TIMEOUT = 30
HOST = "127.0.0.1"

SCENARIO = """version: 1
hostname: localhost
listeners:
  smtp: { protocol: smtp, port: 0, tls: starttls }
users:
  alice: { password: secret, addresses: [alice@mock.test] }
tls:
%s
"""


def pem_to_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


class TlsBadFilesTest(MocksrvCase):
    def setUp(self):
        self.tmp = self.tmpdir()

    def write(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def scenario(self, tls_lines):
        """A scenario file whose tls: section is tls_lines; returns its path and the line of
        each tls key (1-based)."""
        text = SCENARIO % "\n".join("  " + l for l in tls_lines)
        path = self.write("scenario.yaml", text.encode())
        lines = {}
        for i, line in enumerate(text.splitlines(), 1):
            key = line.strip().split(":")[0]
            if line.startswith("  ") and key in ("cert", "key", "client_ca"):
                lines[key] = i
        return path, lines

    def run_mocksrv(self, *args):
        env = dict(os.environ, TMPDIR=self.tmp)
        return subprocess.run([binary(), *args], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=TOOL_TIMEOUT, env=env)

    def assert_refused(self, path, key, line, want):
        """--check and a start both exit 2 naming path:line:3: tls.key and saying want."""
        for args in (["--check", path], ["--ephemeral", path]):
            p = self.run_mocksrv(*args)
            err = p.stderr.decode("utf-8", "replace")
            self.assertEqual(p.returncode, 2, "%s: exit %d, stdout %r, stderr %r"
                             % (args, p.returncode, p.stdout, err))
            self.assertIn("%s:%d:3: tls.%s: " % (path, line, key), err)
            self.assertIn(want, err)
            self.assertNotIn("ready", p.stdout.decode("utf-8", "replace"))

    def test_client_ca_not_pem_is_refused_at_load(self):
        der = self.write("ca.der", pem_to_der(cert("ca.pem")))
        cases = [
            ("empty.pem", b"", "empty file"),
            ("ca.der", None, "looks like DER"),
            ("garbage.pem", b"this is not a certificate\n", "no PEM certificate"),
        ]
        for name, data, want in cases:
            with self.subTest(name=name):
                path = der if data is None else self.write(name, data)
                sc, lines = self.scenario(["client_ca: %s" % path])
                self.assert_refused(sc, "client_ca", lines["client_ca"], want)

    def test_cert_without_certificate_and_mismatched_key_are_refused(self):
        key = self.write("server.key", open(cert("server.key"), "rb").read())
        sc, lines = self.scenario(["cert: %s" % key, "key: %s" % key])
        self.assert_refused(sc, "cert", lines["cert"], "no PEM certificate")
        sc, lines = self.scenario(["cert: %s" % cert("server.pem"),
                                   "key: %s" % cert("client.key")])
        self.assert_refused(sc, "key", lines["key"], "does not match")

    def test_good_files_pass(self):
        sc, _ = self.scenario(["cert: %s" % cert("server.pem"), "key: %s" % cert("server.key"),
                               "client_ca: %s" % cert("ca.pem")])
        p = self.run_mocksrv("--check", sc)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_client_ca_spoiled_after_start_fails_one_session_not_the_server(self):
        ca = self.write("client-ca.pem", open(cert("ca.pem"), "rb").read())
        sc, _ = self.scenario(["client_ca: %s" % ca])
        srv = self.spawn(sc, env={"TMPDIR": self.tmp})
        good = open(ca, "rb").read()
        self.write("client-ca.pem", b"garbage\n")
        ctx = client_context(srv.ca_file)

        # the first TLS session fails (the SSL_CTX cannot be built), the process lives
        s = smtplib.SMTP(HOST, srv.port("smtp"), timeout=TOOL_TIMEOUT)
        s.ehlo("client.test")
        with self.assertRaises((ssl.SSLError, smtplib.SMTPServerDisconnected, OSError)):
            s.starttls(context=ctx)
        s.close()
        ev = srv.wait_event(lambda e: e.get("event") == "tls.fail", what="tls.fail")
        self.assertIn(ca, ev.get("reason", ""))
        self.assertIsNone(srv.proc.poll(), "mocksrv exited: %s" % srv.stderr_text())

        # a second client is served
        with smtplib.SMTP(HOST, srv.port("smtp"), timeout=TOOL_TIMEOUT) as s:
            self.assertEqual(s.ehlo("client.test")[0], 250)
            s.sendmail("bob@mock.test", ["alice@mock.test"], b"Subject: after\r\n\r\nhi\r\n")
        srv.wait_messages(1)

        # and TLS works again once the file does
        self.write("client-ca.pem", good)
        with smtplib.SMTP(HOST, srv.port("smtp"), timeout=TOOL_TIMEOUT) as s:
            s.starttls(context=ctx)
            self.assertEqual(s.ehlo("client.test")[0], 250)
        self.assertEqual(srv.stop(), 0, srv.stderr_text())
        self.assertNotIn("fatal", srv.stderr_text())


if __name__ == "__main__":
    unittest.main()
