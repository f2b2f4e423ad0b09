/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_DERP_H
#define MESHD_DERP_H

/*
 * The DERP protocol as a client speaks it (derp_disco.md §1, §2; tailscale
 * derp/derp.go, derp/derp_client.go, derp/derphttp/derphttp_client.go):
 * the HTTP/1.1 "Upgrade: DERP" exchange, then frames of
 *
 *	type:u8 ‖ length:u32 big-endian ‖ payload[length]
 *
 * A sans-I/O codec: builders write whole frames (header included) into the
 * caller's buffer, parsers read the caller's bytes and return pointers into
 * them.  Nothing here allocates except derp_server_info_open() (the JSON
 * tokenizer, once per connection), reads a clock or touches a socket.
 * Randomness (the ClientInfo nonce) is passed in.
 *
 * Every parser takes untrusted bytes: lengths are checked before each read,
 * sizes are capped, and a frame type the client does not know is reported
 * as DERP_SKIP, never as an error (derp_disco.md §7.4).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DERP_KEY_LEN		32
#define DERP_NONCE_LEN		24
#define DERP_BOX_OVERHEAD	16	/* crypto_box_MACBYTES */
#define DERP_FRAME_HDR_LEN	5
#define DERP_MAGIC		"DERP\xf0\x9f\x94\x91"	/* "DERP🔑" */
#define DERP_MAGIC_LEN		8
#define DERP_PROTOCOL_VERSION	2

/* Largest packet in SendPacket/RecvPacket, keys not counted (derp.go MaxPacketSize). */
#define DERP_MAX_PACKET		65536
/*
 * Largest frame payload the client accepts.  Go allows 1 MiB, but nothing a
 * server sends a client is bigger than a RecvPacket (32 + 64 KiB); a bigger
 * length means the stream is broken or hostile, and the connection is dropped.
 */
#define DERP_FRAME_MAX		(DERP_MAX_PACKET + 64)
/* The ServerKey frame must come first and is small (derp_client.go recvServerKey: 1 KiB). */
#define DERP_SERVER_KEY_FRAME_MAX 1024
/* ServerInfo plaintext we are willing to decode; a bigger one is ignored. */
#define DERP_SERVER_INFO_MAX	4096
/* The HTTP response head to the upgrade. */
#define DERP_HTTP_HEAD_MAX	8192

/* What the client sends in ClientInfo (derp_client.go sendClientKey). */
#define DERP_CLIENT_INFO_JSON	"{\"version\":2,\"CanAckPings\":true}"
#define DERP_CLIENT_INFO_JSON_LEN (sizeof(DERP_CLIENT_INFO_JSON) - 1)
/* A whole ClientInfo frame: header, our key, nonce, box of the JSON. */
#define DERP_CLIENT_INFO_FRAME_LEN (DERP_FRAME_HDR_LEN + DERP_KEY_LEN + DERP_NONCE_LEN + \
	DERP_BOX_OVERHEAD + DERP_CLIENT_INFO_JSON_LEN)
/* The SendPacket header: frame header and destination key; the packet follows. */
#define DERP_SEND_HDR_LEN	(DERP_FRAME_HDR_LEN + DERP_KEY_LEN)
#define DERP_PING_FRAME_LEN	(DERP_FRAME_HDR_LEN + 8)
#define DERP_NOTE_PREFERRED_FRAME_LEN (DERP_FRAME_HDR_LEN + 1)

enum derp_frame_type {
	DERP_FRAME_SERVER_KEY = 0x01,		/* S→C magic(8) ‖ key(32) ‖ future bytes */
	DERP_FRAME_CLIENT_INFO = 0x02,		/* C→S key(32) ‖ nonce(24) ‖ box(JSON) */
	DERP_FRAME_SERVER_INFO = 0x03,		/* S→C nonce(24) ‖ box(JSON) */
	DERP_FRAME_SEND_PACKET = 0x04,		/* C→S dst(32) ‖ packet */
	DERP_FRAME_RECV_PACKET = 0x05,		/* S→C src(32) ‖ packet */
	DERP_FRAME_KEEP_ALIVE = 0x06,		/* S→C empty */
	DERP_FRAME_NOTE_PREFERRED = 0x07,	/* C→S exactly one byte, 0 or 1 */
	DERP_FRAME_PEER_GONE = 0x08,		/* S→C key(32) [‖ reason(1)] */
	DERP_FRAME_PEER_PRESENT = 0x09,		/* mesh only */
	DERP_FRAME_FORWARD_PACKET = 0x0a,	/* mesh only */
	DERP_FRAME_WATCH_CONNS = 0x10,		/* mesh only */
	DERP_FRAME_CLOSE_PEER = 0x11,		/* mesh only */
	DERP_FRAME_PING = 0x12,			/* both: 8 bytes */
	DERP_FRAME_PONG = 0x13,			/* both: the ping's 8 bytes */
	DERP_FRAME_HEALTH = 0x14,		/* S→C problem text; empty = healthy */
	DERP_FRAME_RESTARTING = 0x15,		/* S→C reconnect_in_ms(u32) ‖ try_for_ms(u32) */
};

enum derp_peer_gone_reason {
	DERP_PEER_GONE_DISCONNECTED = 0x00,
	DERP_PEER_GONE_NOT_HERE = 0x01,
};

/* Results.  Negative values are errors; derp_strerror() names them. */
enum derp_result {
	DERP_OK = 0,
	DERP_MORE = 1,			/* need more bytes */
	DERP_SKIP = 2,			/* a frame to ignore (unknown type, or ignorable content) */
	DERP_ERR_SHORT = -1,		/* shorter than its type requires */
	DERP_ERR_TOO_BIG = -2,		/* over a size cap */
	DERP_ERR_FORMAT = -3,		/* malformed (bad magic, bad JSON, bad length) */
	DERP_ERR_CRYPTO = -4,		/* a box did not open */
	DERP_ERR_HTTP = -5,		/* not an HTTP response */
	DERP_ERR_HTTP_STATUS = -6,	/* an HTTP response other than 101 */
	DERP_ERR_HTTP_EOF = -7,		/* closed before a complete response */
	DERP_ERR_BUFFER = -8,		/* the caller's output buffer is too small */
};

const char *derp_strerror(int err);

/* --- frames --- */

struct derp_frame {
	uint8_t type;
	uint32_t len;			/* payload length */
	const uint8_t *payload;		/* into the parsed buffer; NULL from derp_frame_hdr_parse */
	size_t total;			/* header + payload */
};

/*
 * Reads a frame header from buf.  DERP_MORE if fewer than 5 bytes,
 * DERP_ERR_TOO_BIG if the length is over max (the stream is then unusable),
 * else DERP_OK with f->type, f->len and f->total set.
 */
int derp_frame_hdr_parse(const uint8_t *buf, size_t len, uint32_t max, struct derp_frame *f)
	__attribute__((warn_unused_result));
/* The next whole frame in buf: as above, and DERP_MORE until the payload is all there. */
int derp_frame_next(const uint8_t *buf, size_t len, uint32_t max, struct derp_frame *f)
	__attribute__((warn_unused_result));
void derp_frame_hdr_put(uint8_t out[static DERP_FRAME_HDR_LEN], uint8_t type, uint32_t len);

/* --- the HTTP upgrade --- */

/*
 * Formats "GET /derp HTTP/1.1" with Host, Connection: Upgrade and
 * Upgrade: DERP into buf (NUL terminated).  port is the node's DERPPort:
 * it is written only when it is not 0 and not the scheme's default (443
 * with TLS, 80 without), as derphttp's urlString does; an IPv6 literal
 * host is bracketed.  Returns the length, or -1 if buf is too small or
 * host holds characters that do not belong in a header.
 */
int derp_upgrade_request(char *buf, size_t cap, const char *host, uint16_t port, bool tls);

/* Parser state of the response head; a plain struct, no allocation. */
struct derp_http {
	char head[DERP_HTTP_HEAD_MAX + 1];
	size_t len;			/* bytes of head collected */
	size_t line_start;		/* where the current line began */
	int status;			/* 0 until the status line is parsed */
	int result;			/* DERP_MORE until a verdict */
	char reason[64];		/* printable reason phrase */
	char detail[128];		/* printable start of a refusal's body */
};

void derp_http_init(struct derp_http *hp);
/*
 * Feeds response bytes.  *used is set to how many were consumed.
 *   DERP_MORE              all consumed, the head is not complete yet
 *   DERP_OK                a 101 head is complete; bytes after it (buf + *used)
 *                          are already the DERP stream
 *   DERP_ERR_HTTP_STATUS   a complete head with another status (derp_http_status)
 *   DERP_ERR_HTTP          the bytes are not an HTTP/1.x response
 *   DERP_ERR_TOO_BIG       the head is over DERP_HTTP_HEAD_MAX
 * After an error or DERP_OK, further feeds return the same result and consume nothing.
 */
int derp_http_feed(struct derp_http *hp, const uint8_t *buf, size_t len, size_t *used)
	__attribute__((warn_unused_result));
/*
 * The stream ended before a verdict: DERP_ERR_HTTP_STATUS if the status line
 * of a refusal had arrived, else DERP_ERR_HTTP_EOF (a cut 101 is no upgrade).
 */
int derp_http_eof(struct derp_http *hp) __attribute__((warn_unused_result));
int derp_http_status(const struct derp_http *hp);
/* "HTTP 426 Upgrade Required: DERP requires connection upgrade" or the like; safe to log. */
void derp_http_describe(const struct derp_http *hp, int err, char *buf, size_t len);

/* --- handshake frames --- */

/*
 * ServerKey payload: the magic and the server's key; trailing bytes are
 * allowed for future use.  DERP_ERR_SHORT under 40 bytes, DERP_ERR_FORMAT
 * on a bad magic.
 */
int derp_server_key_parse(const uint8_t *p, size_t len, uint8_t server_key[static DERP_KEY_LEN])
	__attribute__((warn_unused_result));

/*
 * A whole ClientInfo frame into out (DERP_CLIENT_INFO_FRAME_LEN bytes):
 * our public key, nonce, and crypto_box of DERP_CLIENT_INFO_JSON from our
 * private key to the server key.  Returns the length, or DERP_ERR_CRYPTO
 * if the box cannot be made (a low-order server key).
 */
int derp_client_info_build(uint8_t out[static DERP_CLIENT_INFO_FRAME_LEN],
    const uint8_t node_priv[static DERP_KEY_LEN], const uint8_t node_pub[static DERP_KEY_LEN],
    const uint8_t server_key[static DERP_KEY_LEN], const uint8_t nonce[static DERP_NONCE_LEN])
	__attribute__((warn_unused_result));

struct derp_server_info {
	int version;			/* 0 if absent */
	int64_t token_bucket_bytes_per_second;	/* 0 = unspecified */
	int64_t token_bucket_bytes_burst;
};

/*
 * Opens a ServerInfo payload (nonce ‖ box) sealed by the server to us and
 * reads the fields above; key names match case-insensitively and unknown
 * ones are ignored, as Go's encoding/json does.  DERP_SKIP (si zeroed) if
 * the plaintext would be over DERP_SERVER_INFO_MAX, DERP_ERR_SHORT,
 * DERP_ERR_CRYPTO or DERP_ERR_FORMAT (not a JSON object) otherwise.
 */
int derp_server_info_open(const uint8_t *p, size_t len, const uint8_t node_priv[static DERP_KEY_LEN],
    const uint8_t server_key[static DERP_KEY_LEN], struct derp_server_info *si)
	__attribute__((warn_unused_result));

/* --- steady-state frames (client → server) --- */

/*
 * The SendPacket header for a packet of pkt_len bytes to dst: the caller
 * writes these DERP_SEND_HDR_LEN bytes and then the packet.  Returns
 * DERP_SEND_HDR_LEN, or DERP_ERR_TOO_BIG over DERP_MAX_PACKET.
 */
int derp_send_packet_hdr(uint8_t out[static DERP_SEND_HDR_LEN], const uint8_t dst[static DERP_KEY_LEN],
    size_t pkt_len) __attribute__((warn_unused_result));
/* A Ping or Pong frame (type DERP_FRAME_PING or DERP_FRAME_PONG) with 8 bytes of data. */
void derp_ping_build(uint8_t out[static DERP_PING_FRAME_LEN], uint8_t type, const uint8_t data[static 8]);
/* NotePreferred: exactly one byte, or the server drops the connection. */
void derp_note_preferred_build(uint8_t out[static DERP_NOTE_PREFERRED_FRAME_LEN], bool preferred);

/* --- frames from the server --- */

/* One decoded server frame.  Pointers are into the parsed payload. */
struct derp_msg {
	uint8_t type;
	union {
		const uint8_t *server_key;	/* SERVER_KEY: 32 bytes */
		struct {			/* SERVER_INFO: still sealed */
			const uint8_t *p;
			size_t len;
		} server_info;
		struct {			/* RECV_PACKET */
			const uint8_t *src;	/* 32 bytes */
			const uint8_t *pkt;
			size_t len;		/* ≤ DERP_MAX_PACKET, may be 0 */
		} recv;
		struct {			/* PEER_GONE */
			const uint8_t *key;
			uint8_t reason;		/* 0 when absent */
		} peer_gone;
		uint8_t ping[8];		/* PING and PONG */
		struct {			/* HEALTH: raw text, not NUL terminated */
			const uint8_t *text;
			size_t len;
		} health;
		struct {			/* RESTARTING */
			uint32_t reconnect_in_ms;
			uint32_t try_for_ms;
		} restarting;
	} u;
};

/*
 * Decodes the payload of a frame of the given type as a client receives it.
 * DERP_OK with m filled; DERP_SKIP for types a client ignores (unknown,
 * mesh-only, client-to-server); DERP_ERR_SHORT / DERP_ERR_FORMAT /
 * DERP_ERR_TOO_BIG when the payload does not fit its type (the frame is
 * dropped; the stream itself is still in sync).  KeepAlive may carry
 * anything and is DERP_OK.
 */
int derp_msg_parse(uint8_t type, const uint8_t *p, size_t len, struct derp_msg *m)
	__attribute__((warn_unused_result));

/* Individual parsers behind derp_msg_parse, for callers that want one type. */
int derp_recv_packet_parse(const uint8_t *p, size_t len, const uint8_t **src,
    const uint8_t **pkt, size_t *pkt_len) __attribute__((warn_unused_result));
int derp_peer_gone_parse(const uint8_t *p, size_t len, const uint8_t **key, uint8_t *reason)
	__attribute__((warn_unused_result));
int derp_ping_parse(const uint8_t *p, size_t len, uint8_t data[static 8])
	__attribute__((warn_unused_result));
int derp_restarting_parse(const uint8_t *p, size_t len, uint32_t *reconnect_in_ms,
    uint32_t *try_for_ms) __attribute__((warn_unused_result));
/*
 * Copies Health text into out (NUL terminated), replacing anything but
 * printable ASCII with '?' and truncating to cap - 1 bytes: it is shown to
 * users and logged.
 */
void derp_health_text(const uint8_t *p, size_t len, char *out, size_t cap);

#endif
