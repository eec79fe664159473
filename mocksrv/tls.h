/*
 * tls.h - TLS for mocksrv: OpenSSL over a memory BIO pair, certificates generated at start.
 *
 * OpenSSL never owns a socket: ciphertext goes in and out as plain bytes, so conn.c moves it
 * through shape.c like every other byte and a fault can split, delay, stall or break a
 * handshake. Only tls.c includes OpenSSL's SSL headers.
 *
 * Invariants:
 *   - One ms_tls_ctx (one SSL_CTX) per certificate set, built once at bind.
 *   - Without a configured certificate, a throwaway CA and an ECDSA P-256 server certificate for
 *     the hostname, localhost, 127.0.0.1 and ::1 are generated with EVP; the CA certificate is
 *     written to a private temporary directory (removed by ms_tls_ctx_destroy) or to ca_out.
 *     The directories of killed processes ($TMPDIR/mocksrv-PID-XXXXXX whose PID is gone) are
 *     removed when the next one is made.
 *   - The files (cert, key, client_ca) are read and checked at create (ms_tls_check_files);
 *     with a generated certificate the SSL_CTX is built at the first handshake, which reads
 *     client_ca again: a failure there fails that handshake (ms_tls_create), never the server.
 */
#ifndef MS_TLS_H
#define MS_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

struct ms_tls_ctx;
struct ms_tls;

struct ms_tls_options {
    const char *cert;      /* PEM chain file, or NULL to generate */
    const char *key;       /* PEM key file (with cert) */
    const char *client_ca; /* request client certificates and verify them against this CA */
    int min_version;       /* 0x0301..0x0304, 0 = OpenSSL's default */
    const char *hostname;  /* for the generated certificate */
    const char *ca_out;    /* write the generated CA here instead of a temporary directory */
};

/* Which file of a certificate set is wrong (ms_tls_check_files). */
enum ms_tls_file {
    MS_TLS_FILE_CERT,
    MS_TLS_FILE_KEY,
    MS_TLS_FILE_CLIENT_CA,
};
/* The scenario key of a file: "cert", "key", "client_ca". */
const char *ms_tls_file_key(enum ms_tls_file which);

/* Reads the files opt names (cert, key, client_ca; NULL ones are skipped; the rest of opt is
 * ignored) and checks them without building an SSL_CTX: cert holds PEM certificates, at least
 * one, all well-formed; key (the cert file when key is NULL) a PEM private key without a
 * passphrase that matches the first certificate; client_ca PEM certificates as cert. Returns
 * MOCKSRV_OK, or MOCKSRV_ETLS with *bad_r (may be NULL) naming the file and err saying why
 * ("/x/ca.der: no PEM certificate in it: this looks like DER ..."). A few microseconds for
 * small files; nothing is kept. */
int ms_tls_check_files(const struct ms_tls_options *opt, enum ms_tls_file *bad_r,
                       struct mocksrv_error *err);

/* Checks the files (ms_tls_check_files) and makes the context; MOCKSRV_ETLS / MOCKSRV_EIO with
 * err ("tls: ...") when a file is bad or the CA cannot be written. */
int ms_tls_ctx_create(const struct ms_tls_options *opt, struct ms_tls_ctx **ctx_r,
                      struct mocksrv_error *err);
void ms_tls_ctx_destroy(struct ms_tls_ctx **ctx);
/* The CA file clients should trust (generated certificates), or NULL with --cert. */
const char *ms_tls_ctx_ca_file(const struct ms_tls_ctx *ctx);

/* A server-side TLS session for one connection, or NULL when the context cannot be built (the
 * lazy SSL_CTX of a generated certificate: a client_ca changed since start) or SSL_new fails:
 * *reason_r says why (borrowed from ctx, valid until the next ms_tls_create on it). */
struct ms_tls *ms_tls_create(struct ms_tls_ctx *ctx, const char **reason_r);
void ms_tls_destroy(struct ms_tls **tls);

/* Results of the stepping functions. */
enum ms_tls_status {
    MS_TLS_OK,         /* done (handshake complete / bytes produced) */
    MS_TLS_WANT_INPUT, /* feed more ciphertext with ms_tls_feed */
    MS_TLS_CLOSED,     /* the peer sent close_notify */
    MS_TLS_ERROR,      /* a fatal error: ms_tls_error says why */
};

/* Ciphertext received from the peer. */
void ms_tls_feed(struct ms_tls *tls, const char *p, size_t n);
/* Ciphertext to send to the peer (handshake flights, records, alerts): appended to out. */
void ms_tls_drain(struct ms_tls *tls, struct ms_buf *out);
/* Advances the handshake. */
enum ms_tls_status ms_tls_handshake(struct ms_tls *tls);
/* Decrypts what has been fed: plaintext appended to out (MS_TLS_OK when some was produced). */
enum ms_tls_status ms_tls_read(struct ms_tls *tls, struct ms_buf *out);
/* Encrypts plaintext into records (then ms_tls_drain). */
enum ms_tls_status ms_tls_write(struct ms_tls *tls, const char *p, size_t n);
/* Queues a close_notify alert (then ms_tls_drain). */
void ms_tls_shutdown(struct ms_tls *tls);

/* After the handshake: "TLSv1.3", "TLS_AES_256_GCM_SHA384", the client certificate's subject
 * (one-line RFC 2253 form) or NULL. Borrowed. */
const char *ms_tls_version(const struct ms_tls *tls);
const char *ms_tls_cipher(const struct ms_tls *tls);
const char *ms_tls_peer_subject(const struct ms_tls *tls);
/* Why the last MS_TLS_ERROR happened (OpenSSL's reason, or "unexpected EOF"). Borrowed. */
const char *ms_tls_error(const struct ms_tls *tls);

#endif
