/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_CONTROLBASE_H
#define MESHD_CONTROLBASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * controlbase: the TS2021 control transport, client side, as a sans-I/O core
 * (protocol/control.md §3; Go: control/controlbase/{handshake,conn,
 * messages}.go, control/controlhttp/client.go, control/ts2021/conn.go).
 *
 * Four layers, each fed bytes by the caller and never touching a socket, a
 * clock or a global:
 *
 *   1. ctlb_upgrade_request() formats "POST /ts2021" carrying the Noise
 *      initiation; struct ctlb_http parses the server's HTTP/1.1 response head
 *      and hands back the bytes after it, which are already Noise bytes.
 *   2. struct ctlb runs the Noise_IK_25519_ChaChaPoly_BLAKE2s initiator:
 *      ctlb_initiation() then ctlb_read_response().
 *   3. The same struct ctlb then seals (ctlb_encrypt) and opens (ctlb_feed)
 *      transport records.
 *   4. struct ctlb_early strips the optional early payload from the start of
 *      the decrypted server→client stream.
 *
 * A typical adapter:
 *
 *	ctlb_init(&c, capver, mpriv, mpub, server_pub, rng, rng_ctx);
 *	ctlb_initiation(&c, init);
 *	n = ctlb_upgrade_request(req, sizeof req, host, init);   -> write req
 *	ctlb_http_init(&hp);
 *	read: r = ctlb_http_feed(&hp, buf, len, &used);          until CTLB_DONE
 *	      r = ctlb_read_response(&c, buf + used, ..., &u2);   until CTLB_DONE
 *	      r = ctlb_feed(&c, rest, restlen, on_plain, ctx);    from then on
 *	on_plain: ctlb_early_feed(&early, pt, n, to_http2, ctx);
 *
 * Errors.  Every function that can fail returns a negative enum ctlb_err
 * value (OpenSSH's SSH_ERR_* style; they are not errno values);
 * ctlb_strerror() names them.  Failures caused by the peer's bytes, and
 * cipher exhaustion, are sticky: the object stays failed, every later call
 * returns the same code, and its keys are wiped (Go nils the cipher state
 * on the first failure, conn.go decryptLocked/Write).  Caller mistakes
 * (CTLB_ERR_INVAL, CTLB_ERR_STATE, CTLB_ERR_NOSPACE) change nothing and are
 * not sticky.
 *
 * Memory.  Every struct here is plain data the caller allocates (stack,
 * heap, or inside a larger object) and owns; nothing here allocates.
 * Pointers handed to callbacks point into the struct and are valid only for
 * the duration of the callback.  The structs are public only so that they
 * can be embedded; their fields are private (tests poke a few).
 */

/* Handshake and record sizes (messages.go, conn.go). */
#define CTLB_KEY_LEN		32
#define CTLB_INIT_LEN		101	/* 5-byte header + 96-byte payload */
#define CTLB_RESP_LEN		51	/* 3-byte header + 48-byte payload */
#define CTLB_HDR_LEN		3	/* type + BE16 length, all but the initiation */
#define CTLB_TAG_LEN		16
#define CTLB_MAX_MSG		4096	/* a whole record, header included */
#define CTLB_MAX_CIPHERTEXT	(CTLB_MAX_MSG - CTLB_HDR_LEN)
#define CTLB_MAX_PLAINTEXT	(CTLB_MAX_CIPHERTEXT - CTLB_TAG_LEN)	/* 4077 */
#define CTLB_RECORD_OVERHEAD	(CTLB_HDR_LEN + CTLB_TAG_LEN)		/* 19 */

/* "Tailscale Control Protocol v65535" is 33 bytes. */
#define CTLB_PROLOGUE_MAX	40
/* Bounded copies of peer-supplied text: error frames, HTTP reasons and bodies. */
#define CTLB_TEXT_MAX		256
/* The whole HTTP response head (status line + fields + blank line). */
#define CTLB_HTTP_HEAD_MAX	8192
/* Stored prefix of one head line; longer lines are counted, not kept. */
#define CTLB_HTTP_LINE_MAX	256
/* Early payload JSON cap (tailscale-rs read_challenge_packet: 1 KiB). */
#define CTLB_EARLY_MAX		1024
/* Buffer size ctlb_upgrade_request() needs for a host of hostlen bytes. */
#define CTLB_UPGRADE_REQ_LEN(hostlen)	(272 + (hostlen))	/* NUL included */

enum ctlb_err {
	CTLB_ERR_INVAL = -1,		/* bad argument */
	CTLB_ERR_STATE = -2,		/* call not valid in this state */
	CTLB_ERR_NOSPACE = -3,		/* caller's output buffer too small */
	CTLB_ERR_HTTP_MALFORMED = -4,	/* unparseable HTTP response head */
	CTLB_ERR_HTTP_TOO_BIG = -5,	/* head over CTLB_HTTP_HEAD_MAX */
	CTLB_ERR_HTTP_STATUS = -6,	/* final status other than 101 */
	CTLB_ERR_HTTP_UPGRADE = -7,	/* 101 without our Upgrade value */
	CTLB_ERR_HTTP_EOF = -8,		/* connection closed inside the head */
	CTLB_ERR_DH = -9,		/* X25519 gave the all-zero value */
	CTLB_ERR_MSG_TYPE = -10,	/* handshake reply neither 2 nor 3 */
	CTLB_ERR_MSG_LEN = -11,		/* handshake response length != 48 */
	CTLB_ERR_SERVER = -12,		/* server sent an error frame */
	CTLB_ERR_AUTH = -13,		/* handshake response tag did not verify */
	CTLB_ERR_RECORD_TYPE = -14,	/* transport frame type != 4 */
	CTLB_ERR_RECORD_LEN = -15,	/* 3 + length > 4096, or shorter than a tag */
	CTLB_ERR_DECRYPT = -16,		/* record failed authentication */
	CTLB_ERR_EXHAUSTED = -17,	/* nonce counter reached 2^64-1 */
	CTLB_ERR_EARLY_LEN = -18,	/* early payload longer than CTLB_EARLY_MAX */
	CTLB_ERR_ABORTED = -19,		/* the caller's callback asked to stop */
};

/* Non-error results of the incremental parsers. */
enum ctlb_progress {
	CTLB_MORE = 0,	/* all input consumed, stage not finished: feed more */
	CTLB_DONE = 1,	/* stage finished; see *used for how much input it took */
};

/* Static text for an enum ctlb_err (or "success" for 0 and 1). */
const char *ctlb_strerror(int err);

/*
 * Randomness, injected so tests are deterministic.  Must fill buf with len
 * cryptographically secure bytes; it cannot fail (libsodium's
 * randombytes_buf() fits: pass a wrapper).
 */
typedef void (*ctlb_rng_fn)(void *ctx, uint8_t *buf, size_t len);

/*
 * Receives a run of plaintext.  buf is only valid during the call.  Return
 * 0 to go on; anything else stops the feed, which then fails with
 * CTLB_ERR_ABORTED (sticky: input after the stop point is lost).
 */
typedef int (*ctlb_data_fn)(void *ctx, const uint8_t *buf, size_t len);

/* ---- 1. HTTP/1.1 upgrade ------------------------------------------------ */

/*
 * Formats the upgrade request (§3.1; controlhttp/client.go tryURLUpgrade)
 * into out, NUL-terminated, and returns its length without the NUL, or
 * CTLB_ERR_NOSPACE (CTLB_UPGRADE_REQ_LEN(strlen(host)) bytes always
 * suffice) or CTLB_ERR_INVAL (empty host, or one with bytes outside
 * printable ASCII, spaces included, which could inject header fields).
 * host is "host" or "host:port" as the Host field should read.
 */
int ctlb_upgrade_request(char *out, size_t outlen, const char *host,
    const uint8_t init[static CTLB_INIT_LEN]) __attribute__((warn_unused_result));

struct ctlb_http {
	int state;
	int err;
	size_t head_len;		/* head bytes seen, all interim heads included */
	char line[CTLB_HTTP_LINE_MAX];
	size_t line_len;		/* bytes of the line, even those not stored */
	bool cr;			/* previous byte was CR */
	bool in_head;			/* status line seen for the current response */
	int status;
	bool upgrade_seen, upgrade_bad;
	bool have_clen;
	bool len_unusable;		/* Transfer-Encoding, or a bad Content-Length */
	uint64_t clen;
	char reason[CTLB_TEXT_MAX + 1];
	char detail[CTLB_TEXT_MAX + 1];	/* body excerpt, or the wrong Upgrade value */
	size_t detail_len;
	bool body_by_close;
	uint64_t body_left;
};

void ctlb_http_init(struct ctlb_http *hp);

/*
 * Feeds bytes read from the connection after the request was sent.
 * Returns:
 *   CTLB_MORE    all of buf consumed, head not complete yet;
 *   CTLB_DONE    101 with "Upgrade: tailscale-control-protocol" (value
 *                compared case-insensitively); buf[*used..len) followed the
 *                head in the same read and belongs to the Noise handshake;
 *   < 0          sticky failure.  CTLB_ERR_HTTP_STATUS is reported once the
 *                error body is complete (Content-Length), or its first
 *                CTLB_TEXT_MAX bytes are in, or at once when it has none or
 *                is chunked; for a body delimited by close, call
 *                ctlb_http_eof() at EOF.
 * Interim 1xx responses other than 101 are skipped, as Go's client does.
 * Once finished, later calls return the same result and consume nothing.
 * used may be NULL.
 */
int ctlb_http_feed(struct ctlb_http *hp, const uint8_t *buf, size_t len, size_t *used)
	__attribute__((warn_unused_result));
/* The connection reached EOF: returns the final verdict (CTLB_DONE if the upgrade had succeeded). */
int ctlb_http_eof(struct ctlb_http *hp) __attribute__((warn_unused_result));
/* Status code of the final response, 0 until its status line is parsed. */
int ctlb_http_status(const struct ctlb_http *hp);
/* Reason phrase, and body excerpt or wrong Upgrade value: NUL-terminated,
 * printable ASCII only (other bytes become '?', CR/LF/TAB spaces), owned by hp. */
const char *ctlb_http_reason(const struct ctlb_http *hp);
const char *ctlb_http_detail(const struct ctlb_http *hp);
/* One-line message for logs, such as "HTTP 400 Bad Request: bad upgrade"; snprintf semantics. */
int ctlb_http_describe(const struct ctlb_http *hp, char *buf, size_t len);

/* ---- 2 and 3. Noise handshake and transport records --------------------- */

struct ctlb {
	int state;
	int err;			/* sticky failure, 0 if none */
	uint16_t capver;
	uint8_t prologue[CTLB_PROLOGUE_MAX];
	size_t prologue_len;
	const uint8_t *machine_priv;	/* borrowed, cleared when the handshake ends */
	uint8_t machine_pub[CTLB_KEY_LEN];
	uint8_t server_pub[CTLB_KEY_LEN];
	ctlb_rng_fn rng;
	void *rng_ctx;

	/* Handshake: secret, wiped when it ends either way. */
	uint8_t h[32], ck[32];
	uint8_t eph_priv[CTLB_KEY_LEN];
	uint8_t hs_buf[CTLB_RESP_LEN];
	size_t hs_len;
	char errtext[CTLB_TEXT_MAX + 1];	/* server error frame, sanitized */
	size_t errtext_len, errtext_want;

	/* Transport: k1 sends, k2 receives (Noise Split; handshake.go). */
	uint8_t tx_key[CTLB_KEY_LEN];
	uint8_t rx_key[CTLB_KEY_LEN];
	uint64_t tx_ctr, rx_ctr;	/* next nonce; 2^64-1 is never used */
	uint8_t rx_buf[CTLB_MAX_MSG];	/* the record being received */
	size_t rx_len;
};

/*
 * Sets up a client for one connection attempt (a new ephemeral key per
 * attempt: build a fresh struct, or ctlb_init() again, for each).
 *
 * machine_priv is borrowed, not copied: it must stay valid and unchanged
 * until ctlb_read_response() returns CTLB_DONE or fails, or ctlb_clear() is
 * called; it is not used after that.  machine_pub may be NULL, in which
 * case it is derived; if given it must match machine_priv (CTLB_ERR_INVAL
 * otherwise: a mismatch would only show as the server's silent EOF,
 * §3.7).  server_pub is the /key publicKey; capver goes into the
 * initiation header and the prologue "Tailscale Control Protocol v<capver>".
 */
int ctlb_init(struct ctlb *c, uint16_t capver, const uint8_t machine_priv[static CTLB_KEY_LEN],
    const uint8_t *machine_pub, const uint8_t server_pub[static CTLB_KEY_LEN],
    ctlb_rng_fn rng, void *rng_ctx) __attribute__((warn_unused_result));

/* Builds the 101-byte initiation (-> e, es, s, ss).  Once per ctlb. */
int ctlb_initiation(struct ctlb *c, uint8_t out[static CTLB_INIT_LEN])
	__attribute__((warn_unused_result));

/*
 * Feeds server bytes that follow the 101 head.  Returns CTLB_MORE (all
 * consumed), CTLB_DONE (handshake complete, transport keys set;
 * buf[*used..len) are transport records for ctlb_feed()), or a sticky
 * error; on CTLB_ERR_SERVER, ctlb_server_error() has the frame's text
 * (unauthenticated: a hint only).  After CTLB_DONE, later calls return
 * CTLB_DONE and consume nothing.  used may be NULL.
 */
int ctlb_read_response(struct ctlb *c, const uint8_t *buf, size_t len, size_t *used)
	__attribute__((warn_unused_result));
const char *ctlb_server_error(const struct ctlb *c);

/* Bytes ctlb_encrypt() writes for len plaintext bytes; SIZE_MAX on overflow. */
size_t ctlb_sealed_size(size_t len);

/*
 * Seals pt[0..len) into records of at most CTLB_MAX_PLAINTEXT plaintext
 * bytes each, written back to back into out, and sets *outlen.  All or
 * nothing: CTLB_ERR_NOSPACE if outcap < ctlb_sealed_size(len) (not sticky);
 * CTLB_ERR_EXHAUSTED (sticky) if the nonces left can't cover the write.
 * len 0 writes nothing, as Go's Conn.Write does.  out must not overlap pt.
 * A short write of out to the socket desynchronizes the nonces: the caller
 * must then drop the connection (Go errPartialWrite).
 */
int ctlb_encrypt(struct ctlb *c, const uint8_t *pt, size_t len, uint8_t *out, size_t outcap,
    size_t *outlen) __attribute__((warn_unused_result));

/*
 * Consumes server transport bytes in chunks of any size (a record may span
 * calls) and hands each record's plaintext to cb; zero-length records are
 * accepted and not reported.  Returns 0 when all of buf is consumed, or a
 * sticky error.  cb may call ctlb_encrypt() but must not re-enter
 * ctlb_feed() on the same ctlb.
 */
int ctlb_feed(struct ctlb *c, const uint8_t *buf, size_t len, ctlb_data_fn cb, void *cb_ctx)
	__attribute__((warn_unused_result));

/* The sticky error, or 0. */
int ctlb_error(const struct ctlb *c);
/* Handshake finished and no failure. */
bool ctlb_is_open(const struct ctlb *c);
/* Wipes every key and all state; c may be NULL.  ctlb_init() before reuse. */
void ctlb_clear(struct ctlb *c);

/* ---- 4. Early payload ---------------------------------------------------- */

/*
 * The server may open its plaintext stream with FF FF FF 'T' 'S', a BE32
 * length and that much JSON (§3.6; Go control/ts2021/conn.go readHeader).
 * ctlb_early_feed() sits between ctlb_feed() and HTTP/2: it holds back the
 * first bytes until it can tell, stores the JSON (not parsed here), and
 * passes everything else to out unchanged, the held-back bytes included
 * when there was no magic.
 */
struct ctlb_early {
	int state;
	int err;
	uint8_t hdr[9];
	size_t hdr_len;
	bool present;
	uint32_t json_len, json_got;
	uint8_t json[CTLB_EARLY_MAX];
};

void ctlb_early_init(struct ctlb_early *e);
/*
 * Returns CTLB_MORE while still reading the prefix or the JSON, CTLB_DONE
 * once decided (then and on every later call: bytes pass straight to out),
 * or a sticky error: CTLB_ERR_EARLY_LEN above CTLB_EARLY_MAX,
 * CTLB_ERR_ABORTED if out returned non-zero.
 */
int ctlb_early_feed(struct ctlb_early *e, const uint8_t *buf, size_t len, ctlb_data_fn out,
    void *out_ctx) __attribute__((warn_unused_result));
/* The JSON, owned by e, once CTLB_DONE with an early payload; NULL otherwise. */
const uint8_t *ctlb_early_payload(const struct ctlb_early *e, size_t *len);

#endif
