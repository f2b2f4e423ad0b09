// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The TS2021 control transport, client side: HTTP/1.1 upgrade, Noise IK
 * initiator, transport records and the early payload
 * (protocol/control.md §3).  The rules restated next to the code come from
 * tailscale's control/controlbase/{handshake,conn,messages}.go,
 * control/controlhttp/client.go and control/ts2021/conn.go; the file each
 * comes from is named where it is applied.
 *
 * Nothing here does I/O or reads a clock: callers feed bytes in and write
 * what comes out, so every path can be driven from tests and fuzzers.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "agent/control/controlbase.h"
#include "common/util.h"
#include "wg/blake2s.h"
#include "wg/crypto.h"

/* Frame types (messages.go). */
#define MSG_INITIATION	1
#define MSG_RESPONSE	2
#define MSG_ERROR	3
#define MSG_RECORD	4

#define INIT_HDR_LEN	5
#define INIT_PAYLOAD	(CTLB_INIT_LEN - INIT_HDR_LEN)	/* 96 */
#define RESP_PAYLOAD	(CTLB_RESP_LEN - CTLB_HDR_LEN)	/* 48 */

/* handshake.go protocolName; 33 bytes, so h is its hash, not the padded name. */
static const char protocol_name[] = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
/* handshake.go protocolVersionPrefix; the version follows in decimal. */
static const char prologue_prefix[] = "Tailscale Control Protocol v";
/* controlhttpcommon.UpgradeHeaderValue */
static const char upgrade_value[] = "tailscale-control-protocol";
/* ts2021/conn.go EarlyPayloadMagic: "\xff\xff\xffTS". */
static const uint8_t early_magic[5] = { 0xff, 0xff, 0xff, 'T', 'S' };

enum { ST_UNINIT, ST_NEW, ST_SENT, ST_OPEN, ST_FAILED };
enum { H_HEAD, H_BODY, H_DONE, H_FAILED };
enum { E_HEAD, E_JSON, E_DONE, E_FAILED };

const char *
ctlb_strerror(int err)
{
	switch (err) {
	case CTLB_MORE:
	case CTLB_DONE:
		return "success";
	case CTLB_ERR_INVAL:
		return "invalid argument";
	case CTLB_ERR_STATE:
		return "operation not valid in this connection state";
	case CTLB_ERR_NOSPACE:
		return "output buffer too small";
	case CTLB_ERR_HTTP_MALFORMED:
		return "malformed HTTP response from control server";
	case CTLB_ERR_HTTP_TOO_BIG:
		return "HTTP response head from control server too large";
	case CTLB_ERR_HTTP_STATUS:
		return "control server refused the protocol upgrade";
	case CTLB_ERR_HTTP_UPGRADE:
		return "control server switched to an unexpected protocol";
	case CTLB_ERR_HTTP_EOF:
		return "connection closed before the HTTP response was complete";
	case CTLB_ERR_DH:
		return "X25519 produced a zero shared secret (bad public key)";
	case CTLB_ERR_MSG_TYPE:
		return "unexpected handshake message type";
	case CTLB_ERR_MSG_LEN:
		return "wrong handshake response length";
	case CTLB_ERR_SERVER:
		return "control server rejected the handshake";
	case CTLB_ERR_AUTH:
		return "handshake response failed authentication (wrong server key?)";
	case CTLB_ERR_RECORD_TYPE:
		return "unexpected transport message type";
	case CTLB_ERR_RECORD_LEN:
		return "transport record length out of range";
	case CTLB_ERR_DECRYPT:
		return "transport record failed authentication";
	case CTLB_ERR_EXHAUSTED:
		return "cipher exhausted, no more nonces available for current key";
	case CTLB_ERR_EARLY_LEN:
		return "early payload too large";
	case CTLB_ERR_ABORTED:
		return "stopped by callback";
	default:
		return "unknown controlbase error";
	}
}

/* ---- text from the peer ------------------------------------------------ */

/*
 * Peer-supplied text ends up in logs, so only printable ASCII is kept:
 * whitespace becomes a space and anything else '?', which keeps escape
 * sequences and forged log lines out.  Appends to dst (cap bytes plus the
 * NUL) and returns the new length.
 */
static size_t
append_text(char *dst, size_t have, size_t cap, const uint8_t *src, size_t n)
{
	while (n > 0 && have < cap) {
		uint8_t ch = *src++;

		n--;
		if (ch == '\t' || ch == '\r' || ch == '\n')
			ch = ' ';
		else if (ch < 0x20 || ch > 0x7e)
			ch = '?';
		dst[have++] = (char)ch;
	}
	dst[have] = '\0';
	return have;
}

static void
trim_text(char *s, size_t *len)
{
	size_t n = strlen(s);

	while (n > 0 && s[n - 1] == ' ')
		s[--n] = '\0';
	if (len)
		*len = n;
}

/* ASCII case-insensitive equality of s[0..n) and a lower-case literal. */
static bool
ieq(const char *s, size_t n, const char *lit)
{
	size_t i;

	if (n != strlen(lit))
		return false;
	for (i = 0; i < n; i++) {
		char ch = s[i];

		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (ch != lit[i])
			return false;
	}
	return true;
}

/* ---- 1. HTTP/1.1 upgrade ------------------------------------------------ */

int
ctlb_upgrade_request(char *out, size_t outlen, const char *host,
    const uint8_t init[static CTLB_INIT_LEN])
{
	/* 101 bytes are 136 base64 characters, padded (base64.StdEncoding). */
	char b64[sodium_base64_ENCODED_LEN(CTLB_INIT_LEN, sodium_base64_VARIANT_ORIGINAL)];
	size_t i;
	int n;

	if (out == NULL || host == NULL || host[0] == '\0')
		return CTLB_ERR_INVAL;
	for (i = 0; host[i] != '\0'; i++) {
		if (host[i] <= ' ' || host[i] > '~')
			return CTLB_ERR_INVAL;
	}
	sodium_bin2base64(b64, sizeof b64, init, CTLB_INIT_LEN, sodium_base64_VARIANT_ORIGINAL);

	/*
	 * controlhttp/client.go tryURLUpgrade: POST (GET is only for the
	 * browser WebSocket path), path /ts2021 at the host root, and
	 * Content-Length: 0 as Go's transport sends for a body-less POST.
	 */
	n = snprintf(out, outlen,
	    "POST /ts2021 HTTP/1.1\r\n"
	    "Host: %s\r\n"
	    "Upgrade: %s\r\n"
	    "Connection: upgrade\r\n"
	    "X-Tailscale-Handshake: %s\r\n"
	    "Content-Length: 0\r\n"
	    "\r\n", host, upgrade_value, b64);
	if (n < 0 || (size_t)n >= outlen) {
		if (outlen > 0)
			out[0] = '\0';
		return CTLB_ERR_NOSPACE;
	}
	return n;
}

void
ctlb_http_init(struct ctlb_http *hp)
{
	memset(hp, 0, sizeof *hp);
	hp->state = H_HEAD;
}

/* Forget one response's fields, keeping the running head size. */
static void
http_reset_response(struct ctlb_http *hp)
{
	size_t head_len = hp->head_len;

	ctlb_http_init(hp);
	hp->head_len = head_len;
}

static int
http_fail(struct ctlb_http *hp, int err)
{
	hp->state = H_FAILED;
	hp->err = err;
	trim_text(hp->reason, NULL);
	trim_text(hp->detail, &hp->detail_len);
	return err;
}

/* "HTTP/1.x NNN[ reason]" (RFC 9112 §4; Go accepts a missing reason). */
static int
http_status_line(struct ctlb_http *hp, const char *l, size_t n)
{
	int i, status = 0;

	if (n < 12 || memcmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1') || l[8] != ' ')
		return CTLB_ERR_HTTP_MALFORMED;
	for (i = 9; i < 12; i++) {
		if (l[i] < '0' || l[i] > '9')
			return CTLB_ERR_HTTP_MALFORMED;
		status = status * 10 + (l[i] - '0');
	}
	if (status < 100 || (n > 12 && l[12] != ' '))
		return CTLB_ERR_HTTP_MALFORMED;
	hp->status = status;
	hp->in_head = true;
	if (n > 13)
		append_text(hp->reason, 0, CTLB_TEXT_MAX, (const uint8_t *)l + 13, n - 13);
	return CTLB_MORE;
}

static bool
is_ows(char ch)
{
	return ch == ' ' || ch == '\t';
}

/*
 * One "name: value" line.  trunc says only the first CTLB_HTTP_LINE_MAX
 * bytes were kept: no field we act on is that long when valid, so a
 * truncated one counts as invalid.
 */
static int
http_field_line(struct ctlb_http *hp, const char *l, size_t n, bool trunc)
{
	const char *colon, *v, *end = l + n;
	size_t i, namelen;

	/* RFC 9112 §5.2: obsolete line folding may be rejected; we do. */
	if (is_ows(l[0]))
		return CTLB_ERR_HTTP_MALFORMED;
	colon = memchr(l, ':', n);
	if (colon == NULL || colon == l)
		return CTLB_ERR_HTTP_MALFORMED;
	namelen = (size_t)(colon - l);
	/* RFC 9112 §5.1: no whitespace between the name and the colon. */
	for (i = 0; i < namelen; i++) {
		if ((unsigned char)l[i] <= ' ' || l[i] == 0x7f)
			return CTLB_ERR_HTTP_MALFORMED;
	}
	v = colon + 1;
	while (v < end && is_ows(*v))
		v++;
	while (end > v && is_ows(end[-1]))
		end--;

	if (ieq(l, namelen, "upgrade")) {
		/*
		 * Go compares the value exactly (client.go:
		 * resp.Header.Get("Upgrade") != UpgradeHeaderValue); the server
		 * lower-cases what it receives, and RFC 9110 §7.8 makes
		 * protocol names case-insensitive, so we are as lenient as the
		 * server.  A second Upgrade field must agree with the first.
		 */
		hp->upgrade_seen = true;
		if ((trunc || !ieq(v, (size_t)(end - v), upgrade_value)) && !hp->upgrade_bad) {
			hp->upgrade_bad = true;
			hp->detail_len = append_text(hp->detail, 0, CTLB_TEXT_MAX,
			    (const uint8_t *)v, (size_t)(end - v));
		}
	} else if (ieq(l, namelen, "content-length")) {
		uint64_t val = 0;
		const char *p;

		/* Only the error body uses it; a bad or repeated one just
		 * means we stop at the head instead of waiting for a body. */
		if (trunc || v == end || end - v > 18 || hp->have_clen)
			hp->len_unusable = true;
		for (p = v; !hp->len_unusable && p < end; p++) {
			if (*p < '0' || *p > '9')
				hp->len_unusable = true;
			else
				val = val * 10 + (uint64_t)(*p - '0');
		}
		hp->have_clen = true;
		hp->clen = val;
	} else if (ieq(l, namelen, "transfer-encoding")) {
		/* A chunked error body is not worth a decoder: report the
		 * status as soon as the head is in. */
		hp->len_unusable = true;
	}
	return CTLB_MORE;
}

/* The head is complete: decide. */
static int
http_end_head(struct ctlb_http *hp)
{
	if (hp->status == 101) {
		if (!hp->upgrade_seen || hp->upgrade_bad)
			return http_fail(hp, CTLB_ERR_HTTP_UPGRADE);
		hp->state = H_DONE;
		return CTLB_DONE;
	}
	if (hp->status < 200) {
		/* Interim responses (100, 102, 103) have no body; the real one follows. */
		http_reset_response(hp);
		return CTLB_MORE;
	}
	if (hp->status == 204 || hp->status == 304 || hp->len_unusable ||
	    (hp->have_clen && hp->clen == 0))
		return http_fail(hp, CTLB_ERR_HTTP_STATUS);
	/* The excerpt is the body's; drop any Upgrade value kept (426 has one). */
	hp->detail[0] = '\0';
	hp->detail_len = 0;
	hp->state = H_BODY;
	hp->body_by_close = !hp->have_clen;
	hp->body_left = hp->clen;
	return CTLB_MORE;
}

static int
http_end_line(struct ctlb_http *hp)
{
	size_t n = MIN(hp->line_len, sizeof hp->line);
	bool trunc = hp->line_len > sizeof hp->line;

	hp->line_len = 0;
	if (!hp->in_head)
		return n == 0 ? CTLB_ERR_HTTP_MALFORMED : http_status_line(hp, hp->line, n);
	if (n == 0)
		return http_end_head(hp);
	return http_field_line(hp, hp->line, n, trunc);
}

/* Takes error-body bytes, no more than the excerpt holds; returns how many. */
static size_t
http_body(struct ctlb_http *hp, const uint8_t *buf, size_t len)
{
	size_t take = MIN(len, CTLB_TEXT_MAX - hp->detail_len);

	if (!hp->body_by_close && take > hp->body_left)
		take = (size_t)hp->body_left;
	hp->detail_len = append_text(hp->detail, hp->detail_len, CTLB_TEXT_MAX, buf, take);
	if (!hp->body_by_close)
		hp->body_left -= take;
	return take;
}

int
ctlb_http_feed(struct ctlb_http *hp, const uint8_t *buf, size_t len, size_t *used)
{
	size_t i = 0;
	int r = CTLB_MORE;

	if (used)
		*used = 0;
	if (hp->state == H_FAILED)
		return hp->err;
	if (hp->state == H_DONE)
		return CTLB_DONE;
	if (buf == NULL && len > 0)
		return CTLB_ERR_INVAL;

	while (i < len && r == CTLB_MORE) {
		uint8_t ch;

		if (hp->state == H_BODY) {
			i += http_body(hp, buf + i, len - i);
			if ((!hp->body_by_close && hp->body_left == 0) ||
			    hp->detail_len == CTLB_TEXT_MAX)
				r = http_fail(hp, CTLB_ERR_HTTP_STATUS);
			continue;
		}
		ch = buf[i++];
		if (++hp->head_len > CTLB_HTTP_HEAD_MAX) {
			r = http_fail(hp, CTLB_ERR_HTTP_TOO_BIG);
			break;
		}
		if (hp->cr) {
			/* RFC 9112 §2.2: a bare CR is invalid. */
			hp->cr = false;
			r = ch == '\n' ? http_end_line(hp) : CTLB_ERR_HTTP_MALFORMED;
		} else if (ch == '\r') {
			hp->cr = true;
		} else if (ch == '\n') {
			/* RFC 9112 §2.2 lets a recipient accept a bare LF. */
			r = http_end_line(hp);
		} else if (ch == '\0') {
			r = CTLB_ERR_HTTP_MALFORMED;
		} else {
			if (hp->line_len < sizeof hp->line)
				hp->line[hp->line_len] = (char)ch;
			hp->line_len++;
		}
		if (r < 0 && hp->state != H_FAILED)
			r = http_fail(hp, r);
	}
	if (used)
		*used = i;
	return r;
}

int
ctlb_http_eof(struct ctlb_http *hp)
{
	switch (hp->state) {
	case H_DONE:
		return CTLB_DONE;
	case H_FAILED:
		return hp->err;
	case H_BODY:
		return http_fail(hp, CTLB_ERR_HTTP_STATUS);
	default:
		return http_fail(hp, CTLB_ERR_HTTP_EOF);
	}
}

int
ctlb_http_status(const struct ctlb_http *hp)
{
	return hp->status;
}

const char *
ctlb_http_reason(const struct ctlb_http *hp)
{
	return hp->reason;
}

const char *
ctlb_http_detail(const struct ctlb_http *hp)
{
	return hp->detail;
}

int
ctlb_http_describe(const struct ctlb_http *hp, char *buf, size_t len)
{
	int err = hp->state == H_FAILED ? hp->err : 0;

	switch (err) {
	case CTLB_ERR_HTTP_STATUS:
		return snprintf(buf, len, "HTTP %d%s%s%s%s", hp->status,
		    hp->reason[0] ? " " : "", hp->reason,
		    hp->detail[0] ? ": " : "", hp->detail);
	case CTLB_ERR_HTTP_UPGRADE:
		if (!hp->upgrade_seen)
			return snprintf(buf, len, "HTTP 101 without an Upgrade header");
		return snprintf(buf, len, "server switched to unexpected protocol \"%s\"",
		    hp->detail);
	default:
		return snprintf(buf, len, "%s", ctlb_strerror(err));
	}
}

/* ---- 2. Noise IK initiator ---------------------------------------------- */

static void
mix_hash(uint8_t h[static 32], const uint8_t *data, size_t len)
{
	wg_hash2(h, h, 32, data, len);
}

/*
 * MixKey(DH(priv, pub)): (ck, k) = HKDF(ck, dh) with ck as the HMAC key,
 * which is wg_kdf().  k may be NULL for ee, whose key Noise discards.
 * Go's curve25519.X25519 and wg_dh() both refuse an all-zero result.
 */
static int
mix_dh(uint8_t ck[static 32], uint8_t *k, const uint8_t priv[static 32],
    const uint8_t pub[static 32])
{
	uint8_t dh[32];

	if (!wg_dh(dh, priv, pub))
		return CTLB_ERR_DH;
	wg_kdf(ck, k, NULL, ck, dh, sizeof dh);
	sodium_memzero(dh, sizeof dh);
	return 0;
}

static void
wipe_handshake(struct ctlb *c)
{
	sodium_memzero(c->h, sizeof c->h);
	sodium_memzero(c->ck, sizeof c->ck);
	sodium_memzero(c->eph_priv, sizeof c->eph_priv);
	sodium_memzero(c->hs_buf, sizeof c->hs_buf);
	c->machine_priv = NULL;
}

/* Enter the sticky failed state; like Go, drop all cipher state at once. */
static int
fail(struct ctlb *c, int err)
{
	wipe_handshake(c);
	sodium_memzero(c->tx_key, sizeof c->tx_key);
	sodium_memzero(c->rx_key, sizeof c->rx_key);
	sodium_memzero(c->rx_buf, sizeof c->rx_buf);
	c->rx_len = 0;
	c->state = ST_FAILED;
	c->err = err;
	return err;
}

int
ctlb_init(struct ctlb *c, uint16_t capver, const uint8_t machine_priv[static CTLB_KEY_LEN],
    const uint8_t *machine_pub, const uint8_t server_pub[static CTLB_KEY_LEN],
    ctlb_rng_fn rng, void *rng_ctx)
{
	int n;

	if (c == NULL)
		return CTLB_ERR_INVAL;
	sodium_memzero(c, sizeof *c);
	if (rng == NULL)
		return CTLB_ERR_INVAL;
	wg_pubkey(c->machine_pub, machine_priv);
	if (machine_pub != NULL && sodium_memcmp(c->machine_pub, machine_pub, CTLB_KEY_LEN) != 0) {
		sodium_memzero(c->machine_pub, sizeof c->machine_pub);
		return CTLB_ERR_INVAL;
	}
	/*
	 * handshake.go protocolVersionPrologue: the server rebuilds it from
	 * the version in the initiation header, so the two always agree.
	 */
	n = snprintf((char *)c->prologue, sizeof c->prologue, "%s%u", prologue_prefix,
	    (unsigned int)capver);
	if (n < 0 || (size_t)n >= sizeof c->prologue)
		return CTLB_ERR_INVAL;	/* cannot happen for a uint16_t */
	c->prologue_len = (size_t)n;
	c->capver = capver;
	c->machine_priv = machine_priv;
	memcpy(c->server_pub, server_pub, CTLB_KEY_LEN);
	c->rng = rng;
	c->rng_ctx = rng_ctx;
	c->state = ST_NEW;
	return 0;
}

int
ctlb_initiation(struct ctlb *c, uint8_t out[static CTLB_INIT_LEN])
{
	uint8_t k[32];
	int r;

	if (c->state == ST_FAILED)
		return c->err;
	if (c->state != ST_NEW)
		return CTLB_ERR_STATE;

	/* handshake.go ClientDeferred, step by step (§3.2). */
	blake2s(c->h, 32, NULL, 0, (const uint8_t *)protocol_name, strlen(protocol_name));
	memcpy(c->ck, c->h, 32);
	mix_hash(c->h, c->prologue, c->prologue_len);
	mix_hash(c->h, c->server_pub, 32);		/* <- s */

	put_be16(out, c->capver);			/* messages.go mkInitiationMessage */
	out[2] = MSG_INITIATION;
	put_be16(out + 3, INIT_PAYLOAD);

	/* -> e: Go's key.NewMachine() clamps, so we do too. */
	c->rng(c->rng_ctx, c->eph_priv, sizeof c->eph_priv);
	wg_clamp(c->eph_priv);
	wg_pubkey(out + 5, c->eph_priv);
	mix_hash(c->h, out + 5, 32);

	/*
	 * Each handshake key seals exactly once, with nonce 0, where
	 * WireGuard's little-endian nonce and TS2021's big-endian one agree,
	 * so wg_aead_seal() is right here (handshake.go singleUseCHP).
	 */
	if ((r = mix_dh(c->ck, k, c->eph_priv, c->server_pub)) < 0)	/* es */
		goto err;
	wg_aead_seal(out + 37, c->machine_pub, 32, c->h, 32, 0, k);	/* s */
	mix_hash(c->h, out + 37, 48);
	if ((r = mix_dh(c->ck, k, c->machine_priv, c->server_pub)) < 0)	/* ss */
		goto err;
	wg_aead_seal(out + 85, NULL, 0, c->h, 32, 0, k);		/* empty payload */
	mix_hash(c->h, out + 85, 16);
	sodium_memzero(k, sizeof k);
	c->state = ST_SENT;
	return 0;

err:
	sodium_memzero(k, sizeof k);
	sodium_memzero(out, CTLB_INIT_LEN);
	return fail(c, r);
}

/* <- e, ee, se, then Split (handshake.go continueClientHandshake). */
static int
finish_handshake(struct ctlb *c)
{
	const uint8_t *re = c->hs_buf + CTLB_HDR_LEN, *tag = re + 32;
	uint8_t k[32];
	int r;

	mix_hash(c->h, re, 32);
	if ((r = mix_dh(c->ck, NULL, c->eph_priv, re)) < 0)		/* ee */
		goto out;
	if ((r = mix_dh(c->ck, k, c->machine_priv, re)) < 0)		/* se */
		goto out;
	if (!wg_aead_open(NULL, tag, CTLB_TAG_LEN, c->h, 32, 0, k)) {
		r = CTLB_ERR_AUTH;
		goto out;
	}
	mix_hash(c->h, tag, CTLB_TAG_LEN);	/* the final h is unused (§3.2) */
	/* k1 encrypts client→server, k2 server→client. */
	wg_kdf(c->tx_key, c->rx_key, NULL, c->ck, NULL, 0);
	c->tx_ctr = 0;
	c->rx_ctr = 0;
	c->rx_len = 0;
	wipe_handshake(c);
	c->state = ST_OPEN;
	r = CTLB_DONE;
out:
	sodium_memzero(k, sizeof k);
	return r < 0 ? fail(c, r) : r;
}

int
ctlb_read_response(struct ctlb *c, const uint8_t *buf, size_t len, size_t *used)
{
	size_t i = 0, n;
	int r = CTLB_MORE;

	if (used)
		*used = 0;
	if (c->state == ST_FAILED)
		return c->err;
	if (c->state == ST_OPEN)
		return CTLB_DONE;
	if (c->state != ST_SENT)
		return CTLB_ERR_STATE;
	if (buf == NULL && len > 0)
		return CTLB_ERR_INVAL;

	while (i < len && r == CTLB_MORE) {
		if (c->errtext_want > 0) {
			/* An error frame: keep at most CTLB_TEXT_MAX bytes of it. */
			n = MIN(len - i, c->errtext_want - c->errtext_len);
			c->errtext_len = append_text(c->errtext, c->errtext_len, CTLB_TEXT_MAX,
			    buf + i, n);
			i += n;
			if (c->errtext_len == c->errtext_want) {
				trim_text(c->errtext, NULL);
				r = fail(c, CTLB_ERR_SERVER);
			}
			continue;
		}
		n = MIN(len - i, (c->hs_len < CTLB_HDR_LEN ? CTLB_HDR_LEN : CTLB_RESP_LEN) - c->hs_len);
		memcpy(c->hs_buf + c->hs_len, buf + i, n);
		c->hs_len += n;
		i += n;
		if (c->hs_len == CTLB_HDR_LEN) {
			uint16_t flen = get_be16(c->hs_buf + 1);

			/* handshake.go: an error frame instead of a response is
			 * reported with its text; any other type, or a response
			 * not 48 bytes long, aborts. */
			if (c->hs_buf[0] == MSG_ERROR) {
				c->errtext_want = MIN(flen, CTLB_TEXT_MAX);
				if (c->errtext_want == 0)
					r = fail(c, CTLB_ERR_SERVER);
			} else if (c->hs_buf[0] != MSG_RESPONSE) {
				r = fail(c, CTLB_ERR_MSG_TYPE);
			} else if (flen != RESP_PAYLOAD) {
				r = fail(c, CTLB_ERR_MSG_LEN);
			}
		} else if (c->hs_len == CTLB_RESP_LEN) {
			r = finish_handshake(c);
		}
	}
	if (used)
		*used = i;
	return r;
}

const char *
ctlb_server_error(const struct ctlb *c)
{
	return c->errtext;
}

/* ---- 3. Transport records ----------------------------------------------- */

/*
 * conn.go nonce: 4 zero bytes, then the counter BIG-endian -- unlike
 * WireGuard and stock Noise, which is why wg_aead_* is not used here.
 */
static void
record_nonce(uint8_t nonce[static 12], uint64_t ctr)
{
	memset(nonce, 0, 4);
	put_be64(nonce + 4, ctr);
}

size_t
ctlb_sealed_size(size_t len)
{
	size_t nrec = len / CTLB_MAX_PLAINTEXT + (len % CTLB_MAX_PLAINTEXT != 0);

	if (nrec > (SIZE_MAX - len) / CTLB_RECORD_OVERHEAD)
		return SIZE_MAX;
	return len + nrec * CTLB_RECORD_OVERHEAD;
}

int
ctlb_encrypt(struct ctlb *c, const uint8_t *pt, size_t len, uint8_t *out, size_t outcap,
    size_t *outlen)
{
	uint8_t nonce[12];
	size_t need, nrec, off = 0;

	if (outlen == NULL || (pt == NULL && len > 0))
		return CTLB_ERR_INVAL;
	*outlen = 0;
	if (c->state == ST_FAILED)
		return c->err;
	if (c->state != ST_OPEN)
		return CTLB_ERR_STATE;
	if (len == 0)
		return 0;
	need = ctlb_sealed_size(len);
	if (need == SIZE_MAX || out == NULL || need > outcap)
		return CTLB_ERR_NOSPACE;
	/*
	 * Counters 0 .. 2^64-2 are usable (conn.go nonce.Valid).  Go writes
	 * records until it runs out; we refuse the whole write up front so
	 * that out never holds half of it.  Either way the connection is dead.
	 */
	nrec = (need - len) / CTLB_RECORD_OVERHEAD;
	if ((uint64_t)nrec > UINT64_MAX - c->tx_ctr)
		return fail(c, CTLB_ERR_EXHAUSTED);

	while (len > 0) {
		size_t n = MIN(len, (size_t)CTLB_MAX_PLAINTEXT);

		out[off] = MSG_RECORD;
		put_be16(out + off + 1, (uint16_t)(n + CTLB_TAG_LEN));
		record_nonce(nonce, c->tx_ctr++);
		/* Records carry no associated data (conn.go encryptLocked). */
		crypto_aead_chacha20poly1305_ietf_encrypt(out + off + CTLB_HDR_LEN, NULL, pt, n,
		    NULL, 0, NULL, nonce, c->tx_key);
		off += n + CTLB_RECORD_OVERHEAD;
		pt += n;
		len -= n;
	}
	*outlen = off;
	return 0;
}

/* Validates a record header as soon as its 3 bytes are in (conn.go). */
static int
check_record_header(const uint8_t hdr[static CTLB_HDR_LEN])
{
	uint16_t clen = get_be16(hdr + 1);

	/* decryptLocked: any type but 4, the error frame included, is fatal. */
	if (hdr[0] != MSG_RECORD)
		return CTLB_ERR_RECORD_TYPE;
	/* readNLocked: 3 + length > maxMessageSize is errReadTooBig. */
	if (clen > CTLB_MAX_CIPHERTEXT)
		return CTLB_ERR_RECORD_LEN;
	/* Go would fail the AEAD open of a tag-less record; say why instead. */
	if (clen < CTLB_TAG_LEN)
		return CTLB_ERR_RECORD_LEN;
	return 0;
}

/* Opens ct[0..clen) into rx_buf + 3 (in place when ct is already there). */
static int
open_record(struct ctlb *c, const uint8_t *ct, size_t clen)
{
	uint8_t nonce[12];

	if (c->rx_ctr == UINT64_MAX)
		return CTLB_ERR_EXHAUSTED;
	record_nonce(nonce, c->rx_ctr);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(c->rx_buf + CTLB_HDR_LEN, NULL, NULL,
	    ct, clen, NULL, 0, nonce, c->rx_key) != 0)
		return CTLB_ERR_DECRYPT;
	c->rx_ctr++;
	return 0;
}

int
ctlb_feed(struct ctlb *c, const uint8_t *buf, size_t len, ctlb_data_fn cb, void *cb_ctx)
{
	size_t i = 0, n, total;
	const uint8_t *ct;
	int r;

	if (c->state == ST_FAILED)
		return c->err;
	if (c->state != ST_OPEN)
		return CTLB_ERR_STATE;
	if (cb == NULL || (buf == NULL && len > 0))
		return CTLB_ERR_INVAL;

	while (i < len) {
		if (c->rx_len < CTLB_HDR_LEN) {
			n = MIN(len - i, CTLB_HDR_LEN - c->rx_len);
			memcpy(c->rx_buf + c->rx_len, buf + i, n);
			c->rx_len += n;
			i += n;
			if (c->rx_len < CTLB_HDR_LEN)
				break;
			if ((r = check_record_header(c->rx_buf)) < 0)
				return fail(c, r);
		}
		total = CTLB_HDR_LEN + get_be16(c->rx_buf + 1);
		if (c->rx_len == CTLB_HDR_LEN && len - i >= total - CTLB_HDR_LEN) {
			/* The whole ciphertext is in this chunk: open it from
			 * there and skip a copy. */
			ct = buf + i;
			i += total - CTLB_HDR_LEN;
		} else {
			n = MIN(len - i, total - c->rx_len);
			memcpy(c->rx_buf + c->rx_len, buf + i, n);
			c->rx_len += n;
			i += n;
			if (c->rx_len < total)
				break;
			ct = c->rx_buf + CTLB_HDR_LEN;
		}
		c->rx_len = 0;
		if ((r = open_record(c, ct, total - CTLB_HDR_LEN)) < 0)
			return fail(c, r);
		/* Zero-length records are legal and carry nothing (conn.go Read loops). */
		n = total - CTLB_RECORD_OVERHEAD;
		if (n > 0 && cb(cb_ctx, c->rx_buf + CTLB_HDR_LEN, n) != 0)
			return fail(c, CTLB_ERR_ABORTED);
		/* A ctlb_encrypt() from the callback may have failed the connection. */
		if (c->state != ST_OPEN)
			return c->err;
	}
	return 0;
}

int
ctlb_error(const struct ctlb *c)
{
	return c->state == ST_FAILED ? c->err : 0;
}

bool
ctlb_is_open(const struct ctlb *c)
{
	return c->state == ST_OPEN;
}

void
ctlb_clear(struct ctlb *c)
{
	if (c != NULL)
		sodium_memzero(c, sizeof *c);
}

/* ---- 4. Early payload ---------------------------------------------------- */

void
ctlb_early_init(struct ctlb_early *e)
{
	memset(e, 0, sizeof *e);
	e->state = E_HEAD;
}

static int
early_fail(struct ctlb_early *e, int err)
{
	e->state = E_FAILED;
	e->err = err;
	return err;
}

int
ctlb_early_feed(struct ctlb_early *e, const uint8_t *buf, size_t len, ctlb_data_fn out,
    void *out_ctx)
{
	size_t i = 0, n;

	if (e->state == E_FAILED)
		return e->err;
	if (out == NULL || (buf == NULL && len > 0))
		return CTLB_ERR_INVAL;

	while (i < len && e->state != E_DONE) {
		if (e->state == E_JSON) {
			n = MIN(len - i, (size_t)(e->json_len - e->json_got));
			memcpy(e->json + e->json_got, buf + i, n);
			e->json_got += (uint32_t)n;
			i += n;
			if (e->json_got == e->json_len)
				e->state = E_DONE;
			continue;
		}
		/*
		 * ts2021/conn.go readHeader reads 9 bytes (an HTTP/2 frame
		 * header) and pushes them back unless they start with the
		 * magic.  The magic cannot begin an HTTP/2 frame (length
		 * 0xFFFFFF is over any allowed size), so a mismatch in the
		 * first 5 bytes decides at once; we pass the held-back bytes on
		 * then instead of waiting for all 9.
		 */
		if (e->hdr_len < sizeof early_magic && buf[i] != early_magic[e->hdr_len]) {
			e->state = E_DONE;
			if (e->hdr_len > 0 && out(out_ctx, e->hdr, e->hdr_len) != 0)
				return early_fail(e, CTLB_ERR_ABORTED);
			break;
		}
		e->hdr[e->hdr_len++] = buf[i++];
		if (e->hdr_len == sizeof e->hdr) {
			e->present = true;
			e->json_len = get_be32(e->hdr + sizeof early_magic);
			/* Go allows 10 MiB, tailscale-rs 1 KiB; Headscale sends ~91 B. */
			if (e->json_len > CTLB_EARLY_MAX)
				return early_fail(e, CTLB_ERR_EARLY_LEN);
			e->state = e->json_len > 0 ? E_JSON : E_DONE;
		}
	}
	if (e->state != E_DONE)
		return CTLB_MORE;
	if (i < len && out(out_ctx, buf + i, len - i) != 0)
		return early_fail(e, CTLB_ERR_ABORTED);
	return CTLB_DONE;
}

const uint8_t *
ctlb_early_payload(const struct ctlb_early *e, size_t *len)
{
	if (e->state != E_DONE || !e->present) {
		if (len)
			*len = 0;
		return NULL;
	}
	if (len)
		*len = e->json_len;
	return e->json;
}
