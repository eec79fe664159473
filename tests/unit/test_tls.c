/*
 * test_tls.c - tls.c without sockets: a server ms_tls and an OpenSSL client, each over memory
 * BIOs, exchanging bytes by hand. Checks the generated certificates (chain, names, key type,
 * the CA file and its removal), handshakes in arbitrary byte splits, data both ways, a client
 * certificate's subject, garbage instead of a ClientHello, min_version.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"

struct client {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *in, *out;
};

static void
client_init(struct client *c, const char *ca_file, const char *host, int max_version)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(c->ctx);
    if (ca_file) {
        ck_assert_int_eq(SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL), 1);
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    }
    if (max_version)
        SSL_CTX_set_max_proto_version(c->ctx, max_version);
    c->ssl = SSL_new(c->ctx);
    c->in = BIO_new(BIO_s_mem());
    c->out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(c->in, -1);
    SSL_set_bio(c->ssl, c->in, c->out);
    SSL_set_connect_state(c->ssl);
    if (host) {
        SSL_set_tlsext_host_name(c->ssl, host);
        SSL_set1_host(c->ssl, host);
    }
}

static void
client_fini(struct client *c)
{
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
}

/* Moves pending ciphertext client -> server in pieces of at most split bytes. */
static void
to_server(struct client *c, struct ms_tls *s, size_t split)
{
    char buf[65536];
    int n;
    while ((n = BIO_read(c->out, buf, sizeof buf)) > 0)
        for (int off = 0; off < n; off += (int)split)
            ms_tls_feed(s, buf + off, MS_MIN(split, (size_t)(n - off)));
}

static void
to_client(struct ms_tls *s, struct client *c)
{
    struct ms_buf b = {0};
    ms_tls_drain(s, &b);
    if (b.len)
        BIO_write(c->in, b.data, (int)b.len);
    ms_buf_fini(&b);
}

/* Runs both handshakes to the end; returns the server's last status. */
static enum ms_tls_status
handshake(struct client *c, struct ms_tls *s, size_t split)
{
    enum ms_tls_status st = MS_TLS_WANT_INPUT;
    int client_done = 0;
    for (int i = 0; i < 50; i++) {
        if (!client_done) {
            int r = SSL_do_handshake(c->ssl);
            client_done = r == 1;
            if (r != 1 && SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ) {
                to_server(c, s, split); /* the client's alert */
                ERR_clear_error();
                return ms_tls_handshake(s);
            }
        }
        to_server(c, s, split);
        st = ms_tls_handshake(s);
        to_client(s, c);
        if (st == MS_TLS_ERROR || (st == MS_TLS_OK && client_done))
            return st;
    }
    return st;
}

/* A server session; the context is always usable in these tests. */
static struct ms_tls *
session_create(struct ms_tls_ctx *ctx)
{
    const char *reason = NULL;
    struct ms_tls *s = ms_tls_create(ctx, &reason);
    ck_assert_msg(s != NULL, "ms_tls_create: %s", reason ? reason : "?");
    return s;
}

static struct ms_tls_ctx *
generated_ctx(const char *hostname, int min_version, const char *client_ca)
{
    struct ms_tls_options opt = {
        .hostname = hostname, .min_version = min_version, .client_ca = client_ca};
    struct ms_tls_ctx *ctx = NULL;
    struct mocksrv_error err = {0};
    int rc = ms_tls_ctx_create(&opt, &ctx, &err);
    ck_assert_msg(rc == MOCKSRV_OK, "ms_tls_ctx_create: %s", err.message);
    return ctx;
}

START_TEST(test_generated_chain_verifies_for_every_name)
{
    struct ms_tls_ctx *ctx = generated_ctx("mock.test", 0, NULL);
    const char *ca = ms_tls_ctx_ca_file(ctx);
    ck_assert_ptr_nonnull(ca);
    ck_assert_int_eq(access(ca, R_OK), 0);
    const char *names[] = {"mock.test", "localhost", "127.0.0.1", "::1"};
    for (size_t i = 0; i < 4; i++) {
        struct client c;
        client_init(&c, ca, NULL, 0);
        X509_VERIFY_PARAM *vp = SSL_get0_param(c.ssl);
        if (strchr(names[i], '.') && names[i][0] >= '0' && names[i][0] <= '9')
            X509_VERIFY_PARAM_set1_ip_asc(vp, names[i]);
        else if (strchr(names[i], ':'))
            X509_VERIFY_PARAM_set1_ip_asc(vp, names[i]);
        else
            SSL_set1_host(c.ssl, names[i]);
        struct ms_tls *s = session_create(ctx);
        ck_assert_msg(handshake(&c, s, 65536) == MS_TLS_OK, "name %s: %s", names[i],
                      ms_tls_error(s));
        ck_assert_int_eq(SSL_get_verify_result(c.ssl), X509_V_OK);
        ck_assert_str_eq(ms_tls_version(s), "TLSv1.3");
        ck_assert_ptr_null(ms_tls_peer_subject(s));
        /* the server's key is ECDSA P-256 */
        X509 *peer = SSL_get0_peer_certificate(c.ssl);
        EVP_PKEY *pk = X509_get0_pubkey(peer);
        ck_assert_int_eq(EVP_PKEY_get_id(pk), EVP_PKEY_EC);
        ck_assert_int_eq(EVP_PKEY_get_bits(pk), 256);
        ms_tls_destroy(&s);
        client_fini(&c);
    }
    /* a name the certificate does not carry fails verification */
    struct client c;
    client_init(&c, ca, "wrong.example", 0);
    struct ms_tls *s = session_create(ctx);
    ck_assert_int_ne(handshake(&c, s, 65536), MS_TLS_OK);
    ms_tls_destroy(&s);
    client_fini(&c);

    char *dir = strdup(ca);
    *strrchr(dir, '/') = '\0';
    ms_tls_ctx_destroy(&ctx);
    struct stat st;
    ck_assert_msg(stat(dir, &st) != 0, "%s still exists after destroy", dir);
    free(dir);
}
END_TEST

START_TEST(test_byte_splits_and_data)
{
    struct ms_tls_ctx *ctx = generated_ctx("localhost", 0, NULL);
    size_t splits[] = {1, 7, 100, 65536};
    for (size_t k = 0; k < 4; k++) {
        struct client c;
        client_init(&c, ms_tls_ctx_ca_file(ctx), "localhost", 0);
        struct ms_tls *s = session_create(ctx);
        ck_assert_msg(handshake(&c, s, splits[k]) == MS_TLS_OK, "split %zu: %s", splits[k],
                      ms_tls_error(s));
        /* client -> server */
        ck_assert_int_eq(SSL_write(c.ssl, "EHLO x\r\n", 8), 8);
        to_server(&c, s, splits[k]);
        struct ms_buf got = {0};
        ck_assert_int_eq(ms_tls_read(s, &got), MS_TLS_OK);
        ck_assert_uint_eq(got.len, 8);
        ck_assert_mem_eq(got.data, "EHLO x\r\n", 8);
        /* server -> client */
        ck_assert_int_eq(ms_tls_write(s, "250 ok\r\n", 8), MS_TLS_OK);
        to_client(s, &c);
        char buf[64];
        int n = SSL_read(c.ssl, buf, sizeof buf);
        ck_assert_int_eq(n, 8);
        ck_assert_mem_eq(buf, "250 ok\r\n", 8);
        /* nothing more: the server wants input */
        ms_buf_clear(&got);
        ck_assert_int_eq(ms_tls_read(s, &got), MS_TLS_WANT_INPUT);
        /* close_notify from the client */
        SSL_shutdown(c.ssl);
        to_server(&c, s, splits[k]);
        ck_assert_int_eq(ms_tls_read(s, &got), MS_TLS_CLOSED);
        ms_buf_fini(&got);
        ms_tls_destroy(&s);
        client_fini(&c);
    }
    ms_tls_ctx_destroy(&ctx);
}
END_TEST

START_TEST(test_garbage_instead_of_client_hello)
{
    struct ms_tls_ctx *ctx = generated_ctx("localhost", 0, NULL);
    struct ms_tls *s = session_create(ctx);
    ms_tls_feed(s, "EHLO plaintext\r\n\x01\x02\x03 garbage garbage garbage\r\n", 44);
    ck_assert_int_eq(ms_tls_handshake(s), MS_TLS_ERROR);
    ck_assert_str_ne(ms_tls_error(s), "unknown error");
    /* OpenSSL's reason names what was wrong with the record */
    ck_assert_msg(strstr(ms_tls_error(s), "wrong version number") ||
                      strstr(ms_tls_error(s), "record") || strstr(ms_tls_error(s), "length"),
                  "reason: %s", ms_tls_error(s));
    ms_tls_destroy(&s);
    ms_tls_ctx_destroy(&ctx);
}
END_TEST

START_TEST(test_min_version_refuses_older_client)
{
    struct ms_tls_ctx *ctx = generated_ctx("localhost", TLS1_3_VERSION, NULL);
    struct client c;
    client_init(&c, ms_tls_ctx_ca_file(ctx), "localhost", TLS1_2_VERSION);
    struct ms_tls *s = session_create(ctx);
    ck_assert_int_eq(handshake(&c, s, 65536), MS_TLS_ERROR);
    ck_assert_msg(strstr(ms_tls_error(s), "protocol") || strstr(ms_tls_error(s), "version"),
                  "reason: %s", ms_tls_error(s));
    ms_tls_destroy(&s);
    client_fini(&c);
    ms_tls_ctx_destroy(&ctx);
}
END_TEST

/* A throwaway client CA and a client certificate signed by it, written as PEM files. */
static void
make_client_cert(const char *dir, const char *cn, char *ca_path, char *cert_path, char *key_path)
{
    EVP_PKEY *cakey = EVP_EC_gen("P-256"), *key = EVP_EC_gen("P-256");
    X509 *ca = X509_new(), *cert = X509_new();
    X509 *certs[2] = {ca, cert};
    EVP_PKEY *keys[2] = {cakey, key};
    const char *cns[2] = {"test client CA", cn};
    for (int i = 0; i < 2; i++) {
        X509 *x = certs[i];
        X509_set_version(x, X509_VERSION_3);
        ASN1_INTEGER_set(X509_get_serialNumber(x), i + 1);
        X509_gmtime_adj(X509_getm_notBefore(x), -60);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, keys[i]);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                   (const unsigned char *)cns[i], -1, -1, 0);
        X509_set_issuer_name(x, X509_get_subject_name(ca));
        X509V3_CTX v3;
        X509V3_set_ctx(&v3, ca, x, NULL, NULL, 0);
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                                                  i == 0 ? "critical,CA:TRUE" : "CA:FALSE");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
        X509_sign(x, cakey, EVP_sha256());
    }
    snprintf(ca_path, 512, "%s/client-ca.pem", dir);
    snprintf(cert_path, 512, "%s/client.pem", dir);
    snprintf(key_path, 512, "%s/client.key", dir);
    FILE *f = fopen(ca_path, "w");
    PEM_write_X509(f, ca);
    fclose(f);
    f = fopen(cert_path, "w");
    PEM_write_X509(f, cert);
    fclose(f);
    f = fopen(key_path, "w");
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(ca);
    X509_free(cert);
    EVP_PKEY_free(cakey);
    EVP_PKEY_free(key);
}

START_TEST(test_client_certificate_subject)
{
    char dir[] = "/tmp/mocksrv-test-tls-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char ca[512], cert[512], key[512];
    make_client_cert(dir, "alice", ca, cert, key);
    struct ms_tls_ctx *ctx = generated_ctx("localhost", 0, ca);

    struct client c;
    client_init(&c, ms_tls_ctx_ca_file(ctx), "localhost", 0);
    ck_assert_int_eq(SSL_use_certificate_file(c.ssl, cert, SSL_FILETYPE_PEM), 1);
    ck_assert_int_eq(SSL_use_PrivateKey_file(c.ssl, key, SSL_FILETYPE_PEM), 1);
    struct ms_tls *s = session_create(ctx);
    ck_assert_msg(handshake(&c, s, 65536) == MS_TLS_OK, "%s", ms_tls_error(s));
    /* TLS 1.3: the client's certificate is checked when its Finished arrives */
    ck_assert_int_eq(SSL_write(c.ssl, "x", 1), 1);
    to_server(&c, s, 65536);
    struct ms_buf got = {0};
    ck_assert_int_eq(ms_tls_read(s, &got), MS_TLS_OK);
    ms_buf_fini(&got);
    ck_assert_ptr_nonnull(ms_tls_peer_subject(s));
    ck_assert_str_eq(ms_tls_peer_subject(s), "CN=alice");
    ms_tls_destroy(&s);
    client_fini(&c);

    /* no certificate at all is allowed: requested, not required */
    client_init(&c, ms_tls_ctx_ca_file(ctx), "localhost", 0);
    s = session_create(ctx);
    ck_assert_int_eq(handshake(&c, s, 65536), MS_TLS_OK);
    ck_assert_ptr_null(ms_tls_peer_subject(s));
    ms_tls_destroy(&s);
    client_fini(&c);
    ms_tls_ctx_destroy(&ctx);

    /* a certificate from another CA is refused */
    char dir2[] = "/tmp/mocksrv-test-tls-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir2));
    char ca2[512], cert2[512], key2[512];
    make_client_cert(dir2, "mallory", ca2, cert2, key2);
    ctx = generated_ctx("localhost", 0, ca);
    client_init(&c, ms_tls_ctx_ca_file(ctx), "localhost", 0);
    SSL_use_certificate_file(c.ssl, cert2, SSL_FILETYPE_PEM);
    SSL_use_PrivateKey_file(c.ssl, key2, SSL_FILETYPE_PEM);
    s = session_create(ctx);
    enum ms_tls_status st = handshake(&c, s, 65536);
    if (st == MS_TLS_OK) {
        SSL_write(c.ssl, "x", 1);
        to_server(&c, s, 65536);
        got = (struct ms_buf){0};
        st = ms_tls_read(s, &got);
        ms_buf_fini(&got);
    }
    ck_assert_int_eq(st, MS_TLS_ERROR);
    ck_assert_ptr_nonnull(strstr(ms_tls_error(s), "certificate"));
    ms_tls_destroy(&s);
    client_fini(&c);
    ms_tls_ctx_destroy(&ctx);
    const char *files[] = {ca, cert, key, ca2, cert2, key2};
    for (int i = 0; i < 6; i++)
        unlink(files[i]);
    rmdir(dir);
    rmdir(dir2);
}
END_TEST

START_TEST(test_bad_files_are_reported)
{
    struct ms_tls_options opt = {.cert = "/nonexistent/cert.pem", .key = "/nonexistent/key.pem"};
    struct ms_tls_ctx *ctx = NULL;
    struct mocksrv_error err = {0};
    ck_assert_int_eq(ms_tls_ctx_create(&opt, &ctx, &err), MOCKSRV_ETLS);
    ck_assert_ptr_null(ctx);
    ck_assert_ptr_nonnull(strstr(err.message, "/nonexistent/cert.pem"));
    struct ms_tls_options opt2 = {.client_ca = "/nonexistent/ca.pem"};
    ck_assert_int_eq(ms_tls_ctx_create(&opt2, &ctx, &err), MOCKSRV_ETLS);
    ck_assert_ptr_nonnull(strstr(err.message, "/nonexistent/ca.pem"));
}
END_TEST

static void
write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* The first certificate of a PEM file as DER bytes (malloc'd). */
static unsigned char *
pem_to_der(const char *pem, int *len_r)
{
    FILE *f = fopen(pem, "r");
    ck_assert_ptr_nonnull(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    ck_assert_ptr_nonnull(x);
    unsigned char *der = NULL;
    *len_r = i2d_X509(x, &der);
    ck_assert_int_gt(*len_r, 0);
    X509_free(x);
    return der;
}

/* issue 10 item 3: a client CA that is not PEM is an error of ms_tls_ctx_create (it used to be
 * found at the first handshake, by ms_die). */
START_TEST(test_non_pem_client_ca_is_an_error)
{
    char dir[] = "/tmp/mocksrv-test-tls-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char ca[512], cert[512], key[512], bad[600];
    make_client_cert(dir, "alice", ca, cert, key);
    snprintf(bad, sizeof bad, "%s/bad.pem", dir);
    int der_len = 0;
    unsigned char *der = pem_to_der(ca, &der_len);
    static const char garbage[] = "this is no certificate\n";
    static const char truncated[] =
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const struct {
        const void *p;
        size_t n;
        const char *want;
    } cases[] = {
        {"", 0, "empty file"},
        {der, (size_t)der_len, "looks like DER"},
        {garbage, sizeof garbage - 1, "no PEM certificate"},
        {truncated, sizeof truncated - 1, "no PEM certificate"},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(cases); i++) {
        write_file(bad, cases[i].p, cases[i].n);
        struct ms_tls_options opt = {.hostname = "localhost", .client_ca = bad};
        struct ms_tls_ctx *ctx = NULL;
        struct mocksrv_error err = {0};
        int rc = ms_tls_ctx_create(&opt, &ctx, &err);
        ck_assert_msg(rc == MOCKSRV_ETLS, "case %zu: got %d, want MOCKSRV_ETLS", i, rc);
        ck_assert_ptr_null(ctx);
        ck_assert_msg(strstr(err.message, bad) && strstr(err.message, cases[i].want),
                      "case %zu: got \"%s\", want the file and \"%s\"", i, err.message,
                      cases[i].want);
        enum ms_tls_file which = MS_TLS_FILE_CERT;
        ck_assert_int_eq(ms_tls_check_files(&opt, &which, &err), MOCKSRV_ETLS);
        ck_assert_int_eq(which, MS_TLS_FILE_CLIENT_CA);
    }
    OPENSSL_free(der);

    /* a certificate without its key, a key that is not the certificate's */
    struct ms_tls_options opt = {.cert = ca, .key = key};
    enum ms_tls_file which = MS_TLS_FILE_CERT;
    struct mocksrv_error err = {0};
    ck_assert_int_eq(ms_tls_check_files(&opt, &which, &err), MOCKSRV_ETLS);
    ck_assert_int_eq(which, MS_TLS_FILE_KEY);
    ck_assert_msg(strstr(err.message, "does not match"), "got \"%s\"", err.message);
    opt = (struct ms_tls_options){.cert = key, .key = key};
    ck_assert_int_eq(ms_tls_check_files(&opt, &which, &err), MOCKSRV_ETLS);
    ck_assert_int_eq(which, MS_TLS_FILE_CERT);
    opt = (struct ms_tls_options){.cert = cert, .key = key, .client_ca = ca};
    ck_assert_msg(ms_tls_check_files(&opt, &which, &err) == MOCKSRV_OK, "%s", err.message);

    const char *files[] = {ca, cert, key, bad};
    for (int i = 0; i < 4; i++)
        unlink(files[i]);
    rmdir(dir);
}
END_TEST

/* A client CA spoiled after start: the lazy SSL_CTX cannot be built, so that session fails
 * with the reason (it used to abort the process); once the file is good again, TLS works. */
START_TEST(test_client_ca_spoiled_after_start_fails_the_session)
{
    char dir[] = "/tmp/mocksrv-test-tls-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char ca[512], cert[512], key[512], saved[600];
    make_client_cert(dir, "alice", ca, cert, key);
    snprintf(saved, sizeof saved, "%s/saved.pem", dir);
    ck_assert_int_eq(rename(ca, saved), 0);
    ck_assert_int_eq(link(saved, ca), 0);
    struct ms_tls_ctx *ctx = generated_ctx("localhost", 0, ca);
    unlink(ca);
    write_file(ca, "garbage\n", 8);
    const char *reason = NULL;
    struct ms_tls *s = ms_tls_create(ctx, &reason);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(reason);
    ck_assert_msg(strstr(reason, ca), "got \"%s\"", reason);
    /* the file is good again: the next session builds the context */
    ck_assert_int_eq(rename(saved, ca), 0);
    struct client c;
    client_init(&c, ms_tls_ctx_ca_file(ctx), "localhost", 0);
    s = session_create(ctx);
    ck_assert_int_eq(handshake(&c, s, 65536), MS_TLS_OK);
    ms_tls_destroy(&s);
    client_fini(&c);
    ms_tls_ctx_destroy(&ctx);
    const char *files[] = {ca, cert, key};
    for (int i = 0; i < 3; i++)
        unlink(files[i]);
    rmdir(dir);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_generated_chain_verifies_for_every_name);
    tcase_add_test(tc, test_byte_splits_and_data);
    tcase_add_test(tc, test_garbage_instead_of_client_hello);
    tcase_add_test(tc, test_min_version_refuses_older_client);
    tcase_add_test(tc, test_client_certificate_subject);
    tcase_add_test(tc, test_bad_files_are_reported);
    tcase_add_test(tc, test_non_pem_client_ca_is_an_error);
    tcase_add_test(tc, test_client_ca_spoiled_after_start_fails_the_session);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
