// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The DERP client codec (derp.h).  Layouts are restated next to the code
 * that reads them; the reference is tailscale derp/derp.go and
 * derp/derp_client.go at v1.102.3.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <sodium.h>

#include "agent/magicsock/derp.h"
#include "common/util.h"
#include "common/version.h"

const char *
derp_strerror(int err)
{
	switch (err) {
	case DERP_OK:			return "ok";
	case DERP_MORE:			return "incomplete";
	case DERP_SKIP:			return "ignored";
	case DERP_ERR_SHORT:		return "frame too short for its type";
	case DERP_ERR_TOO_BIG:		return "over the size limit";
	case DERP_ERR_FORMAT:		return "malformed";
	case DERP_ERR_CRYPTO:		return "box did not open";
	case DERP_ERR_HTTP:		return "not an HTTP response";
	case DERP_ERR_HTTP_STATUS:	return "upgrade refused";
	case DERP_ERR_HTTP_EOF:		return "closed before the upgrade response";
	case DERP_ERR_BUFFER:		return "buffer too small";
	}
	return "unknown error";
}

/* --- frames --- */

void
derp_frame_hdr_put(uint8_t out[static DERP_FRAME_HDR_LEN], uint8_t type, uint32_t len)
{
	out[0] = type;
	put_be32(out + 1, len);
}

int
derp_frame_hdr_parse(const uint8_t *buf, size_t len, uint32_t max, struct derp_frame *f)
{
	memset(f, 0, sizeof *f);
	if (len < DERP_FRAME_HDR_LEN)
		return DERP_MORE;
	f->type = buf[0];
	f->len = get_be32(buf + 1);
	if (f->len > max)
		return DERP_ERR_TOO_BIG;
	f->total = DERP_FRAME_HDR_LEN + (size_t)f->len;
	return DERP_OK;
}

int
derp_frame_next(const uint8_t *buf, size_t len, uint32_t max, struct derp_frame *f)
{
	int r = derp_frame_hdr_parse(buf, len, max, f);

	if (r != DERP_OK)
		return r;
	if (len < f->total)
		return DERP_MORE;
	f->payload = buf + DERP_FRAME_HDR_LEN;
	return DERP_OK;
}

/* --- the HTTP upgrade --- */

static bool
host_ok(const char *host)
{
	if (*host == '\0' || strlen(host) > 253)
		return false;
	for (const char *p = host; *p; p++)
		if (!isalnum((unsigned char)*p) && strchr(".-_:", *p) == NULL)
			return false;
	return true;
}

int
derp_upgrade_request(char *buf, size_t cap, const char *host, uint16_t port, bool tls)
{
	uint16_t def = tls ? 443 : 80;
	bool v6 = strchr(host, ':') != NULL;
	char portstr[8] = "";
	int n;

	if (!host_ok(host))
		return -1;
	if (port != 0 && port != def)
		snprintf(portstr, sizeof portstr, ":%u", port);
	/* derphttp sends no Derp-Fast-Start without the TLS meta certificate: neither do we. */
	n = snprintf(buf, cap,
	    "GET /derp HTTP/1.1\r\n"
	    "Host: %s%s%s%s\r\n"
	    "User-Agent: meshd/" MESHD_VERSION "\r\n"
	    "Connection: Upgrade\r\n"
	    "Upgrade: DERP\r\n"
	    "\r\n",
	    v6 ? "[" : "", host, v6 ? "]" : "", portstr);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	return n;
}

void
derp_http_init(struct derp_http *hp)
{
	hp->len = 0;
	hp->line_start = 0;
	hp->status = 0;
	hp->result = DERP_MORE;
	hp->reason[0] = '\0';
	hp->detail[0] = '\0';
	hp->head[0] = '\0';
}

/* Copies printable ASCII, one '?' for anything else, always NUL terminated. */
static void
printable_copy(char *out, size_t cap, const uint8_t *p, size_t len)
{
	size_t n = 0;

	if (cap == 0)
		return;
	for (size_t i = 0; i < len && n + 1 < cap; i++) {
		uint8_t ch = p[i];

		if (ch == '\r' || ch == '\n' || ch == '\t')
			ch = ' ';
		out[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	/* Trailing blanks of a body are not worth showing. */
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

/* "HTTP/1.1 101 Switching Protocols": version, three digits, optional reason. */
static bool
parse_status_line(struct derp_http *hp, const char *line, size_t len)
{
	size_t i = 5;
	int code = 0;

	if (len < 12 || memcmp(line, "HTTP/", 5) != 0)
		return false;
	while (i < len && (isdigit((unsigned char)line[i]) || line[i] == '.'))
		i++;
	if (i == 5 || i >= len || line[i] != ' ')
		return false;
	i++;
	if (len - i < 3)
		return false;
	for (int k = 0; k < 3; k++, i++) {
		if (!isdigit((unsigned char)line[i]))
			return false;
		code = code * 10 + (line[i] - '0');
	}
	if (code < 100)
		return false;
	if (i < len && line[i] != ' ')
		return false;
	while (i < len && line[i] == ' ')
		i++;
	printable_copy(hp->reason, sizeof hp->reason, (const uint8_t *)line + i, len - i);
	hp->status = code;
	return true;
}

static int
http_end(struct derp_http *hp, int r)
{
	hp->result = r;
	hp->head[MIN(hp->len, (size_t)DERP_HTTP_HEAD_MAX)] = '\0';
	return r;
}

int
derp_http_feed(struct derp_http *hp, const uint8_t *buf, size_t len, size_t *used)
{
	static const char prefix[] = "HTTP/";

	*used = 0;
	if (hp->result != DERP_MORE)
		return hp->result;
	for (size_t i = 0; i < len; i++) {
		uint8_t ch = buf[i];
		size_t line_len;
		const char *line;

		if (hp->len == DERP_HTTP_HEAD_MAX) {
			*used = i;
			return http_end(hp, DERP_ERR_TOO_BIG);
		}
		hp->head[hp->len++] = (char)ch;
		/* Anything but "HTTP/" up front is not worth waiting 8 KiB for. */
		if (hp->len <= sizeof prefix - 1 && ch != (uint8_t)prefix[hp->len - 1]) {
			*used = i + 1;
			/* Keep a few more bytes (not consumed) to show what it was. */
			for (size_t j = i + 1; j < len && hp->len < 8; j++)
				hp->head[hp->len++] = (char)buf[j];
			return http_end(hp, DERP_ERR_HTTP);
		}
		if (ch != '\n')
			continue;
		line = hp->head + hp->line_start;
		line_len = hp->len - 1 - hp->line_start;
		if (line_len > 0 && line[line_len - 1] == '\r')
			line_len--;
		hp->line_start = hp->len;
		if (hp->status == 0) {
			if (!parse_status_line(hp, line, line_len)) {
				*used = i + 1;
				return http_end(hp, DERP_ERR_HTTP);
			}
			continue;
		}
		if (line_len != 0)
			continue;
		/* The blank line: the head is complete. */
		*used = i + 1;
		if (hp->status == 101)
			return http_end(hp, DERP_OK);
		/* A refusal's body usually comes in the same read; keep its start for the message. */
		printable_copy(hp->detail, sizeof hp->detail, buf + i + 1, len - i - 1);
		return http_end(hp, DERP_ERR_HTTP_STATUS);
	}
	*used = len;
	return DERP_MORE;
}

int
derp_http_eof(struct derp_http *hp)
{
	if (hp->result != DERP_MORE)
		return hp->result;
	/* A refusal cut short still says what it was; a cut 101 is not an upgrade. */
	if (hp->status != 0 && hp->status != 101)
		return http_end(hp, DERP_ERR_HTTP_STATUS);
	return http_end(hp, DERP_ERR_HTTP_EOF);
}

int
derp_http_status(const struct derp_http *hp)
{
	return hp->status;
}

void
derp_http_describe(const struct derp_http *hp, int err, char *buf, size_t len)
{
	char hex[3 * 8 + 1] = "";
	size_t n = MIN(hp->len, (size_t)8);

	switch (err) {
	case DERP_ERR_HTTP_STATUS:
		snprintf(buf, len, "HTTP %d%s%s%s%s", hp->status, hp->reason[0] ? " " : "",
		    hp->reason, hp->detail[0] ? ": " : "", hp->detail);
		break;
	case DERP_ERR_HTTP:
		for (size_t i = 0, off = 0; i < n; i++)
			off += (size_t)snprintf(hex + off, sizeof hex - off, "%s%02x", i ? " " : "",
			    (uint8_t)hp->head[i]);
		/* A TLS record (alert or handshake) means the URL should have been https. */
		snprintf(buf, len, "the server did not answer with HTTP (first bytes %s)%s", hex,
		    n >= 2 && ((uint8_t)hp->head[0] == 0x15 || (uint8_t)hp->head[0] == 0x16) &&
		    (uint8_t)hp->head[1] == 0x03 ? "; it speaks TLS" : "");
		break;
	case DERP_ERR_TOO_BIG:
		snprintf(buf, len, "HTTP response head over %d bytes", DERP_HTTP_HEAD_MAX);
		break;
	case DERP_ERR_HTTP_EOF:
		snprintf(buf, len, "the server closed the connection before answering the upgrade");
		break;
	default:
		snprintf(buf, len, "%s", derp_strerror(err));
		break;
	}
}

/* --- handshake frames --- */

int
derp_server_key_parse(const uint8_t *p, size_t len, uint8_t server_key[static DERP_KEY_LEN])
{
	/* magic(8) ‖ key(32) ‖ bytes for future use, which we skip. */
	if (len < DERP_MAGIC_LEN + DERP_KEY_LEN)
		return DERP_ERR_SHORT;
	if (memcmp(p, DERP_MAGIC, DERP_MAGIC_LEN) != 0)
		return DERP_ERR_FORMAT;
	memcpy(server_key, p + DERP_MAGIC_LEN, DERP_KEY_LEN);
	return DERP_OK;
}

int
derp_client_info_build(uint8_t out[static DERP_CLIENT_INFO_FRAME_LEN],
    const uint8_t node_priv[static DERP_KEY_LEN], const uint8_t node_pub[static DERP_KEY_LEN],
    const uint8_t server_key[static DERP_KEY_LEN], const uint8_t nonce[static DERP_NONCE_LEN])
{
	uint8_t *p = out + DERP_FRAME_HDR_LEN;

	/* key(32) ‖ nonce(24) ‖ MAC(16) ‖ ciphertext: crypto_box_easy writes MAC‖ciphertext. */
	derp_frame_hdr_put(out, DERP_FRAME_CLIENT_INFO,
	    DERP_CLIENT_INFO_FRAME_LEN - DERP_FRAME_HDR_LEN);
	memcpy(p, node_pub, DERP_KEY_LEN);
	memcpy(p + DERP_KEY_LEN, nonce, DERP_NONCE_LEN);
	if (crypto_box_easy(p + DERP_KEY_LEN + DERP_NONCE_LEN,
	    (const uint8_t *)DERP_CLIENT_INFO_JSON, DERP_CLIENT_INFO_JSON_LEN, nonce, server_key,
	    node_priv) != 0) {
		sodium_memzero(out, DERP_CLIENT_INFO_FRAME_LEN);
		return DERP_ERR_CRYPTO;
	}
	return DERP_CLIENT_INFO_FRAME_LEN;
}

/* An integer field as encoding/json would fill an int; other types leave it alone. */
static void
json_int_field(json_object *v, int64_t *out)
{
	if (v != NULL && json_object_is_type(v, json_type_int))
		*out = json_object_get_int64(v);
}

int
derp_server_info_open(const uint8_t *p, size_t len, const uint8_t node_priv[static DERP_KEY_LEN],
    const uint8_t server_key[static DERP_KEY_LEN], struct derp_server_info *si)
{
	uint8_t plain[DERP_SERVER_INFO_MAX];
	size_t mlen, end;
	json_tokener *tok;
	json_object *o;
	int64_t version = 0;
	int r = DERP_OK;

	memset(si, 0, sizeof *si);
	/* nonce(24) ‖ MAC(16) ‖ ciphertext */
	if (len < DERP_NONCE_LEN + DERP_BOX_OVERHEAD)
		return DERP_ERR_SHORT;
	mlen = len - DERP_NONCE_LEN - DERP_BOX_OVERHEAD;
	if (mlen > sizeof plain)
		return DERP_SKIP;
	if (crypto_box_open_easy(plain, p + DERP_NONCE_LEN, len - DERP_NONCE_LEN, p, server_key,
	    node_priv) != 0)
		return DERP_ERR_CRYPTO;

	if ((tok = json_tokener_new()) == NULL)
		return DERP_SKIP;
	o = json_tokener_parse_ex(tok, (const char *)plain, (int)mlen);
	end = json_tokener_get_error(tok) == json_tokener_success ?
	    json_tokener_get_parse_end(tok) : 0;
	json_tokener_free(tok);
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		r = DERP_ERR_FORMAT;
		goto out;
	}
	/* Only whitespace may follow the object, as encoding/json requires. */
	for (size_t i = end; i < mlen; i++) {
		if (!isspace(plain[i])) {
			r = DERP_ERR_FORMAT;
			goto out;
		}
	}
	json_object_object_foreach(o, k, v) {
		if (strcasecmp(k, "version") == 0)
			json_int_field(v, &version);
		else if (strcasecmp(k, "TokenBucketBytesPerSecond") == 0)
			json_int_field(v, &si->token_bucket_bytes_per_second);
		else if (strcasecmp(k, "TokenBucketBytesBurst") == 0)
			json_int_field(v, &si->token_bucket_bytes_burst);
	}
	si->version = version < 0 || version > 1000000 ? 0 : (int)version;
out:
	json_object_put(o);
	return r;
}

/* --- client → server --- */

int
derp_send_packet_hdr(uint8_t out[static DERP_SEND_HDR_LEN], const uint8_t dst[static DERP_KEY_LEN],
    size_t pkt_len)
{
	if (pkt_len > DERP_MAX_PACKET)
		return DERP_ERR_TOO_BIG;
	derp_frame_hdr_put(out, DERP_FRAME_SEND_PACKET, (uint32_t)(DERP_KEY_LEN + pkt_len));
	memcpy(out + DERP_FRAME_HDR_LEN, dst, DERP_KEY_LEN);
	return DERP_SEND_HDR_LEN;
}

void
derp_ping_build(uint8_t out[static DERP_PING_FRAME_LEN], uint8_t type, const uint8_t data[static 8])
{
	derp_frame_hdr_put(out, type, 8);
	memcpy(out + DERP_FRAME_HDR_LEN, data, 8);
}

void
derp_note_preferred_build(uint8_t out[static DERP_NOTE_PREFERRED_FRAME_LEN], bool preferred)
{
	derp_frame_hdr_put(out, DERP_FRAME_NOTE_PREFERRED, 1);
	out[DERP_FRAME_HDR_LEN] = preferred ? 0x01 : 0x00;
}

/* --- server → client --- */

int
derp_recv_packet_parse(const uint8_t *p, size_t len, const uint8_t **src, const uint8_t **pkt,
    size_t *pkt_len)
{
	/* Protocol version 2: src(32) ‖ packet. */
	if (len < DERP_KEY_LEN)
		return DERP_ERR_SHORT;
	if (len - DERP_KEY_LEN > DERP_MAX_PACKET)
		return DERP_ERR_TOO_BIG;
	*src = p;
	*pkt = p + DERP_KEY_LEN;
	*pkt_len = len - DERP_KEY_LEN;
	return DERP_OK;
}

int
derp_peer_gone_parse(const uint8_t *p, size_t len, const uint8_t **key, uint8_t *reason)
{
	/* key(32), then a reason byte that older servers leave out (= Disconnected). */
	if (len < DERP_KEY_LEN)
		return DERP_ERR_SHORT;
	*key = p;
	*reason = len > DERP_KEY_LEN ? p[DERP_KEY_LEN] : DERP_PEER_GONE_DISCONNECTED;
	return DERP_OK;
}

int
derp_ping_parse(const uint8_t *p, size_t len, uint8_t data[static 8])
{
	/* 8 bytes; like derp_client.go we read the first 8 of a longer one. */
	if (len < 8)
		return DERP_ERR_SHORT;
	memcpy(data, p, 8);
	return DERP_OK;
}

int
derp_restarting_parse(const uint8_t *p, size_t len, uint32_t *reconnect_in_ms, uint32_t *try_for_ms)
{
	if (len < 8)
		return DERP_ERR_SHORT;
	*reconnect_in_ms = get_be32(p);
	*try_for_ms = get_be32(p + 4);
	return DERP_OK;
}

void
derp_health_text(const uint8_t *p, size_t len, char *out, size_t cap)
{
	size_t n = 0;

	if (cap == 0)
		return;
	for (size_t i = 0; i < len && n + 1 < cap; i++)
		out[n++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
	out[n] = '\0';
}

int
derp_msg_parse(uint8_t type, const uint8_t *p, size_t len, struct derp_msg *m)
{
	memset(m, 0, sizeof *m);
	m->type = type;
	switch (type) {
	case DERP_FRAME_SERVER_KEY:
		if (len < DERP_MAGIC_LEN + DERP_KEY_LEN)
			return DERP_ERR_SHORT;
		if (memcmp(p, DERP_MAGIC, DERP_MAGIC_LEN) != 0)
			return DERP_ERR_FORMAT;
		m->u.server_key = p + DERP_MAGIC_LEN;
		return DERP_OK;
	case DERP_FRAME_SERVER_INFO:
		if (len < DERP_NONCE_LEN + DERP_BOX_OVERHEAD)
			return DERP_ERR_SHORT;
		m->u.server_info.p = p;
		m->u.server_info.len = len;
		return DERP_OK;
	case DERP_FRAME_RECV_PACKET:
		return derp_recv_packet_parse(p, len, &m->u.recv.src, &m->u.recv.pkt,
		    &m->u.recv.len);
	case DERP_FRAME_KEEP_ALIVE:
		return DERP_OK;
	case DERP_FRAME_PEER_GONE:
		return derp_peer_gone_parse(p, len, &m->u.peer_gone.key, &m->u.peer_gone.reason);
	case DERP_FRAME_PING:
	case DERP_FRAME_PONG:
		return derp_ping_parse(p, len, m->u.ping);
	case DERP_FRAME_HEALTH:
		m->u.health.text = p;
		m->u.health.len = len;
		return DERP_OK;
	case DERP_FRAME_RESTARTING:
		return derp_restarting_parse(p, len, &m->u.restarting.reconnect_in_ms,
		    &m->u.restarting.try_for_ms);
	default:
		/* Mesh frames, client-to-server types and whatever comes later. */
		return DERP_SKIP;
	}
}
