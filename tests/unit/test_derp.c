// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The DERP client: the codec (derp.c) against frames and boxes built here
 * straight from derp_disco.md §2 with libsodium, and the connection
 * (derpconn.c) against a small DERP server written here on libevent over
 * 127.0.0.1: the upgrade, the handshake as the server sees it, queueing,
 * every frame type, a broken frame length and the reconnect after it,
 * failover between nodes, a refused upgrade, and a free from a callback.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <sodium.h>

#include "agent/control/netmap.h"
#include "agent/magicsock/derp.h"
#include "agent/magicsock/derpconn.h"
#include "common/util.h"

static uint8_t client_priv[32], client_pub[32], server_priv[32], server_pub[32];

static void
keys(void)
{
	assert_int_equal(sodium_init() >= 0, 1);
	crypto_box_keypair(client_pub, client_priv);
	crypto_box_keypair(server_pub, server_priv);
}

static void
frame(uint8_t *out, uint8_t type, const void *payload, uint32_t len)
{
	derp_frame_hdr_put(out, type, len);
	if (len)
		memcpy(out + DERP_FRAME_HDR_LEN, payload, len);
}

/* ---- frame headers ------------------------------------------------------- */

static void
test_frame_header(void **state)
{
	uint8_t buf[64], stream[128];
	struct derp_frame f;
	size_t off = 0;
	int n = 0;

	derp_frame_hdr_put(buf, DERP_FRAME_RECV_PACKET, 0x01020304);
	assert_int_equal(buf[0], 0x05);
	assert_int_equal(buf[1], 0x01);
	assert_int_equal(buf[4], 0x04);
	assert_int_equal(derp_frame_hdr_parse(buf, 5, UINT32_MAX, &f), DERP_OK);
	assert_int_equal(f.type, 0x05);
	assert_int_equal(f.len, 0x01020304);
	assert_int_equal(f.total, 0x01020309);
	/* Truncated headers need more; an oversized length is fatal for the stream. */
	for (size_t i = 0; i < DERP_FRAME_HDR_LEN; i++)
		assert_int_equal(derp_frame_hdr_parse(buf, i, UINT32_MAX, &f), DERP_MORE);
	assert_int_equal(derp_frame_hdr_parse(buf, 5, DERP_FRAME_MAX, &f), DERP_ERR_TOO_BIG);
	derp_frame_hdr_put(buf, 0x06, DERP_FRAME_MAX);
	assert_int_equal(derp_frame_hdr_parse(buf, 5, DERP_FRAME_MAX, &f), DERP_OK);
	derp_frame_hdr_put(buf, 0x06, DERP_FRAME_MAX + 1);
	assert_int_equal(derp_frame_hdr_parse(buf, 5, DERP_FRAME_MAX, &f), DERP_ERR_TOO_BIG);

	/* A stream of three frames, read back in order; every prefix is "more". */
	frame(stream, DERP_FRAME_KEEP_ALIVE, NULL, 0);
	frame(stream + 5, DERP_FRAME_PING, "12345678", 8);
	frame(stream + 18, 0x7f, "xyz", 3);
	for (size_t cut = 0; cut < 5; cut++)
		assert_int_equal(derp_frame_next(stream, cut, DERP_FRAME_MAX, &f), DERP_MORE);
	for (size_t cut = 5; cut < 13; cut++)
		assert_int_equal(derp_frame_next(stream + 5, cut, DERP_FRAME_MAX, &f), DERP_MORE);
	while (off < 26) {
		assert_int_equal(derp_frame_next(stream + off, 26 - off, DERP_FRAME_MAX, &f), DERP_OK);
		assert_ptr_equal(f.payload, stream + off + 5);
		off += f.total;
		n++;
	}
	assert_int_equal(n, 3);
	assert_int_equal(f.type, 0x7f);
	assert_memory_equal(f.payload, "xyz", 3);
}

/* ---- the upgrade ---------------------------------------------------------- */

static void
test_upgrade_request(void **state)
{
	char buf[512];
	int n;

	n = derp_upgrade_request(buf, sizeof buf, "10.0.0.2", 3340, false);
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(buf));
	assert_true(strncmp(buf, "GET /derp HTTP/1.1\r\n", 20) == 0);
	assert_non_null(strstr(buf, "\r\nHost: 10.0.0.2:3340\r\n"));
	assert_non_null(strstr(buf, "\r\nConnection: Upgrade\r\n"));
	assert_non_null(strstr(buf, "\r\nUpgrade: DERP\r\n"));
	assert_string_equal(buf + n - 4, "\r\n\r\n");
	assert_null(strstr(buf, "Derp-Fast-Start"));

	/* The port only when it is not the scheme's default (urlString). */
	assert_true(derp_upgrade_request(buf, sizeof buf, "derp.example.com", 443, true) > 0);
	assert_non_null(strstr(buf, "\r\nHost: derp.example.com\r\n"));
	assert_true(derp_upgrade_request(buf, sizeof buf, "derp.example.com", 0, true) > 0);
	assert_non_null(strstr(buf, "\r\nHost: derp.example.com\r\n"));
	assert_true(derp_upgrade_request(buf, sizeof buf, "derp.example.com", 8443, true) > 0);
	assert_non_null(strstr(buf, "\r\nHost: derp.example.com:8443\r\n"));
	assert_true(derp_upgrade_request(buf, sizeof buf, "h", 80, false) > 0);
	assert_non_null(strstr(buf, "\r\nHost: h\r\n"));
	assert_true(derp_upgrade_request(buf, sizeof buf, "h", 443, false) > 0);
	assert_non_null(strstr(buf, "\r\nHost: h:443\r\n"));
	assert_true(derp_upgrade_request(buf, sizeof buf, "h", 0, false) > 0);
	assert_non_null(strstr(buf, "\r\nHost: h\r\n"));
	assert_true(derp_upgrade_request(buf, sizeof buf, "fd00::2", 3340, false) > 0);
	assert_non_null(strstr(buf, "\r\nHost: [fd00::2]:3340\r\n"));

	/* No header injection, no overflow. */
	assert_int_equal(derp_upgrade_request(buf, sizeof buf, "h\r\nX: y", 0, true), -1);
	assert_int_equal(derp_upgrade_request(buf, sizeof buf, "", 0, true), -1);
	assert_int_equal(derp_upgrade_request(buf, 40, "h", 0, true), -1);
}

static const char resp_101[] =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n"
    "Derp-Version: 2\r\nDerp-Public-Key: nodekey:00\r\n\r\n";

static void
test_http_101(void **state)
{
	static struct derp_http hpbuf;
	struct derp_http *hp = &hpbuf;
	uint8_t buf[256];
	size_t len = strlen(resp_101), used, total = 0;
	int r = DERP_MORE;

	/* In one piece, with the first frame behind it. */
	memcpy(buf, resp_101, len);
	frame(buf + len, DERP_FRAME_SERVER_KEY, DERP_MAGIC, 8);
	derp_http_init(hp);
	assert_int_equal(derp_http_feed(hp, buf, len + 13, &used), DERP_OK);
	assert_int_equal(used, len);
	assert_int_equal(derp_http_status(hp), 101);
	/* The verdict sticks and nothing more is consumed. */
	assert_int_equal(derp_http_feed(hp, buf, 5, &used), DERP_OK);
	assert_int_equal(used, 0);

	/* Byte by byte: "more" until the very last byte of the head. */
	derp_http_init(hp);
	for (size_t i = 0; i < len + 13 && r == DERP_MORE; i++) {
		r = derp_http_feed(hp, buf + i, 1, &used);
		total += used;
		if (i < len - 1)
			assert_int_equal(r, DERP_MORE);
	}
	assert_int_equal(r, DERP_OK);
	assert_int_equal(total, len);

	/* Bare LF line ends, as Go's reader accepts. */
	derp_http_init(hp);
	assert_int_equal(derp_http_feed(hp, (const uint8_t *)"HTTP/1.1 101 X\nA: b\n\nrest", 25,
	    &used), DERP_OK);
	assert_int_equal(used, 21);
}

static void
test_http_refused(void **state)
{
	static const char r426[] =
	    "HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain\r\nContent-Length: 32\r\n\r\n"
	    "DERP requires connection upgrade";
	static struct derp_http hpbuf;
	struct derp_http *hp = &hpbuf;
	char why[256];
	size_t used, total = 0;
	int r = DERP_MORE;

	derp_http_init(hp);
	assert_int_equal(derp_http_feed(hp, (const uint8_t *)r426, strlen(r426), &used),
	    DERP_ERR_HTTP_STATUS);
	assert_int_equal(derp_http_status(hp), 426);
	assert_int_equal(used, strlen(r426) - 32);
	derp_http_describe(hp, DERP_ERR_HTTP_STATUS, why, sizeof why);
	assert_string_equal(why, "HTTP 426 Upgrade Required: DERP requires connection upgrade");

	/* Split byte by byte the verdict comes at the end of the head. */
	derp_http_init(hp);
	for (size_t i = 0; i < strlen(r426) && r == DERP_MORE; i++) {
		r = derp_http_feed(hp, (const uint8_t *)r426 + i, 1, &used);
		total += used;
	}
	assert_int_equal(r, DERP_ERR_HTTP_STATUS);
	assert_int_equal(total, strlen(r426) - 32);
	assert_int_equal(derp_http_status(hp), 426);

	/* A 200 is not an upgrade either. */
	derp_http_init(hp);
	assert_int_equal(derp_http_feed(hp, (const uint8_t *)"HTTP/1.0 200 OK\r\n\r\n", 19, &used),
	    DERP_ERR_HTTP_STATUS);
	assert_int_equal(derp_http_status(hp), 200);

	/* EOF: before anything, inside a refusal's head, inside a 101's head. */
	derp_http_init(hp);
	assert_int_equal(derp_http_eof(hp), DERP_ERR_HTTP_EOF);
	derp_http_init(hp);
	assert_int_equal(derp_http_feed(hp, (const uint8_t *)"HTTP/1.1 502 Bad Gateway\r\nA:", 28,
	    &used), DERP_MORE);
	assert_int_equal(derp_http_eof(hp), DERP_ERR_HTTP_STATUS);
	assert_int_equal(derp_http_status(hp), 502);
	derp_http_init(hp);
	assert_int_equal(derp_http_feed(hp, (const uint8_t *)resp_101, 40, &used), DERP_MORE);
	assert_int_equal(derp_http_eof(hp), DERP_ERR_HTTP_EOF);
}

static void
test_http_garbage(void **state)
{
	static struct derp_http hpbuf;
	static uint8_t big[DERP_HTTP_HEAD_MAX + 100];
	struct derp_http *hp = &hpbuf;
	static const uint8_t tls_alert[] = { 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46 };
	char why[256];
	size_t used, off;
	int r;

	/* Not HTTP: known after the first wrong byte, not after 8 KiB. */
	derp_http_init(hp);
	assert_int_equal(derp_http_feed(hp, tls_alert, sizeof tls_alert, &used), DERP_ERR_HTTP);
	assert_int_equal(used, 1);
	derp_http_describe(hp, DERP_ERR_HTTP, why, sizeof why);
	assert_non_null(strstr(why, "15 03 03 00"));
	assert_non_null(strstr(why, "speaks TLS"));
	derp_http_init(hp);
	assert_int_equal(derp_http_feed(hp, (const uint8_t *)"HTTX", 4, &used), DERP_ERR_HTTP);
	derp_http_init(hp);
	assert_int_equal(derp_http_feed(hp, (const uint8_t *)"HTTP/1.1 abc\r\n", 14, &used),
	    DERP_ERR_HTTP);
	derp_http_init(hp);
	assert_int_equal(derp_http_feed(hp, (const uint8_t *)"HTTP/1.1 1011\r\n", 15, &used),
	    DERP_ERR_HTTP);
	derp_http_init(hp);
	assert_int_equal(derp_http_feed(hp, (const uint8_t *)"HTTP/1.1 099 x\r\n", 16, &used),
	    DERP_ERR_HTTP);

	/* An endless head stops at the cap, whole or in pieces. */
	memcpy(big, "HTTP/1.1 101 OK\r\n", 17);
	memset(big + 17, 'a', DERP_HTTP_HEAD_MAX + 100 - 17);
	derp_http_init(hp);
	assert_int_equal(derp_http_feed(hp, big, DERP_HTTP_HEAD_MAX + 100, &used), DERP_ERR_TOO_BIG);
	assert_int_equal(used, DERP_HTTP_HEAD_MAX);
	derp_http_init(hp);
	for (off = 0, r = DERP_MORE; r == DERP_MORE && off < DERP_HTTP_HEAD_MAX + 100; off += used)
		r = derp_http_feed(hp, big + off, MIN((size_t)1000, DERP_HTTP_HEAD_MAX + 100 - off),
		    &used);
	assert_int_equal(r, DERP_ERR_TOO_BIG);
	/* Exactly at the cap is still fine. */
	memcpy(big + DERP_HTTP_HEAD_MAX - 4, "\r\n\r\n", 4);
	derp_http_init(hp);
	assert_int_equal(derp_http_feed(hp, big, DERP_HTTP_HEAD_MAX, &used), DERP_OK);
}

/* ---- handshake frames ---------------------------------------------------- */

static void
test_server_key(void **state)
{
	uint8_t p[64], key[32];

	memcpy(p, DERP_MAGIC, 8);
	memcpy(p + 8, server_pub, 32);
	memset(p + 40, 0xee, 24);
	assert_int_equal(derp_server_key_parse(p, 40, key), DERP_OK);
	assert_memory_equal(key, server_pub, 32);
	/* Future bytes are ignored. */
	memset(key, 0, 32);
	assert_int_equal(derp_server_key_parse(p, 64, key), DERP_OK);
	assert_memory_equal(key, server_pub, 32);
	assert_int_equal(derp_server_key_parse(p, 39, key), DERP_ERR_SHORT);
	assert_int_equal(derp_server_key_parse(p, 0, key), DERP_ERR_SHORT);
	p[7] ^= 1;
	assert_int_equal(derp_server_key_parse(p, 40, key), DERP_ERR_FORMAT);
}

static void
test_client_info(void **state)
{
	uint8_t out[DERP_CLIENT_INFO_FRAME_LEN], nonce[24], plain[128];
	const uint8_t *p = out + DERP_FRAME_HDR_LEN;
	struct derp_frame f;
	uint8_t low_order[32] = { 0 };

	randombytes_buf(nonce, sizeof nonce);
	assert_int_equal(derp_client_info_build(out, client_priv, client_pub, server_pub, nonce),
	    DERP_CLIENT_INFO_FRAME_LEN);
	assert_int_equal(derp_frame_next(out, sizeof out, DERP_FRAME_MAX, &f), DERP_OK);
	assert_int_equal(f.type, DERP_FRAME_CLIENT_INFO);
	assert_int_equal(f.total, sizeof out);
	assert_memory_equal(p, client_pub, 32);
	assert_memory_equal(p + 32, nonce, 24);
	/* The server opens it with its private key and the key in the frame. */
	assert_int_equal(crypto_box_open_easy(plain, p + 56, f.len - 56, nonce, p, server_priv), 0);
	assert_int_equal(f.len - 56 - crypto_box_MACBYTES, strlen(DERP_CLIENT_INFO_JSON));
	assert_memory_equal(plain, "{\"version\":2,\"CanAckPings\":true}", 32);
	/* Nobody else can. */
	assert_int_not_equal(crypto_box_open_easy(plain, p + 56, f.len - 56, nonce, p, client_priv), 0);
	/* A degenerate server key is refused, not sealed to. */
	assert_int_equal(derp_client_info_build(out, client_priv, client_pub, low_order, nonce),
	    DERP_ERR_CRYPTO);
}

/* nonce ‖ box(json) from the server to the client, as derpserver sends ServerInfo. */
static size_t
seal_server_info(uint8_t *out, const char *json, size_t len)
{
	randombytes_buf(out, 24);
	assert_int_equal(crypto_box_easy(out + 24, (const uint8_t *)json, len, out, client_pub,
	    server_priv), 0);
	return 24 + crypto_box_MACBYTES + len;
}

static void
test_server_info(void **state)
{
	static uint8_t box[8192];
	static char big[DERP_SERVER_INFO_MAX + 2];
	struct derp_server_info si;
	size_t n;
	const char *j;

	j = "{\"version\":2}";
	n = seal_server_info(box, j, strlen(j));
	assert_int_equal(derp_server_info_open(box, n, client_priv, server_pub, &si), DERP_OK);
	assert_int_equal(si.version, 2);
	assert_int_equal(si.token_bucket_bytes_per_second, 0);

	/* Keys match case-insensitively; unknown ones and odd types are ignored. */
	j = "{\"Version\":2,\"TokenBucketBytesPerSecond\":1000,\"tokenbucketbytesburst\":5000,"
	    "\"future\":{\"a\":[1,2,null]},\"version_x\":\"s\"}  \n";
	n = seal_server_info(box, j, strlen(j));
	assert_int_equal(derp_server_info_open(box, n, client_priv, server_pub, &si), DERP_OK);
	assert_int_equal(si.version, 2);
	assert_int_equal(si.token_bucket_bytes_per_second, 1000);
	assert_int_equal(si.token_bucket_bytes_burst, 5000);
	j = "{\"version\":\"2\"}";
	n = seal_server_info(box, j, strlen(j));
	assert_int_equal(derp_server_info_open(box, n, client_priv, server_pub, &si), DERP_OK);
	assert_int_equal(si.version, 0);

	/* Not a JSON object, or trailing bytes. */
	j = "[2]";
	n = seal_server_info(box, j, strlen(j));
	assert_int_equal(derp_server_info_open(box, n, client_priv, server_pub, &si), DERP_ERR_FORMAT);
	j = "{\"version\":2}x";
	n = seal_server_info(box, j, strlen(j));
	assert_int_equal(derp_server_info_open(box, n, client_priv, server_pub, &si), DERP_ERR_FORMAT);
	j = "{\"version\":";
	n = seal_server_info(box, j, strlen(j));
	assert_int_equal(derp_server_info_open(box, n, client_priv, server_pub, &si), DERP_ERR_FORMAT);
	n = seal_server_info(box, "", 0);
	assert_int_equal(derp_server_info_open(box, n, client_priv, server_pub, &si), DERP_ERR_FORMAT);

	/* Tampered, from someone else, or too short to hold a box. */
	j = "{\"version\":2}";
	n = seal_server_info(box, j, strlen(j));
	box[n - 1] ^= 1;
	assert_int_equal(derp_server_info_open(box, n, client_priv, server_pub, &si), DERP_ERR_CRYPTO);
	box[n - 1] ^= 1;
	assert_int_equal(derp_server_info_open(box, n, client_priv, client_pub, &si), DERP_ERR_CRYPTO);
	assert_int_equal(derp_server_info_open(box, 39, client_priv, server_pub, &si), DERP_ERR_SHORT);
	assert_int_equal(derp_server_info_open(box, 40, client_priv, server_pub, &si), DERP_ERR_CRYPTO);

	/* Bigger than we care to decode: ignored, not an error. */
	memset(big, ' ', sizeof big - 1);
	big[0] = '{';
	big[sizeof big - 2] = '}';
	n = seal_server_info(box, big, DERP_SERVER_INFO_MAX + 1);
	si.version = 7;
	assert_int_equal(derp_server_info_open(box, n, client_priv, server_pub, &si), DERP_SKIP);
	assert_int_equal(si.version, 0);
	/* Exactly at the limit is decoded. */
	big[1] = '{';
	n = seal_server_info(box, big + 1, DERP_SERVER_INFO_MAX);
	assert_int_equal(derp_server_info_open(box, n, client_priv, server_pub, &si), DERP_OK);
}

/* ---- steady-state frames ------------------------------------------------- */

static void
test_send_frames(void **state)
{
	uint8_t hdr[DERP_SEND_HDR_LEN], dst[32], ping[DERP_PING_FRAME_LEN], np[6];
	struct derp_frame f;

	memset(dst, 0x42, 32);
	assert_int_equal(derp_send_packet_hdr(hdr, dst, 100), DERP_SEND_HDR_LEN);
	assert_int_equal(derp_frame_hdr_parse(hdr, sizeof hdr, DERP_FRAME_MAX, &f), DERP_OK);
	assert_int_equal(f.type, DERP_FRAME_SEND_PACKET);
	assert_int_equal(f.len, 132);
	assert_memory_equal(hdr + 5, dst, 32);
	assert_int_equal(derp_send_packet_hdr(hdr, dst, DERP_MAX_PACKET), DERP_SEND_HDR_LEN);
	assert_int_equal(get_be32(hdr + 1), 32 + DERP_MAX_PACKET);
	assert_int_equal(derp_send_packet_hdr(hdr, dst, DERP_MAX_PACKET + 1), DERP_ERR_TOO_BIG);

	derp_ping_build(ping, DERP_FRAME_PONG, (const uint8_t *)"abcdefgh");
	assert_memory_equal(ping, "\x13\x00\x00\x00\x08" "abcdefgh", 13);
	derp_note_preferred_build(np, true);
	assert_memory_equal(np, "\x07\x00\x00\x00\x01\x01", 6);
	derp_note_preferred_build(np, false);
	assert_memory_equal(np, "\x07\x00\x00\x00\x01\x00", 6);
}

static void
test_recv_frames(void **state)
{
	static uint8_t p[32 + DERP_MAX_PACKET + 2];
	const uint8_t *src, *pkt, *key;
	struct derp_msg m;
	uint8_t reason, data[8];
	uint32_t a, b;
	size_t len;
	char text[8];

	for (size_t i = 0; i < sizeof p; i++)
		p[i] = (uint8_t)i;
	/* RecvPacket: key, then 0..65536 bytes. */
	assert_int_equal(derp_recv_packet_parse(p, 31, &src, &pkt, &len), DERP_ERR_SHORT);
	assert_int_equal(derp_recv_packet_parse(p, 32, &src, &pkt, &len), DERP_OK);
	assert_int_equal(len, 0);
	assert_int_equal(derp_recv_packet_parse(p, 32 + DERP_MAX_PACKET, &src, &pkt, &len), DERP_OK);
	assert_ptr_equal(src, p);
	assert_ptr_equal(pkt, p + 32);
	assert_int_equal(len, DERP_MAX_PACKET);
	assert_int_equal(derp_recv_packet_parse(p, 33 + DERP_MAX_PACKET, &src, &pkt, &len),
	    DERP_ERR_TOO_BIG);
	assert_int_equal(derp_msg_parse(DERP_FRAME_RECV_PACKET, p, 40, &m), DERP_OK);
	assert_ptr_equal(m.u.recv.src, p);
	assert_int_equal(m.u.recv.len, 8);

	/* PeerGone: key, optional reason. */
	assert_int_equal(derp_peer_gone_parse(p, 31, &key, &reason), DERP_ERR_SHORT);
	assert_int_equal(derp_peer_gone_parse(p, 32, &key, &reason), DERP_OK);
	assert_int_equal(reason, DERP_PEER_GONE_DISCONNECTED);
	assert_int_equal(derp_peer_gone_parse(p, 34, &key, &reason), DERP_OK);
	assert_int_equal(reason, p[32]);
	assert_int_equal(derp_msg_parse(DERP_FRAME_PEER_GONE, p, 33, &m), DERP_OK);
	assert_int_equal(m.u.peer_gone.reason, 32);

	/* Ping/Pong: 8 bytes; a longer one is read as its first 8. */
	assert_int_equal(derp_ping_parse(p, 7, data), DERP_ERR_SHORT);
	assert_int_equal(derp_ping_parse(p + 1, 8, data), DERP_OK);
	assert_memory_equal(data, p + 1, 8);
	assert_int_equal(derp_msg_parse(DERP_FRAME_PING, p, 0, &m), DERP_ERR_SHORT);
	assert_int_equal(derp_msg_parse(DERP_FRAME_PONG, p, 20, &m), DERP_OK);
	assert_memory_equal(m.u.ping, p, 8);

	/* Restarting: two u32 in milliseconds. */
	assert_int_equal(derp_restarting_parse((const uint8_t *)"\0\0\x03\xe8\0\0\x27\x10", 8, &a, &b),
	    DERP_OK);
	assert_int_equal(a, 1000);
	assert_int_equal(b, 10000);
	assert_int_equal(derp_msg_parse(DERP_FRAME_RESTARTING, p, 7, &m), DERP_ERR_SHORT);

	/* Health text is made printable and bounded. */
	derp_health_text((const uint8_t *)"dup\nclient\x80", 11, text, sizeof text);
	assert_string_equal(text, "dup?cli");
	assert_int_equal(derp_msg_parse(DERP_FRAME_HEALTH, p, 0, &m), DERP_OK);
	assert_int_equal(m.u.health.len, 0);

	/* ServerKey and ServerInfo through the dispatcher. */
	memcpy(p, DERP_MAGIC, 8);
	assert_int_equal(derp_msg_parse(DERP_FRAME_SERVER_KEY, p, 40, &m), DERP_OK);
	assert_ptr_equal(m.u.server_key, p + 8);
	assert_int_equal(derp_msg_parse(DERP_FRAME_SERVER_KEY, p, 39, &m), DERP_ERR_SHORT);
	assert_int_equal(derp_msg_parse(DERP_FRAME_SERVER_INFO, p, 39, &m), DERP_ERR_SHORT);
	assert_int_equal(derp_msg_parse(DERP_FRAME_SERVER_INFO, p, 40, &m), DERP_OK);

	/* KeepAlive takes anything; unknown, mesh and client-bound types are skipped. */
	assert_int_equal(derp_msg_parse(DERP_FRAME_KEEP_ALIVE, p, 3, &m), DERP_OK);
	assert_int_equal(derp_msg_parse(0x00, p, 3, &m), DERP_SKIP);
	assert_int_equal(derp_msg_parse(0xff, p, 0, &m), DERP_SKIP);
	assert_int_equal(derp_msg_parse(DERP_FRAME_PEER_PRESENT, p, 41, &m), DERP_SKIP);
	assert_int_equal(derp_msg_parse(DERP_FRAME_SEND_PACKET, p, 41, &m), DERP_SKIP);
	assert_int_equal(derp_msg_parse(DERP_FRAME_CLIENT_INFO, p, 41, &m), DERP_SKIP);
	assert_string_not_equal(derp_strerror(DERP_ERR_SHORT), derp_strerror(DERP_ERR_TOO_BIG));
}

/* ---- a DERP server for the connection tests ------------------------------ */

enum srv_mode {
	SRV_DERP,		/* a DERP server */
	SRV_REFUSE,		/* answers 426 */
};

struct srv;

struct sconn {
	struct srv *s;
	struct bufferevent *bev;
	int phase;		/* 0 HTTP request, 1 ClientInfo, 2 frames */
};

struct srv {
	struct event_base *base;
	struct evconnlistener *lis;
	uint16_t port;
	enum srv_mode mode;
	int accepts;
	struct sconn *conns[8];
	int nconns;
	char request[1024];	/* the last upgrade request */
	bool client_info_ok;
	int client_infos;
	/* What the client sent. */
	int packets;
	char payloads[64][16];
	uint8_t last_dst[32];
	int pongs;
	uint8_t pong[8];
	int prefs;
	int last_pref;
	bool order_before_info;	/* a frame came before ClientInfo */
	void (*on_client_info)(struct srv *s, struct sconn *sc);
};

static void
sconn_free(struct sconn *sc)
{
	struct srv *s = sc->s;

	for (int i = 0; i < s->nconns; i++)
		if (s->conns[i] == sc)
			s->conns[i] = s->conns[--s->nconns];
	bufferevent_free(sc->bev);
	free(sc);
}

static void
s_send(struct sconn *sc, uint8_t type, const void *p, uint32_t len)
{
	uint8_t hdr[5];

	derp_frame_hdr_put(hdr, type, len);
	bufferevent_write(sc->bev, hdr, 5);
	if (len)
		bufferevent_write(sc->bev, p, len);
}

static void
s_read(struct bufferevent *bev, void *arg)
{
	struct sconn *sc = arg;
	struct srv *s = sc->s;
	struct evbuffer *in = bufferevent_get_input(bev);
	static uint8_t buf[70000];

	if (sc->phase == 0) {
		struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		size_t n;

		if (p.pos < 0)
			return;
		n = MIN((size_t)p.pos + 4, sizeof s->request - 1);
		evbuffer_remove(in, s->request, n);
		s->request[n] = '\0';
		if (s->mode == SRV_REFUSE) {
			static const char r[] = "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 32\r\n\r\n"
			    "DERP requires connection upgrade";

			bufferevent_write(bev, r, sizeof r - 1);
			sc->phase = 3;
			return;
		}
		static const char ok[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\n"
		    "Connection: Upgrade\r\nDerp-Version: 2\r\n\r\n";
		bufferevent_write(bev, ok, sizeof ok - 1);
		memcpy(buf, DERP_MAGIC, 8);
		memcpy(buf + 8, server_pub, 32);
		memcpy(buf + 40, "future", 6);
		s_send(sc, DERP_FRAME_SERVER_KEY, buf, 46);
		sc->phase = 1;
	}
	while (sc->phase == 1 || sc->phase == 2) {
		uint8_t hdr[5], plain[128];
		size_t avail = evbuffer_get_length(in);
		uint32_t len;

		if (avail < 5)
			return;
		evbuffer_copyout(in, hdr, 5);
		len = get_be32(hdr + 1);
		assert_true(len <= sizeof buf);
		if (avail < 5 + (size_t)len)
			return;
		evbuffer_drain(in, 5);
		evbuffer_remove(in, buf, len);
		if (sc->phase == 1) {
			/* ClientInfo first, opened the way derpserver does it. */
			if (hdr[0] != DERP_FRAME_CLIENT_INFO) {
				s->order_before_info = true;
				continue;
			}
			s->client_infos++;
			s->client_info_ok = len > 56 + 16 && len - 56 - 16 < sizeof plain &&
			    memcmp(buf, client_pub, 32) == 0 &&
			    crypto_box_open_easy(plain, buf + 56, len - 56, buf + 32, buf,
			    server_priv) == 0 &&
			    memcmp(plain, DERP_CLIENT_INFO_JSON, DERP_CLIENT_INFO_JSON_LEN) == 0;
			sc->phase = 2;
			if (s->on_client_info)
				s->on_client_info(s, sc);
			continue;
		}
		switch (hdr[0]) {
		case DERP_FRAME_SEND_PACKET:
			assert_true(len >= 32 && len - 32 < 16);
			memcpy(s->last_dst, buf, 32);
			if (s->packets < 64) {
				memcpy(s->payloads[s->packets], buf + 32, len - 32);
				s->payloads[s->packets][len - 32] = '\0';
			}
			s->packets++;
			break;
		case DERP_FRAME_PONG:
			assert_int_equal(len, 8);
			memcpy(s->pong, buf, 8);
			s->pongs++;
			break;
		case DERP_FRAME_NOTE_PREFERRED:
			assert_int_equal(len, 1);
			s->last_pref = buf[0];
			s->prefs++;
			break;
		default:
			fail_msg("unexpected frame type 0x%02x from the client", hdr[0]);
		}
	}
}

static void
s_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		sconn_free(arg);
}

static void
s_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct srv *s = arg;
	struct sconn *sc = calloc(1, sizeof *sc);

	assert_non_null(sc);
	assert_true(s->nconns < 8);
	sc->s = s;
	sc->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(sc->bev, s_read, NULL, s_event, sc);
	bufferevent_enable(sc->bev, EV_READ | EV_WRITE);
	s->conns[s->nconns++] = sc;
	s->accepts++;
}

static void
srv_start(struct srv *s, struct event_base *base, enum srv_mode mode)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof sin;

	memset(s, 0, sizeof *s);
	s->base = base;
	s->mode = mode;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->lis = evconnlistener_new_bind(base, s_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
	    16, (struct sockaddr *)&sin, sizeof sin);
	assert_non_null(s->lis);
	assert_int_equal(getsockname(evconnlistener_get_fd(s->lis), (struct sockaddr *)&sin, &len), 0);
	s->port = ntohs(sin.sin_port);
}

static void
srv_stop(struct srv *s)
{
	while (s->nconns > 0)
		sconn_free(s->conns[0]);
	evconnlistener_free(s->lis);
}

/* A port on 127.0.0.1 with nothing listening: connecting there is refused at once. */
static uint16_t
closed_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

/* ---- the client side ------------------------------------------------------ */

struct cli {
	struct derpconn *conn;
	int ups, downs;
	int recvs;
	char last_pkt[64];
	uint8_t last_src[32];
	int gones;
	uint8_t gone_key[32];
	uint8_t gone_reason;
	bool free_on_recv;	/* free the connection from inside ops->recv */
};

static void
c_recv(void *ctx, struct derpconn *c, const uint8_t src[32], const uint8_t *pkt, size_t len)
{
	struct cli *cl = ctx;

	assert_ptr_equal(c, cl->conn);
	cl->recvs++;
	memcpy(cl->last_src, src, 32);
	snprintf(cl->last_pkt, sizeof cl->last_pkt, "%.*s", (int)len, (const char *)pkt);
	if (cl->free_on_recv) {
		derpconn_free(c);
		cl->conn = NULL;
		/* The packet stays readable until we return. */
		assert_int_equal(pkt[0], 'b');
	}
}

static void
c_gone(void *ctx, struct derpconn *c, const uint8_t key[32], uint8_t reason)
{
	struct cli *cl = ctx;

	cl->gones++;
	memcpy(cl->gone_key, key, 32);
	cl->gone_reason = reason;
}

static void
c_state(void *ctx, struct derpconn *c, bool up)
{
	struct cli *cl = ctx;

	if (up)
		cl->ups++;
	else
		cl->downs++;
	assert_int_equal(derpconn_is_up(c), up);
}

static const struct derpconn_ops cli_ops = { c_recv, c_gone, c_state };

/* Runs the loop until cond(arg) holds; fails after 10 s. */
static void
run_until(struct event_base *base, bool (*cond)(void *), void *arg)
{
	struct timeval tv = { 0, 5000 };

	for (int i = 0; i < 2000; i++) {
		if (cond(arg))
			return;
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	fail_msg("condition not reached within 10 s");
}

static struct netmap_derp_node nodes[4];
static struct netmap_derp_region region;

static void
one_node_region(uint16_t port)
{
	memset(nodes, 0, sizeof nodes);
	nodes[0] = (struct netmap_derp_node){ .name = "1", .hostname = "127.0.0.1", .cert_name = "",
	    .ipv4 = "", .ipv6 = "", .region_id = 901, .derp_port = port };
	region = (struct netmap_derp_region){ .region_id = 901, .code = "test", .name = "Test",
	    .n_nodes = 1, .nodes = nodes };
}

static struct derpconn *
client_new(struct event_base *base, struct cli *cl)
{
	struct derpconn_cfg cfg = { .region = &region, .node_priv = client_priv,
	    .node_pub = client_pub, .fwmark = 0x80000, .plain_http = true };
	char *cause = NULL;
	struct derpconn *c = derpconn_new(base, NULL, &cfg, &cli_ops, cl, &cause);

	assert_null(cause);
	assert_non_null(c);
	cl->conn = c;
	return c;
}

/* The scripted server's first words after ClientInfo. */
static void
greet(struct srv *s, struct sconn *sc)
{
	uint8_t info[128], pkt[37], key[40], gone[33];
	const char *j = "{\"version\":2,\"Unknown\":[1,2]}";
	size_t n;

	n = seal_server_info(info, j, strlen(j));
	s_send(sc, DERP_FRAME_SERVER_INFO, info, (uint32_t)n);
	s_send(sc, DERP_FRAME_KEEP_ALIVE, NULL, 0);
	s_send(sc, DERP_FRAME_PING, "pingpong", 8);
	memset(pkt, 0x11, 32);
	memcpy(pkt + 32, "hello", 5);
	s_send(sc, DERP_FRAME_RECV_PACKET, pkt, sizeof pkt);
	/* Malformed (short) and unknown frames: dropped, the stream goes on. */
	s_send(sc, DERP_FRAME_RECV_PACKET, pkt, 10);
	s_send(sc, 0x7f, "xyz", 3);
	/* A late ServerKey is ignored. */
	memcpy(key, DERP_MAGIC, 8);
	memset(key + 8, 0x99, 32);
	s_send(sc, DERP_FRAME_SERVER_KEY, key, sizeof key);
	s_send(sc, DERP_FRAME_HEALTH, "duplicate client", 16);
	memset(gone, 0x11, 32);
	gone[32] = DERP_PEER_GONE_NOT_HERE;
	s_send(sc, DERP_FRAME_PEER_GONE, gone, sizeof gone);
}

struct basic {
	struct srv *s;
	struct cli *cl;
	int step;
};

static bool
basic_greeted(void *arg)
{
	struct basic *b = arg;

	return b->cl->gones == 1 && b->s->packets == 32 && b->s->pongs == 1 && b->s->prefs == 1;
}

static bool
basic_reconnected(void *arg)
{
	struct basic *b = arg;

	return b->cl->ups == 2 && b->s->prefs == 2 && b->cl->gones == 2;
}

static bool
basic_live_packet(void *arg)
{
	struct basic *b = arg;

	return b->s->packets == 33;
}

static bool
basic_freed(void *arg)
{
	return ((struct basic *)arg)->cl->conn == NULL;
}

static void
test_conn_basic(void **state)
{
	struct event_base *base = event_base_new();
	struct srv s;
	struct cli cl = { 0 };
	struct basic b = { &s, &cl, 0 };
	struct derpconn_stats st;
	uint8_t dst[32], k11[32];
	char pkt[16];

	srv_start(&s, base, SRV_DERP);
	s.on_client_info = greet;
	one_node_region(s.port);
	client_new(base, &cl);
	assert_int_equal(derpconn_region_id(cl.conn), 901);
	assert_false(derpconn_is_up(cl.conn));

	/* 40 packets before the connection: the 8 oldest make way, the rest wait. */
	memset(dst, 0x22, sizeof dst);
	for (int i = 1; i <= 40; i++) {
		int n = snprintf(pkt, sizeof pkt, "q%d", i);

		assert_int_equal(derpconn_send(cl.conn, dst, (const uint8_t *)pkt, (size_t)n), 0);
	}
	assert_int_equal(derpconn_send(cl.conn, dst, (const uint8_t *)pkt, DERP_MAX_PACKET + 1),
	    -EMSGSIZE);
	assert_true(derpconn_queued_bytes(cl.conn) > 0);
	derpconn_note_preferred(cl.conn, true);

	run_until(base, basic_greeted, &b);
	assert_true(s.client_info_ok);
	assert_false(s.order_before_info);
	assert_non_null(strstr(s.request, "GET /derp HTTP/1.1\r\n"));
	{
		char host[64];

		snprintf(host, sizeof host, "\r\nHost: 127.0.0.1:%u\r\n", s.port);
		assert_non_null(strstr(s.request, host));
	}
	assert_non_null(strstr(s.request, "\r\nUpgrade: DERP\r\n"));
	assert_int_equal(cl.ups, 1);
	assert_int_equal(cl.downs, 0);
	assert_true(derpconn_is_up(cl.conn));
	for (int i = 0; i < 32; i++) {
		snprintf(pkt, sizeof pkt, "q%d", i + 9);
		assert_string_equal(s.payloads[i], pkt);
	}
	assert_memory_equal(s.last_dst, dst, 32);
	assert_memory_equal(s.pong, "pingpong", 8);
	assert_int_equal(s.last_pref, 1);
	assert_int_equal(cl.recvs, 1);
	assert_string_equal(cl.last_pkt, "hello");
	memset(k11, 0x11, sizeof k11);
	assert_memory_equal(cl.last_src, k11, 32);
	assert_memory_equal(cl.gone_key, k11, 32);
	assert_int_equal(cl.gone_reason, DERP_PEER_GONE_NOT_HERE);
	assert_string_equal(derpconn_health(cl.conn), "duplicate client");
	derpconn_stats(cl.conn, &st);
	assert_int_equal(st.drops_queue, 8);
	assert_int_equal(st.drops_too_big, 1);
	assert_int_equal(st.bad_frames, 1);
	assert_int_equal(st.skipped_frames, 1);
	assert_int_equal(st.rx_packets, 1);
	assert_int_equal(st.tx_packets, 32);
	assert_int_equal(st.connects, 1);
	assert_int_equal(st.reconnects, 0);
	assert_true(st.tx_frames >= 35);	/* ClientInfo, NotePreferred, 32 packets, Pong */
	assert_true(st.rx_frames >= 10);
	assert_int_equal(derpconn_queued_bytes(cl.conn), 0);

	/* A frame length over the cap breaks the stream: closed, redialled, greeted again. */
	assert_int_equal(s.nconns, 1);
	{
		uint8_t hdr[5];

		derp_frame_hdr_put(hdr, DERP_FRAME_RECV_PACKET, 0x7fffffff);
		bufferevent_write(s.conns[0]->bev, hdr, 5);
	}
	run_until(base, basic_reconnected, &b);
	assert_int_equal(cl.downs, 1);
	assert_int_equal(s.accepts, 2);
	assert_int_equal(s.client_infos, 2);
	assert_non_null(strstr(derpconn_last_error(cl.conn), "over the limit"));
	derpconn_stats(cl.conn, &st);
	assert_int_equal(st.disconnects, 1);
	assert_int_equal(st.reconnects, 1);
	assert_int_equal(st.connects, 2);
	assert_int_equal(st.bad_frames, 3);

	/* Live sends go straight out; the owner may free from inside a callback. */
	assert_int_equal(derpconn_send(cl.conn, dst, (const uint8_t *)"live", 4), 0);
	assert_true(derpconn_last_activity(cl.conn) > 0);
	run_until(base, basic_live_packet, &b);
	assert_string_equal(s.payloads[32], "live");
	cl.free_on_recv = true;
	{
		uint8_t buf[40];

		memset(buf, 0x33, 32);
		memcpy(buf + 32, "bye", 3);
		/* Two in one write: the second must not be read after the free. */
		s_send(s.conns[0], DERP_FRAME_RECV_PACKET, buf, 35);
		s_send(s.conns[0], DERP_FRAME_RECV_PACKET, buf, 35);
	}
	run_until(base, basic_freed, &b);
	assert_int_equal(cl.recvs, 3);
	srv_stop(&s);
	event_base_free(base);
}

struct wait_up {
	struct cli *cl;
	struct srv *s;
};

static bool
is_up(void *arg)
{
	return ((struct wait_up *)arg)->cl->ups > 0;
}

static bool
refused_twice(void *arg)
{
	struct wait_up *w = arg;
	struct derpconn_stats st;

	derpconn_stats(w->cl->conn, &st);
	return st.failures >= 2 && w->s->accepts >= 2;
}

/* Nodes in order: STUN-only skipped, a refused port, families off, then a literal that works. */
static void
test_conn_failover(void **state)
{
	struct event_base *base = event_base_new();
	struct srv s;
	struct cli cl = { 0 };
	struct wait_up w = { &cl, &s };
	struct derpconn_stats st;
	char host[64];

	srv_start(&s, base, SRV_DERP);
	one_node_region(s.port);
	nodes[0] = (struct netmap_derp_node){ .name = "a", .hostname = "127.0.0.1", .ipv4 = "",
	    .ipv6 = "", .derp_port = s.port, .flags = NETMAP_DERP_STUN_ONLY };
	nodes[1] = (struct netmap_derp_node){ .name = "b", .hostname = "127.0.0.1", .ipv4 = "",
	    .ipv6 = "none", .derp_port = closed_port() };
	nodes[2] = (struct netmap_derp_node){ .name = "c", .hostname = "127.0.0.1", .ipv4 = "none",
	    .ipv6 = "none", .derp_port = s.port };
	nodes[3] = (struct netmap_derp_node){ .name = "d", .hostname = "derp.invalid",
	    .ipv4 = "127.0.0.1", .ipv6 = "", .derp_port = s.port };
	region.n_nodes = 4;
	client_new(base, &cl);
	run_until(base, is_up, &w);
	/* Dialled by its literal, named by its HostName. */
	snprintf(host, sizeof host, "\r\nHost: derp.invalid:%u\r\n", s.port);
	assert_non_null(strstr(s.request, host));
	assert_int_equal(s.accepts, 1);
	derpconn_stats(cl.conn, &st);
	assert_int_equal(st.failures, 0);
	assert_int_equal(st.connects, 1);
	derpconn_free(cl.conn);
	srv_stop(&s);
	event_base_free(base);
}

static void
test_conn_refused(void **state)
{
	struct event_base *base = event_base_new();
	struct srv s;
	struct cli cl = { 0 };
	struct wait_up w = { &cl, &s };

	srv_start(&s, base, SRV_REFUSE);
	one_node_region(s.port);
	client_new(base, &cl);
	run_until(base, refused_twice, &w);
	assert_int_equal(cl.ups, 0);
	assert_int_equal(cl.downs, 0);
	assert_non_null(strstr(derpconn_last_error(cl.conn),
	    "upgrade refused: HTTP 426 Upgrade Required: DERP requires connection upgrade"));
	derpconn_free(cl.conn);
	srv_stop(&s);
	event_base_free(base);
}

/* Names through the resolver: a hosts file for the answer, a silent server for a pending lookup. */
static void
test_conn_dns(void **state)
{
	struct event_base *base = event_base_new();
	struct evdns_base *dns = evdns_base_new(base, 0);
	struct derpconn_cfg cfg = { .region = &region, .node_priv = client_priv,
	    .node_pub = client_pub, .plain_http = true };
	char hosts[] = "/tmp/meshd-test-derp-hosts.XXXXXX", host[64], ns[32], *cause = NULL;
	struct timeval tv = { 0, 300 * 1000 };
	struct srv s;
	struct cli cl = { 0 };
	struct wait_up w = { &cl, &s };
	int fd;

	assert_non_null(dns);
	fd = mkstemp(hosts);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "127.0.0.1 derp.test\n", 20), 20);
	close(fd);
	assert_int_equal(evdns_base_load_hosts(dns, hosts), 0);
	unlink(hosts);
	/* Nothing answers there: lookups of other names stay pending. */
	snprintf(ns, sizeof ns, "127.0.0.1:%u", closed_port());
	assert_int_equal(evdns_base_nameserver_ip_add(dns, ns), 0);

	srv_start(&s, base, SRV_DERP);
	one_node_region(s.port);
	nodes[0].hostname = "derp.test";
	cl.conn = derpconn_new(base, dns, &cfg, &cli_ops, &cl, &cause);
	assert_non_null(cl.conn);
	run_until(base, is_up, &w);
	snprintf(host, sizeof host, "\r\nHost: derp.test:%u\r\n", s.port);
	assert_non_null(strstr(s.request, host));
	derpconn_free(cl.conn);

	/* Freed with a lookup in flight: it is cancelled and nothing leaks. */
	nodes[0].hostname = "pending.test";
	cl.conn = derpconn_new(base, dns, &cfg, &cli_ops, &cl, &cause);
	assert_non_null(cl.conn);
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	assert_false(derpconn_is_up(cl.conn));
	derpconn_free(cl.conn);
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);

	srv_stop(&s);
	evdns_base_free(dns, 0);
	event_base_free(base);
}

static void
test_conn_config(void **state)
{
	struct event_base *base = event_base_new();
	struct derpconn_cfg cfg = { .region = &region, .node_priv = client_priv,
	    .node_pub = client_pub };
	struct cli cl = { 0 };
	char *cause = NULL;

	/* Only STUN-only nodes, or a bad port: nothing to dial. */
	one_node_region(443);
	nodes[0].flags = NETMAP_DERP_STUN_ONLY;
	assert_null(derpconn_new(base, NULL, &cfg, &cli_ops, &cl, &cause));
	assert_non_null(cause);
	assert_non_null(strstr(cause, "901"));
	free(cause);
	cause = NULL;
	one_node_region(443);
	nodes[0].derp_port = 70000;
	assert_null(derpconn_new(base, NULL, &cfg, &cli_ops, &cl, &cause));
	free(cause);
	cause = NULL;
	cfg.node_priv = NULL;
	one_node_region(443);
	assert_null(derpconn_new(base, NULL, &cfg, &cli_ops, &cl, &cause));
	free(cause);
	/* Freed before the loop ever ran, and NULL. */
	cfg.node_priv = client_priv;
	cause = NULL;
	cl.conn = derpconn_new(base, NULL, &cfg, &cli_ops, &cl, &cause);
	assert_non_null(cl.conn);
	derpconn_free(cl.conn);
	derpconn_free(NULL);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_header),
		cmocka_unit_test(test_upgrade_request),
		cmocka_unit_test(test_http_101),
		cmocka_unit_test(test_http_refused),
		cmocka_unit_test(test_http_garbage),
		cmocka_unit_test(test_server_key),
		cmocka_unit_test(test_client_info),
		cmocka_unit_test(test_server_info),
		cmocka_unit_test(test_send_frames),
		cmocka_unit_test(test_recv_frames),
		cmocka_unit_test(test_conn_basic),
		cmocka_unit_test(test_conn_failover),
		cmocka_unit_test(test_conn_refused),
		cmocka_unit_test(test_conn_dns),
		cmocka_unit_test(test_conn_config),
	};

	keys();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
