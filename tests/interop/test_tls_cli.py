"""The certificates of the mocksrv command line (SPEC 2 and 6), checked with Python's ssl:

- without --cert, the ready line's ca_file is a CA that verifies the generated server
  certificate for the hostname, localhost, 127.0.0.1 and ::1; it lives in a private temporary
  directory (under $TMPDIR) that is gone when mocksrv exits, after SIGTERM and after -- CMD (which
  gets it as MOCKSRV_CA_FILE);
- --ca-out PATH writes the CA there (ca_file names it), creates nothing under $TMPDIR, and the
  file stays after exit;
- --cert/--key with the fixed test certificate (MOCKSRV_CERTS) serves exactly that certificate
  (DER compared) on implicit, STARTTLS and STLS listeners, and a chain file sends the chain;
- the fixed bad certificates (expired, wrong host, self-signed) are served as given and a
  verifying client refuses each for the right reason; a key that does not match the certificate
  or a missing file stops mocksrv before the ready line with exit status 2."""
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import (Mocksrv, binary, cert, client_context, pop3_client,  # noqa: E402
                             scenario, smtp_client)

SCENARIO = scenario("tls-interop.yaml")
NAMES = [("mock.test", "smtps"), ("localhost", "smtps"), ("127.0.0.1", "smtps"),
         ("::1", "smtps6")]


def der_of(pem_path):
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


class TlsCliTest(unittest.TestCase):
    def setUp(self):
        # a private TMPDIR for mocksrv: whatever it leaves there is ours to see
        self.tmpdir = tempfile.mkdtemp(prefix="mocksrv-tlscli-")
        self.addCleanup(shutil.rmtree, self.tmpdir, True)

    def start(self, args=(), env=None, **kw):
        e = {"TMPDIR": self.tmpdir}
        e.update(env or {})
        srv = Mocksrv(kw.pop("scenario_path", SCENARIO), args=args, env=e, **kw).start()

        def stop():
            srv.stop()
            srv.cleanup()
        self.addCleanup(stop)
        return srv

    def stop(self, srv):
        rc = srv.stop()
        self.assertEqual(rc, 0, srv.stderr_text())
        self.assertFalse(srv.killed)

    def handshake(self, srv, listener, ctx, name):
        """The server's certificate (DER) after a verifying handshake on an implicit listener."""
        host, port = srv.addr(listener)
        c = smtp_client(port, host=host, tls=ctx, server_hostname=name)
        self.addCleanup(c.close)
        self.assertTrue(c.greeting.startswith("220 "), c.greeting)
        c.cmd("QUIT")
        return c.sock.getpeercert(binary_form=True)

    # ---- the generated CA ----

    def test_generated_ca_verifies_every_name(self):
        srv = self.start()
        ca = srv.ca_file
        self.assertTrue(os.path.isabs(ca), ca)
        self.assertTrue(os.path.isfile(ca), ca)
        ders = set()
        for name, listener in NAMES:
            with self.subTest(name=name):
                ders.add(self.handshake(srv, listener, client_context(ca), name))
        self.assertEqual(len(ders), 1, "one server certificate for every listener")
        for name in ("wrong.example", "10.0.0.1"):
            with self.subTest(refused=name):
                with self.assertRaises(ssl.SSLCertVerificationError) as cm:
                    self.handshake(srv, "smtps", client_context(ca), name)
                self.assertIn("mismatch", str(cm.exception))
        self.stop(srv)

    def test_generated_ca_dir_removed_at_exit(self):
        srv = self.start()
        ca = srv.ca_file
        ca_dir = os.path.dirname(ca)
        self.assertEqual(os.path.dirname(ca_dir), self.tmpdir, "ca_file not under $TMPDIR: %s"
                         % ca)
        self.assertEqual(oct(os.stat(ca_dir).st_mode & 0o777), oct(0o700), "private directory")
        self.handshake(srv, "smtps", client_context(ca), "localhost")
        self.stop(srv)
        self.assertFalse(os.path.exists(ca_dir), "%s left behind" % ca_dir)
        self.assertEqual(os.listdir(self.tmpdir), [])

    def test_generated_ca_for_cmd_removed_at_exit(self):
        # -- CMD: the command gets MOCKSRV_CA_FILE and uses it to verify; the directory is gone
        # when mocksrv exits with the command's status.
        probe = ("import os, socket, ssl, sys\n"
                 "ca = os.environ['MOCKSRV_CA_FILE']\n"
                 "ctx = ssl.create_default_context(cafile=ca)\n"
                 "port = int(os.environ['MOCKSRV_SMTPS_PORT'])\n"
                 "s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', port), timeout=5),"
                 " server_hostname='mock.test')\n"
                 "s.settimeout(5)\n"
                 "assert s.recv(100).startswith(b'220 ')\n"
                 "s.close()\n"
                 "print(ca)\n")
        srv = self.start(cmd=[sys.executable, "-c", probe])
        rc = srv.wait()
        self.assertEqual(rc, 0, srv.stderr_text())
        ca = srv.stdout_rest.decode().strip()
        self.assertEqual(ca, srv.ca_file)
        self.assertFalse(os.path.exists(ca))
        self.assertEqual(os.listdir(self.tmpdir), [])

    def test_ca_out(self):
        out = os.path.join(self.tmpdir, "out", "my-ca.pem")
        os.mkdir(os.path.dirname(out))
        srv = self.start(args=["--ca-out", out])
        self.assertEqual(os.path.realpath(srv.ca_file), os.path.realpath(out))
        self.assertTrue(os.path.isfile(out))
        self.assertEqual(sorted(os.listdir(self.tmpdir)), ["out"], "a temporary CA dir as well")
        for name, listener in NAMES:
            with self.subTest(name=name):
                self.handshake(srv, listener, client_context(out), name)
        self.stop(srv)
        self.assertTrue(os.path.isfile(out), "--ca-out file removed at exit")
        self.assertEqual(sorted(os.listdir(self.tmpdir)), ["out"])
        # and it is a CA certificate: it verifies nothing else
        with open(out) as f:
            self.assertIn("-----BEGIN CERTIFICATE-----", f.read())

    # ---- --cert/--key ----

    def test_fixed_certificate_is_served(self):
        srv = self.start(args=["--cert", cert("server.pem"), "--key", cert("server.key")])
        want = der_of(cert("server.pem"))
        ctx = client_context(cert("ca.pem"))
        for name, listener in NAMES:
            with self.subTest(listener=listener, name=name):
                self.assertEqual(self.handshake(srv, listener, ctx, name), want)
        with self.subTest(listener="smtp STARTTLS"):
            c = smtp_client(srv.port("smtp"))
            self.addCleanup(c.close)
            c.cmd("EHLO client.example")
            c.cmd("STARTTLS")
            self.assertEqual(c.start_tls(ctx, "mock.test").getpeercert(True), want)
        with self.subTest(listener="pop3 STLS"):
            p = pop3_client(srv.port("pop3"))
            self.addCleanup(p.close)
            p.cmd("STLS")
            self.assertEqual(p.start_tls(ctx, "localhost").getpeercert(True), want)
        # no generated CA: nothing under $TMPDIR
        self.assertEqual(os.listdir(self.tmpdir), [])
        self.stop(srv)

    def test_chain_file_sends_the_chain(self):
        srv = self.start(args=["--cert", cert("server-chain.pem"), "--key", cert("server.key")])
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.port("smtps"),
                            "-showcerts", "-CAfile", cert("ca.pem"), "-verify_return_error",
                            "-verify_hostname", "mock.test"],
                           input=b"", capture_output=True, timeout=30)
        out = r.stdout.decode("utf-8", "replace")
        self.assertEqual(r.returncode, 0, out + r.stderr.decode("utf-8", "replace"))
        self.assertEqual(out.count("-----BEGIN CERTIFICATE-----"), 2, out)
        self.assertIn("1 s:CN = mocksrv test CA", out)
        self.assertIn("Verification: OK", out)
        self.stop(srv)

    def test_bad_certificates_are_refused_by_a_verifying_client(self):
        cases = [("expired", "mock.test", "certificate has expired"),
                 ("wronghost", "mock.test", "Hostname mismatch"),
                 ("selfsigned", "localhost", "self-signed certificate")]
        for name, host, why in cases:
            with self.subTest(cert=name):
                srv = self.start(args=["--cert", cert(name + ".pem"),
                                       "--key", cert(name + ".key")])
                with self.assertRaises(ssl.SSLCertVerificationError) as cm:
                    self.handshake(srv, "smtps", client_context(cert("ca.pem")), host)
                self.assertIn(why, str(cm.exception))
                # what it served is the file given
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                self.assertEqual(self.handshake(srv, "smtps", ctx, host),
                                 der_of(cert(name + ".pem")))
                self.stop(srv)

    def test_unusable_certificate_files(self):
        cases = [("mismatched key", ["--cert", cert("server.pem"), "--key", cert("client.key")],
                  "does not match the certificate"),
                 ("missing file", ["--cert", os.path.join(self.tmpdir, "nope.pem"),
                                   "--key", cert("server.key")], "nope.pem"),
                 ("key without cert", ["--key", cert("server.key")], "--key needs --cert")]
        for what, args, message in cases:
            with self.subTest(what):
                r = subprocess.run([binary(), "--ephemeral", SCENARIO] + args,
                                   stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                                   env=dict(os.environ, TMPDIR=self.tmpdir))
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(r.stdout, b"", "a ready line despite the error")
                self.assertIn(message, r.stderr.decode("utf-8", "replace"))
        self.assertEqual(os.listdir(self.tmpdir), [])


if __name__ == "__main__":
    unittest.main()
