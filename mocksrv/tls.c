/*
 * tls.c - OpenSSL over memory BIOs, and the certificates mocksrv makes for itself (see tls.h).
 *
 * Each connection's SSL object reads ciphertext from one memory BIO (filled by ms_tls_feed) and
 * writes ciphertext to another (emptied by ms_tls_drain); conn.c moves those bytes between the
 * socket and the BIOs, through shape.c. Nothing here blocks or touches a descriptor.
 *
 * Generated certificates: a CA ("mocksrv throwaway CA") and a server certificate signed by it,
 * both ECDSA P-256 with SHA-256, valid from an hour ago for 30 days, the server one with
 * subjectAltName DNS:<hostname>, DNS:localhost, IP:127.0.0.1, IP:::1. Made in about a
 * millisecond: two EC key generations and two signatures. The CA is made before the ready line
 * (which names its file); the server certificate, like the SSL_CTX, at the first handshake.
 */
/* The generated keys use OpenSSL's EC_KEY API, deprecated in 3.0 in favour of EVP_EC_gen: a
 * provider-made key must go through OpenSSL 3.0's encoder machinery to be put in a certificate,
 * whose first use costs about a millisecond, a fifth of the whole start-to-ready budget
 * (measured: 0.06 ms for the legacy key, 0.8-1.2 ms for the provider one). */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* The largest certificate, key or CA file read (a CA bundle of a few hundred certificates is
 * well under a megabyte). */
#define TLS_FILE_MAX (16u << 20)

struct ms_tls_ctx {
    SSL_CTX *ssl_ctx;       /* built at create with --cert, else at the first handshake */
    char build_error[1024]; /* why the lazy build of ssl_ctx failed (ms_tls_create) */
    char *ca_file;          /* generated CA, or NULL */
    char *ca_dir;           /* our private temporary directory, removed at destroy (or NULL) */
    /* the generated certificate until the SSL_CTX takes it */
    X509 *cert;
    EVP_PKEY *key;
    /* the generated CA, which signs the server certificate at the first handshake */
    X509 *ca;
    EVP_PKEY *ca_key;
    long serial;
    char *hostname;
    char *client_ca;
    int min_version;
};

struct ms_tls {
    SSL *ssl;
    BIO *in;  /* ciphertext from the peer (owned by ssl) */
    BIO *out; /* ciphertext to the peer (owned by ssl) */
    char *subject;
    char error[256];
};

/* ---- errors ---- */

/* The OpenSSL error queue as one line (and emptied), or fallback. */
static void
tls_reason(char *out, size_t n, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, out, n);
    else
        snprintf(out, n, "%s", fallback);
    ERR_clear_error();
}

static int
tls_fail(struct mocksrv_error *err, const char *what)
{
    char reason[256];
    tls_reason(reason, sizeof reason, "unknown error");
    return ms_error_set(err, MOCKSRV_ETLS, "tls: %s: %s", what, reason);
}

/* ---- checking certificate files ---- */

static const char *const tls_file_keys[] = {
    [MS_TLS_FILE_CERT] = "cert",
    [MS_TLS_FILE_KEY] = "key",
    [MS_TLS_FILE_CLIENT_CA] = "client_ca",
};

const char *
ms_tls_file_key(enum ms_tls_file which)
{
    return (size_t)which < MS_ARRAY_LEN(tls_file_keys) ? tls_file_keys[which] : "?";
}

/* The bytes of path, with err set when it cannot be read or is empty. */
static int
tls_read_file(const char *path, struct ms_buf *data, struct mocksrv_error *err)
{
    struct stat st;
    /* O_NONBLOCK: a FIFO named by a scenario must not hang the loader */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return ms_error_set(err, MOCKSRV_ETLS, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ms_error_set(err, MOCKSRV_ETLS, "%s: not a regular file", path);
    }
    for (;;) {
        ms_buf_reserve(data, 16384);
        ssize_t n = read(fd, data->data + data->len, data->cap - data->len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || data->len + (size_t)MS_MAX(n, 0) > TLS_FILE_MAX) {
            int rc = ms_error_set(err, MOCKSRV_ETLS, "%s: %s", path,
                                  n < 0 ? strerror(errno) : "larger than 16MiB");
            close(fd);
            return rc;
        }
        if (n == 0)
            break;
        data->len += (size_t)n;
    }
    close(fd);
    if (data->len == 0)
        return ms_error_set(err, MOCKSRV_ETLS, "%s: empty file (expected PEM: -----BEGIN ...)",
                            path);
    return MOCKSRV_OK;
}

/* Why a file held no PEM object of the kind wanted: DER (it starts with an ASN.1 SEQUENCE)
 * gets a hint, anything else OpenSSL's reason. */
static int
tls_not_pem(const char *path, const struct ms_buf *data, const char *what,
            struct mocksrv_error *err)
{
    char reason[256];
    tls_reason(reason, sizeof reason, "no PEM data");
    if ((unsigned char)data->data[0] == 0x30)
        return ms_error_set(err, MOCKSRV_ETLS,
                            "%s: no PEM %s in it: this looks like DER (convert it with openssl "
                            "x509 -inform der -in FILE -out FILE.pem)",
                            path, what);
    return ms_error_set(err, MOCKSRV_ETLS, "%s: no PEM %s in it (%s)", path, what, reason);
}

/* The certificates of a PEM file: at least one, each one well-formed. Returns the first one
 * (or NULL with err set). */
static X509 *
tls_check_certs(const char *path, struct mocksrv_error *err)
{
    struct ms_buf data = {0};
    X509 *first = NULL;
    if (tls_read_file(path, &data, err) != MOCKSRV_OK)
        goto out;
    BIO *b = BIO_new_mem_buf(data.data, (int)data.len);
    if (!b)
        ms_die("out of memory (BIO)");
    ERR_clear_error();
    size_t n = 0;
    for (X509 *x; (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL; n++) {
        if (!first)
            first = x;
        else
            X509_free(x);
    }
    BIO_free(b);
    /* the loop ends on "no start line" after the last certificate; anything else is a
     * certificate that did not parse */
    unsigned long e = ERR_peek_last_error();
    if (n > 0 && ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
        goto out;
    }
    X509_free(first);
    first = NULL;
    if (n > 0) {
        char reason[256];
        tls_reason(reason, sizeof reason, "unknown error");
        ms_error_set(err, MOCKSRV_ETLS, "%s: certificate %zu does not parse: %s", path, n + 1,
                     reason);
    } else {
        tls_not_pem(path, &data, "certificate", err);
    }
out:
    ms_buf_fini(&data);
    return first;
}

/* A passphrase is never asked for: a mock starts unattended. */
static int
tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static int
tls_check_key(const char *path, X509 *cert, const char *cert_path, struct mocksrv_error *err)
{
    struct ms_buf data = {0};
    int rc = tls_read_file(path, &data, err);
    if (rc != MOCKSRV_OK) {
        ms_buf_fini(&data);
        return rc;
    }
    BIO *b = BIO_new_mem_buf(data.data, (int)data.len);
    if (!b)
        ms_die("out of memory (BIO)");
    ERR_clear_error();
    EVP_PKEY *key = PEM_read_bio_PrivateKey(b, NULL, tls_no_passphrase, NULL);
    BIO_free(b);
    if (!key && memmem(data.data, data.len, "ENCRYPTED", 9)) {
        ERR_clear_error();
        rc = ms_error_set(err, MOCKSRV_ETLS,
                          "%s: the key is encrypted (mocksrv needs it without a passphrase)", path);
    } else if (!key) {
        rc = tls_not_pem(path, &data, "private key", err);
    } else if (X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        rc = ms_error_set(err, MOCKSRV_ETLS, "%s: the key does not match the certificate of %s",
                          path, cert_path);
    }
    EVP_PKEY_free(key);
    ms_buf_fini(&data);
    return rc;
}

int
ms_tls_check_files(const struct ms_tls_options *opt, enum ms_tls_file *bad_r,
                   struct mocksrv_error *err)
{
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
    enum ms_tls_file bad = MS_TLS_FILE_CERT;
    int rc = MOCKSRV_OK;
    if (opt->cert) {
        X509 *cert = tls_check_certs(opt->cert, err);
        if (!cert) {
            rc = MOCKSRV_ETLS;
        } else {
            /* the key may be in the certificate file (--cert without --key) */
            bad = opt->key ? MS_TLS_FILE_KEY : MS_TLS_FILE_CERT;
            rc = tls_check_key(opt->key ? opt->key : opt->cert, cert, opt->cert, err);
            X509_free(cert);
        }
    }
    if (rc == MOCKSRV_OK && opt->client_ca) {
        bad = MS_TLS_FILE_CLIENT_CA;
        X509 *ca = tls_check_certs(opt->client_ca, err);
        rc = ca ? MOCKSRV_OK : MOCKSRV_ETLS;
        X509_free(ca);
    }
    if (bad_r)
        *bad_r = bad;
    return rc;
}

/* ---- generated certificates ---- */

static int
tls_add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (!ext)
        return 0;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* A certificate for key, signed by signer (issuer NULL: self-signed). */
static X509 *
tls_make_cert(EVP_PKEY *key, EVP_PKEY *signer, X509 *issuer, const char *cn, long serial,
              const char *san)
{
    X509 *x = X509_new();
    if (!x)
        return NULL;
    X509_NAME *name = X509_get_subject_name(x);
    int ok = X509_set_version(x, X509_VERSION_3) &&
             ASN1_INTEGER_set(X509_get_serialNumber(x), serial) &&
             X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
             X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400) && X509_set_pubkey(x, key) &&
             X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"mocksrv",
                                        -1, -1, 0) &&
             X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                        -1, 0) &&
             X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509 *iss = issuer ? issuer : x;
    if (ok && !issuer) {
        ok = tls_add_ext(x, iss, NID_basic_constraints, "critical,CA:TRUE") &&
             tls_add_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign") &&
             tls_add_ext(x, iss, NID_subject_key_identifier, "hash");
    } else if (ok) {
        ok = tls_add_ext(x, iss, NID_basic_constraints, "critical,CA:FALSE") &&
             tls_add_ext(x, iss, NID_key_usage, "critical,digitalSignature") &&
             tls_add_ext(x, iss, NID_ext_key_usage, "serverAuth") &&
             tls_add_ext(x, iss, NID_subject_alt_name, san) &&
             tls_add_ext(x, iss, NID_authority_key_identifier, "keyid");
    }
    if (!ok || !X509_sign(x, signer, EVP_sha256())) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* subjectAltName for the server certificate: the hostname (as DNS or IP), localhost and the
 * loopback addresses. */
static void
tls_san(const char *hostname, char *out, size_t n)
{
    unsigned char addr[16];
    int is_ip = hostname && (inet_pton(AF_INET, hostname, addr) == 1 ||
                             inet_pton(AF_INET6, hostname, addr) == 1);
    int usable = hostname && *hostname && strcmp(hostname, "localhost") != 0 &&
                 strcmp(hostname, "127.0.0.1") != 0 && strcmp(hostname, "::1") != 0 &&
                 strcspn(hostname, ", :\"") == strlen(hostname);
    if (usable || (is_ip && strcmp(hostname, "127.0.0.1") != 0 && strcmp(hostname, "::1") != 0))
        snprintf(out, n, "%s:%s,DNS:localhost,IP:127.0.0.1,IP:::1", is_ip ? "IP" : "DNS", hostname);
    else
        snprintf(out, n, "DNS:localhost,IP:127.0.0.1,IP:::1");
}

static int
tls_write_pem(const char *path, X509 *cert, struct mocksrv_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return ms_error_set(err, MOCKSRV_EIO, "%s: cannot write the CA certificate: %s", path,
                            strerror(errno));
    int ok = PEM_write_X509(f, cert);
    ok = fclose(f) == 0 && ok;
    if (!ok)
        return ms_error_set(err, MOCKSRV_EIO, "%s: cannot write the CA certificate", path);
    return MOCKSRV_OK;
}

/* A new ECDSA P-256 key (see the note at the top of the file). */
static EVP_PKEY *
tls_p256_key(void)
{
    EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    EVP_PKEY *key = EVP_PKEY_new();
    if (!ec || !key || EC_KEY_generate_key(ec) != 1 || EVP_PKEY_assign_EC_KEY(key, ec) != 1) {
        EC_KEY_free(ec);
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

/* A directory name of ours, "mocksrv-PID-XXXXXX" (mkdtemp's six characters): its PID, else 0. */
static pid_t
tls_stale_pid(const char *name)
{
    if (strncmp(name, "mocksrv-", 8) != 0 || !isdigit((unsigned char)name[8]))
        return 0;
    char *end = NULL;
    errno = 0;
    long pid = strtol(name + 8, &end, 10);
    if (errno || pid <= 0 || pid > INT_MAX || *end != '-' || strlen(end + 1) != 6)
        return 0;
    for (const char *p = end + 1; *p; p++)
        if (!isalnum((unsigned char)*p))
            return 0;
    return (pid_t)pid;
}

/* Removes the CA directories that processes killed before ms_tls_ctx_destroy left in tmp:
 * mocksrv-PID-XXXXXX directories owned by our uid whose PID no longer exists. Only the file we
 * write there (ca.pem) is removed, then the directory, which stays if anything else is inside;
 * nothing is followed (a symbolic link is no directory of ours). A PID reused by another
 * process keeps its directory until that process is gone too. */
static void
tls_sweep_stale(const char *tmp)
{
    DIR *d = opendir(tmp);
    if (!d)
        return;
    int dfd = dirfd(d);
    uid_t uid = geteuid();
    pid_t self = getpid();
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        pid_t pid = tls_stale_pid(e->d_name);
        struct stat st;
        if (pid == 0 || pid == self || fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISDIR(st.st_mode) || st.st_uid != uid)
            continue;
        if (kill(pid, 0) == 0 || errno != ESRCH)
            continue; /* alive, or not ours to signal (EPERM): alive */
        int sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0)
            continue;
        unlinkat(sub, "ca.pem", 0);
        close(sub);
        unlinkat(dfd, e->d_name, AT_REMOVEDIR);
    }
    closedir(d);
}

/* The CA: its key and certificate kept in ctx, its file written (before the ready line). */
static int
tls_generate(struct ms_tls_ctx *ctx, const struct ms_tls_options *opt, struct mocksrv_error *err)
{
    ctx->ca_key = tls_p256_key();
    if (!ctx->ca_key)
        return tls_fail(err, "generating a P-256 key");
    ctx->hostname = ms_strdup(opt->hostname && *opt->hostname ? opt->hostname : "localhost");
    ctx->serial = (long)(((uint64_t)ms_wall_ms() ^ (uint64_t)getpid() << 20) & 0x7fffffff);
    ctx->ca =
        tls_make_cert(ctx->ca_key, ctx->ca_key, NULL, "mocksrv throwaway CA", ctx->serial, NULL);
    if (!ctx->ca)
        return tls_fail(err, "making the generated certificates");
    if (opt->ca_out) {
        ctx->ca_file = ms_strdup(opt->ca_out);
    } else {
        const char *tmp = getenv("TMPDIR");
        if (!tmp || !*tmp)
            tmp = "/tmp";
        tls_sweep_stale(tmp);
        char *dir = ms_asprintf("%s/mocksrv-%d-XXXXXX", tmp, getpid());
        if (!mkdtemp(dir)) {
            int rc = ms_error_set(err, MOCKSRV_EIO, "%s: cannot create a temporary directory: %s",
                                  dir, strerror(errno));
            free(dir);
            return rc;
        }
        ctx->ca_dir = dir;
        ctx->ca_file = ms_asprintf("%s/ca.pem", dir);
    }
    return tls_write_pem(ctx->ca_file, ctx->ca, err);
}

/* The server key and certificate, signed by the CA (at the first handshake). */
static int
tls_generate_server(struct ms_tls_ctx *ctx, struct mocksrv_error *err)
{
    char san[600];
    tls_san(ctx->hostname, san, sizeof san);
    ctx->key = tls_p256_key();
    if (!ctx->key)
        return tls_fail(err, "generating a P-256 key");
    ctx->cert = tls_make_cert(ctx->key, ctx->ca_key, ctx->ca, ctx->hostname, ctx->serial + 1, san);
    if (!ctx->cert)
        return tls_fail(err, "making the generated certificates");
    return MOCKSRV_OK;
}

/* ---- contexts ---- */

/* The SSL_CTX: protocol settings, the certificate (from files or generated), client
 * certificate verification. Loading libssl and building a context costs about 2 ms, so with a
 * generated certificate this waits for the first handshake and the ready line does not. */
static int
tls_build_ssl_ctx(struct ms_tls_ctx *ctx, const struct ms_tls_options *opt,
                  struct mocksrv_error *err)
{
    ctx->ssl_ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx->ssl_ctx)
        return tls_fail(err, "SSL_CTX_new");
    if (ctx->min_version && SSL_CTX_set_min_proto_version(ctx->ssl_ctx, ctx->min_version) != 1)
        return tls_fail(err, "tls.min_version");
    SSL_CTX_set_options(ctx->ssl_ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (opt && opt->cert) {
        /* OpenSSL says only "system lib" for a missing file: say what the system said */
        const char *files[] = {opt->cert, opt->key};
        for (int i = 0; i < 2; i++)
            if (files[i] && access(files[i], R_OK) != 0)
                return ms_error_set(err, MOCKSRV_ETLS, "tls: %s: %s", files[i], strerror(errno));
        if (SSL_CTX_use_certificate_chain_file(ctx->ssl_ctx, opt->cert) != 1)
            return tls_fail(err, opt->cert);
        if (SSL_CTX_use_PrivateKey_file(ctx->ssl_ctx, opt->key ? opt->key : opt->cert,
                                        SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx->ssl_ctx) != 1)
            return tls_fail(err, opt->key ? opt->key : opt->cert);
    } else {
        int rc = ctx->cert ? MOCKSRV_OK : tls_generate_server(ctx, err);
        if (rc != MOCKSRV_OK)
            return rc;
        if (SSL_CTX_use_certificate(ctx->ssl_ctx, ctx->cert) != 1 ||
            SSL_CTX_use_PrivateKey(ctx->ssl_ctx, ctx->key) != 1)
            return tls_fail(err, "using the generated certificate");
    }
    if (ctx->client_ca) {
        /* Request a certificate; verify one if sent; a client without one may still go on. */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ctx->client_ca);
        if (!names || SSL_CTX_load_verify_locations(ctx->ssl_ctx, ctx->client_ca, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            return tls_fail(err, ctx->client_ca);
        }
        SSL_CTX_set_client_CA_list(ctx->ssl_ctx, names);
        SSL_CTX_set_verify(ctx->ssl_ctx, SSL_VERIFY_PEER, NULL);
    }
    return MOCKSRV_OK;
}

int
ms_tls_ctx_create(const struct ms_tls_options *opt, struct ms_tls_ctx **ctx_r,
                  struct mocksrv_error *err)
{
    /* The system openssl.cnf is not read: parsing it costs about 2 ms of every start, and a
     * mock's TLS behaviour should come from its scenario, not from the host's configuration. */
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
    /* A SHA-256 Hash-DRBG rather than OpenSSL's default AES CTR-DRBG: instantiating the latter
     * builds every cipher method before the ready line, while SHA-256 is fetched anyway to sign
     * the CA. Refused once the generator exists (a second server, a host that used it): the
     * error it queues is dropped, or SSL_get_error would later report it. */
    ERR_set_mark();
    RAND_set_DRBG_type(NULL, "HASH-DRBG", NULL, NULL, "SHA256");
    ERR_pop_to_mark();
    struct ms_tls_ctx *ctx = ms_calloc(1, sizeof *ctx);
    int rc;
    ctx->min_version = opt->min_version;
    ctx->client_ca = opt->client_ca ? ms_strdup(opt->client_ca) : NULL;
    /* Every file is read and checked now, so that a bad one stops the start instead of a
     * handshake; a few microseconds (the SSL_CTX itself still waits, see tls_build_ssl_ctx). */
    if ((rc = ms_tls_check_files(opt, NULL, err)) != MOCKSRV_OK) {
        char msg[sizeof err->message];
        if (err) {
            snprintf(msg, sizeof msg, "%s", err->message);
            ms_error_set(err, MOCKSRV_ETLS, "tls: %s", msg);
        }
        goto fail;
    }
    if (opt->cert)
        rc = tls_build_ssl_ctx(ctx, opt, err); /* bad files are found before the ready line */
    else
        rc = tls_generate(ctx, opt, err);
    if (rc != MOCKSRV_OK)
        goto fail;
    *ctx_r = ctx;
    return MOCKSRV_OK;
fail:
    ms_tls_ctx_destroy(&ctx);
    return rc;
}

void
ms_tls_ctx_destroy(struct ms_tls_ctx **ctxp)
{
    struct ms_tls_ctx *ctx = *ctxp;
    if (!ctx)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    X509_free(ctx->cert);
    EVP_PKEY_free(ctx->key);
    X509_free(ctx->ca);
    EVP_PKEY_free(ctx->ca_key);
    free(ctx->hostname);
    free(ctx->client_ca);
    if (ctx->ca_dir) {
        unlink(ctx->ca_file);
        rmdir(ctx->ca_dir);
    }
    free(ctx->ca_dir);
    free(ctx->ca_file);
    free(ctx);
    *ctxp = NULL;
}

const char *
ms_tls_ctx_ca_file(const struct ms_tls_ctx *ctx)
{
    return ctx ? ctx->ca_file : NULL;
}

/* ---- sessions ---- */

struct ms_tls *
ms_tls_create(struct ms_tls_ctx *ctx, const char **reason_r)
{
    *reason_r = NULL;
    if (!ctx->ssl_ctx) {
        /* The files were checked at create, but a client CA is read again here: it may have
         * changed since. A failure costs this session, not the server; the next one tries
         * again. */
        struct mocksrv_error err = {0};
        if (tls_build_ssl_ctx(ctx, NULL, &err) != MOCKSRV_OK) {
            SSL_CTX_free(ctx->ssl_ctx);
            ctx->ssl_ctx = NULL;
            snprintf(ctx->build_error, sizeof ctx->build_error, "%s", err.message);
            *reason_r = ctx->build_error;
            return NULL;
        }
    }
    struct ms_tls *tls = ms_calloc(1, sizeof *tls);
    tls->ssl = SSL_new(ctx->ssl_ctx);
    tls->in = BIO_new(BIO_s_mem());
    tls->out = BIO_new(BIO_s_mem());
    if (!tls->ssl || !tls->in || !tls->out) {
        tls_reason(ctx->build_error, sizeof ctx->build_error, "SSL_new failed");
        SSL_free(tls->ssl);
        BIO_free(tls->in);
        BIO_free(tls->out);
        free(tls);
        *reason_r = ctx->build_error;
        return NULL;
    }
    /* An empty input BIO means "wait for more", not end of file. */
    BIO_set_mem_eof_return(tls->in, -1);
    SSL_set_bio(tls->ssl, tls->in, tls->out);
    SSL_set_accept_state(tls->ssl);
    return tls;
}

void
ms_tls_destroy(struct ms_tls **tlsp)
{
    struct ms_tls *tls = *tlsp;
    if (!tls)
        return;
    SSL_free(tls->ssl); /* frees both BIOs */
    free(tls->subject);
    free(tls);
    *tlsp = NULL;
}

void
ms_tls_feed(struct ms_tls *tls, const char *p, size_t n)
{
    if (n)
        BIO_write(tls->in, p, (int)n);
}

void
ms_tls_drain(struct ms_tls *tls, struct ms_buf *out)
{
    size_t pending = BIO_ctrl_pending(tls->out);
    if (pending == 0)
        return;
    ms_buf_reserve(out, pending);
    int n = BIO_read(tls->out, out->data + out->len, (int)pending);
    if (n > 0) {
        out->len += (size_t)n;
        out->data[out->len] = '\0';
    }
}

static enum ms_tls_status
tls_status(struct ms_tls *tls, int ret)
{
    switch (SSL_get_error(tls->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return MS_TLS_WANT_INPUT;
    case SSL_ERROR_ZERO_RETURN:
        return MS_TLS_CLOSED;
    default:
        tls_reason(tls->error, sizeof tls->error, "protocol error");
        return MS_TLS_ERROR;
    }
}

enum ms_tls_status
ms_tls_handshake(struct ms_tls *tls)
{
    int r = SSL_do_handshake(tls->ssl);
    if (r == 1)
        return MS_TLS_OK;
    return tls_status(tls, r);
}

enum ms_tls_status
ms_tls_read(struct ms_tls *tls, struct ms_buf *out)
{
    size_t got = 0;
    for (;;) {
        ms_buf_reserve(out, 16384);
        size_t n = 0;
        int r = SSL_read_ex(tls->ssl, out->data + out->len, out->cap - out->len - 1, &n);
        if (r == 1) {
            out->len += n;
            out->data[out->len] = '\0';
            got += n;
            continue;
        }
        enum ms_tls_status st = tls_status(tls, r);
        if (got > 0 && st != MS_TLS_ERROR)
            return MS_TLS_OK; /* report the close on the next call */
        return st;
    }
}

enum ms_tls_status
ms_tls_write(struct ms_tls *tls, const char *p, size_t n)
{
    size_t done = 0;
    if (n == 0)
        return MS_TLS_OK;
    int r = SSL_write_ex(tls->ssl, p, n, &done);
    if (r == 1 && done == n)
        return MS_TLS_OK;
    return r == 1 ? MS_TLS_ERROR : tls_status(tls, r);
}

void
ms_tls_shutdown(struct ms_tls *tls)
{
    SSL_shutdown(tls->ssl);
    ERR_clear_error();
}

const char *
ms_tls_version(const struct ms_tls *tls)
{
    return SSL_get_version(tls->ssl);
}

const char *
ms_tls_cipher(const struct ms_tls *tls)
{
    return SSL_get_cipher_name(tls->ssl);
}

const char *
ms_tls_peer_subject(const struct ms_tls *tls)
{
    struct ms_tls *t = (struct ms_tls *)tls;
    if (t->subject)
        return t->subject;
    X509 *peer = SSL_get0_peer_certificate(t->ssl);
    if (!peer)
        return NULL;
    BIO *b = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    t->subject = ms_strndup(p ? p : "", n > 0 ? (size_t)n : 0);
    BIO_free(b);
    return t->subject;
}

const char *
ms_tls_error(const struct ms_tls *tls)
{
    return tls->error[0] ? tls->error : "unknown error";
}
