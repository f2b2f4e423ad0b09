/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_WG_INT_H
#define MESHD_WG_INT_H

/* Internals shared by the files of the WireGuard core; not for its users. */

#include <openssl/evp.h>

#include "wg/allowedips.h"
#include "wg/replay.h"
#include "wg/wg.h"

#define WG_TAI64N_LEN 12

/* An entry of the receiver-index table, embedded in what it names. */
enum index_kind { INDEX_HANDSHAKE = 1, INDEX_KEYPAIR = 2 };
struct index_entry {
	struct index_entry *next;
	uint32_t index;		/* 0 when not in the table */
	uint8_t kind;
	struct wg_peer *peer;
};

struct index_table {
	struct index_entry **buckets;
	uint32_t mask;
	uint32_t count;
};

struct wg_keypair {
	struct index_entry entry;	/* our local index; first, for container_of */
	uint32_t remote_index;
	bool initiator;
	bool sending_ok;	/* the responder waits for key confirmation */
	uint64_t created;
	uint64_t send_counter;
	EVP_CIPHER_CTX *send;
	EVP_CIPHER_CTX *recv;
	struct replay replay;
};

enum hs_state {
	HS_ZEROED,
	HS_INITIATION_CREATED,
	HS_INITIATION_CONSUMED,
	HS_RESPONSE_CREATED,
	HS_RESPONSE_CONSUMED,
};

/* Handshake secrets; the struct lives in locked memory (see peer_alloc). */
struct wg_handshake {
	struct index_entry entry;
	enum hs_state state;
	uint32_t remote_index;
	uint8_t hash[32];
	uint8_t chaining_key[32];
	uint8_t ephemeral_private[32];
	uint8_t remote_ephemeral[32];
	uint8_t remote_static[32];
	uint8_t precomputed_ss[32];	/* DH(our static, their static); zero = unusable */
	uint8_t psk[32];
	uint8_t latest_timestamp[WG_TAI64N_LEN];
	uint64_t last_initiation_consumed;
	uint64_t last_sent_handshake;
	bool have_sent;			/* last_sent_handshake is valid */
	bool have_consumed;
};

struct cookie_maker {
	uint8_t mac1_key[32];		/* HASH("mac1----" || peer's public key) */
	uint8_t cookie_key[32];		/* HASH("cookie--" || peer's public key) */
	uint8_t cookie[16];
	uint64_t cookie_birth;
	bool have_cookie;
	uint8_t last_mac1_sent[16];
	bool have_sent_mac1;
};

struct cookie_checker {
	uint8_t mac1_key[32];		/* for messages to us */
	uint8_t cookie_key[32];
	uint8_t secret[32];
	uint64_t secret_birth;
	bool have_secret;
};

struct staged {
	struct pkt *head;
	struct pkt *tail;
	unsigned int count;
};

struct wg_peer {
	struct wg_device *dev;
	struct wg_peer *next;		/* device list, insertion order */
	struct wg_peer *prev;
	struct wg_peer *hash_next;	/* public-key hash chain */
	void *user;

	struct wg_handshake *hs;	/* locked memory */
	struct cookie_maker cookie;
	struct wg_keypair *kp_prev, *kp_cur, *kp_next;

	bool has_endpoint;
	union wg_endpoint endpoint;
	uint16_t persistent_keepalive;	/* seconds */

	struct staged staged;

	/* Timer deadlines in monotonic ns; 0 = not armed. */
	uint64_t t_retransmit;
	uint64_t t_send_keepalive;
	uint64_t t_new_handshake;
	uint64_t t_zero_keys;
	uint64_t t_persistent;
	unsigned int handshake_attempts;
	bool need_another_keepalive;
	bool sent_lastminute_handshake;

	uint64_t last_handshake_real;
	uint64_t rx_bytes;
	uint64_t tx_bytes;
};

#define PEER_HASH_BITS 10

struct wg_device {
	const struct wg_ops *ops;
	void *ctx;
	struct pkt_pool *pool;

	uint8_t *static_private;	/* sodium_malloc'd; all-zero when unset */
	uint8_t static_public[32];
	bool has_private;
	struct cookie_checker cookie;

	struct wg_peer *peers_head, *peers_tail;
	struct wg_peer **peer_hash;
	size_t npeers;
	struct index_table index;
	struct aip_table *aips;

	unsigned int mtu;
	bool roaming;
	bool force_under_load;
	uint64_t load_window_start;
	unsigned int load_window_count;
	uint64_t under_load_until;

	uint64_t next_deadline;
	uint64_t rng[2];	/* xorshift state for timer jitter; seeded from ops->random */
	struct ratelimiter *rl;
	struct wg_stats stats;

	const uint8_t *identifier;	/* Noise prologue; tests may override */
	size_t identifier_len;
};

/* noise.c: the Noise_IKpsk2 handshake on WireGuard messages. */
void noise_precompute_peer(struct wg_device *dev, struct wg_peer *peer);
bool noise_create_initiation(struct wg_device *dev, struct wg_peer *peer, uint8_t msg[static WG_INITIATION_LEN], uint64_t now)
	__attribute__((warn_unused_result));
struct wg_peer *noise_consume_initiation(struct wg_device *dev, const uint8_t msg[static WG_INITIATION_LEN], uint64_t now);
bool noise_create_response(struct wg_device *dev, struct wg_peer *peer, uint8_t msg[static WG_RESPONSE_LEN])
	__attribute__((warn_unused_result));
struct wg_peer *noise_consume_response(struct wg_device *dev, const uint8_t msg[static WG_RESPONSE_LEN]);
struct wg_keypair *noise_begin_session(struct wg_device *dev, struct wg_peer *peer, uint64_t now);
void noise_handshake_clear(struct wg_device *dev, struct wg_peer *peer);
void noise_keypair_free(struct wg_device *dev, struct wg_keypair *kp);

/* The Noise IKpsk2 messages without WireGuard framing (for the test vectors). */
struct noise_state {
	uint8_t ck[32];
	uint8_t h[32];
};
void noise_state_init(struct noise_state *st, const uint8_t *prologue, size_t plen,
    const uint8_t responder_static_pub[static 32]);
bool noise_write_msg1(struct noise_state *st, uint8_t out[static 108],
    const uint8_t e_priv[static 32], const uint8_t s_priv[static 32],
    const uint8_t rs_pub[static 32], const uint8_t payload[static 12]) __attribute__((warn_unused_result));
bool noise_write_msg2(struct noise_state *st, uint8_t out[static 48],
    const uint8_t e_priv[static 32], const uint8_t re_pub[static 32],
    const uint8_t rs_pub[static 32], const uint8_t psk[static 32]) __attribute__((warn_unused_result));
void noise_split(const struct noise_state *st, uint8_t t1[static 32], uint8_t t2[static 32]);

/* cookie.c: mac1/mac2 and cookie replies. */
void cookie_checker_init(struct cookie_checker *cc, const uint8_t pub[static 32]);
void cookie_maker_init(struct cookie_maker *cm, const uint8_t peer_pub[static 32]);
void cookie_add_macs(struct cookie_maker *cm, uint8_t *msg, size_t len, uint64_t now);
bool cookie_check_mac1(const struct cookie_checker *cc, const uint8_t *msg, size_t len);
bool cookie_check_mac2(struct wg_device *dev, const uint8_t *msg, size_t len,
    const union wg_endpoint *src, uint64_t now);
void cookie_make_reply(struct wg_device *dev, uint8_t out[static WG_COOKIE_LEN], uint32_t index,
    const uint8_t mac1[static 16], const union wg_endpoint *src, uint64_t now);
bool cookie_consume_reply(struct cookie_maker *cm, const uint8_t msg[static WG_COOKIE_LEN], uint64_t now)
	__attribute__((warn_unused_result));

/* ratelimit.c: per-source token buckets used under load. */
struct ratelimiter *ratelimiter_new(void (*rnd)(void *, void *, size_t), void *ctx);
void ratelimiter_free(struct ratelimiter *rl);
bool ratelimiter_allow(struct ratelimiter *rl, const union wg_endpoint *src, uint64_t now);

/* wg.c helpers used by noise.c */
uint32_t index_insert(struct wg_device *dev, struct index_entry *e, enum index_kind kind,
    struct wg_peer *peer);
void index_remove(struct wg_device *dev, struct index_entry *e);
/* Puts e_new in e_old's place under the same index. */
void index_swap(struct wg_device *dev, struct index_entry *e_old, struct index_entry *e_new,
    enum index_kind kind);
struct index_entry *index_lookup(const struct wg_device *dev, uint32_t index);
void tai64n_now(struct wg_device *dev, uint8_t out[static WG_TAI64N_LEN]);

#endif
