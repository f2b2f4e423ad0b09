// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <arpa/inet.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

#include <sodium.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "agent/control/mapresp.h"
#include "common/keys.h"
#include "common/util.h"

/* ------------------------------------------------------------------ */
/* Arena                                                               */
/* ------------------------------------------------------------------ */

#define ARENA_FIRST_CHUNK	4096u
#define ARENA_MAX_CHUNK		(1u << 20)
/* Chunks this big come from mmap, so that freeing them returns the pages
 * at once whatever glibc's dynamic mmap threshold has drifted to. */
#define ARENA_MMAP_MIN		(128u << 10)

struct arena_chunk {
	struct arena_chunk *prev;
	size_t size;		/* usable bytes after the header */
	size_t off;
	size_t alloc;		/* bytes obtained from the system */
	bool mapped;
};

#define CHUNK_HDR	((sizeof(struct arena_chunk) + 15) & ~(size_t)15)

struct mapresp_arena {
	struct arena_chunk *cur;
	size_t total;
	size_t limit;
	size_t next;
	bool over_limit;
};

static inline unsigned char *
chunk_data(struct arena_chunk *c)
{
	return (unsigned char *)c + CHUNK_HDR;
}

struct mapresp_arena *
mapresp_arena_new(size_t limit)
{
	struct mapresp_arena *a = calloc(1, sizeof *a);

	if (a == NULL)
		return NULL;
	a->limit = limit;
	a->next = ARENA_FIRST_CHUNK;
	return a;
}

void
mapresp_arena_free(struct mapresp_arena *a)
{
	struct arena_chunk *c, *prev;

	if (a == NULL)
		return;
	for (c = a->cur; c != NULL; c = prev) {
		prev = c->prev;
		if (c->mapped)
			munmap(c, c->alloc);
		else
			free(c);
	}
	free(a);
}

static struct arena_chunk *
chunk_new(struct mapresp_arena *a, size_t size)
{
	struct arena_chunk *c;
	size_t bytes;

	if (size > SIZE_MAX - CHUNK_HDR - 4096)
		goto over;
	bytes = CHUNK_HDR + size;
	if (a->limit != 0 && (bytes > a->limit || a->total > a->limit - bytes))
		goto over;
	if (bytes >= ARENA_MMAP_MIN) {
		bytes = (bytes + 4095) & ~(size_t)4095;
		c = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (c == MAP_FAILED)
			return NULL;
		c->mapped = true;
	} else {
		c = malloc(bytes);
		if (c == NULL)
			return NULL;
		c->mapped = false;
	}
	c->alloc = bytes;
	c->size = bytes - CHUNK_HDR;
	c->off = 0;
	a->total += bytes;
	return c;
over:
	a->over_limit = true;
	return NULL;
}

void *
mapresp_arena_alloc(struct mapresp_arena *a, size_t n, size_t align)
{
	struct arena_chunk *c = a->cur;
	uintptr_t base, p;

	if (c != NULL) {
		base = (uintptr_t)chunk_data(c);
		p = (base + c->off + align - 1) & ~(uintptr_t)(align - 1);
		if (p - base <= c->size && n <= c->size - (p - base)) {
			c->off = p - base + n;
			return (void *)p;
		}
	}
	if (n > SIZE_MAX / 2)
		return NULL;
	if (n + align > a->next / 2) {
		/* A big request gets a chunk of its own, slotted in behind the
		 * current one so that the current one keeps filling up. */
		c = chunk_new(a, n + align);
		if (c == NULL)
			return NULL;
		if (a->cur != NULL) {
			c->prev = a->cur->prev;
			a->cur->prev = c;
		} else {
			c->prev = NULL;
			a->cur = c;
		}
	} else {
		c = chunk_new(a, a->next - CHUNK_HDR);
		if (c == NULL)
			return NULL;
		c->prev = a->cur;
		a->cur = c;
		if (a->next < ARENA_MAX_CHUNK)
			a->next *= 2;
	}
	base = (uintptr_t)chunk_data(c);
	p = (base + align - 1) & ~(uintptr_t)(align - 1);
	c->off = p - base + n;
	return (void *)p;
}

char *
mapresp_arena_strdup(struct mapresp_arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d;

	if (n == 1)
		return (char *)"";
	d = mapresp_arena_alloc(a, n, 1);
	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

size_t
mapresp_arena_size(const struct mapresp_arena *a)
{
	return a != NULL ? a->total + sizeof *a : 0;
}

bool
mapresp_arena_over_limit(const struct mapresp_arena *a)
{
	return a->over_limit;
}

const char *
mapresp_strerror(int err)
{
	switch (err) {
	case MAPRESP_OK:		return "success";
	case MAPRESP_E_NOMEM:		return "out of memory";
	case MAPRESP_E_FRAME_TOO_BIG:	return "map response frame too big";
	case MAPRESP_E_JSON_TOO_BIG:	return "decompressed map response too big";
	case MAPRESP_E_ZSTD:		return "bad zstd frame";
	case MAPRESP_E_CALLBACK:	return "message handler failed";
	case MAPRESP_E_SYNTAX:		return "JSON syntax error";
	case MAPRESP_E_TYPE:		return "JSON field of the wrong type";
	case MAPRESP_E_LIMIT:		return "map response exceeds a limit";
	case MAPRESP_E_VALUE:		return "bad value in map response";
	default:			return "unknown error";
	}
}

/* ------------------------------------------------------------------ */
/* Framing                                                             */
/* ------------------------------------------------------------------ */

/* Buffers above this are freed after each message rather than kept: one
 * full map of a big tailnet must not stay resident for the session. */
#define STREAM_KEEP_BUF (256u << 10)

struct mapresp_stream {
	uint32_t flags;
	size_t frame_max, json_max;
	mapresp_msg_fn fn;
	void *ctx;
	int err;
	uint8_t hdr[4];
	uint8_t hdr_have;
	bool in_body;
	uint32_t need;
	uint8_t *body;
	size_t have, body_cap;
	char *out;
	size_t out_cap;
	ZSTD_DCtx *dctx;
	struct mapresp_stats stats;
};

struct mapresp_stream *
mapresp_stream_new(uint32_t flags, size_t frame_max, size_t json_max,
    mapresp_msg_fn fn, void *ctx)
{
	struct mapresp_stream *s = calloc(1, sizeof *s);
	int wlog;

	if (s == NULL)
		return NULL;
	s->flags = flags;
	s->frame_max = frame_max != 0 ? frame_max : MAPRESP_FRAME_MAX_DEFAULT;
	s->json_max = json_max != 0 ? json_max : MAPRESP_JSON_MAX_DEFAULT;
	/* The length prefix is a u32 and our buffers add one byte for the NUL. */
	if (s->frame_max > UINT32_MAX)
		s->frame_max = UINT32_MAX;
	if (s->json_max > UINT32_MAX)
		s->json_max = UINT32_MAX;
	s->fn = fn;
	s->ctx = ctx;
	if (flags & MAPRESP_STREAM_ZSTD) {
		s->dctx = ZSTD_createDCtx();
		if (s->dctx == NULL) {
			free(s);
			return NULL;
		}
		/* A frame may not ask for a window bigger than the largest
		 * message we accept (but 8 MiB always, the Go encoder's
		 * default): the window is allocated up front, before any
		 * output exists to hold against json_max. */
		wlog = 23;
		while (wlog < 31 && ((size_t)1 << wlog) < s->json_max)
			wlog++;
		ZSTD_DCtx_setParameter(s->dctx, ZSTD_d_windowLogMax, wlog);
	}
	return s;
}

void
mapresp_stream_free(struct mapresp_stream *s)
{
	if (s == NULL)
		return;
	ZSTD_freeDCtx(s->dctx);
	free(s->body);
	free(s->out);
	free(s);
}

int
mapresp_stream_error(const struct mapresp_stream *s)
{
	return s->err;
}

size_t
mapresp_stream_pending(const struct mapresp_stream *s)
{
	return s->in_body ? 4 + s->have : s->hdr_have;
}

const struct mapresp_stats *
mapresp_stream_stats(const struct mapresp_stream *s)
{
	return &s->stats;
}

static int
stream_fail(struct mapresp_stream *s, int err)
{
	s->err = err;
	free(s->body);
	s->body = NULL;
	s->body_cap = 0;
	free(s->out);
	s->out = NULL;
	s->out_cap = 0;
	return err;
}

static bool
out_reserve(struct mapresp_stream *s, size_t n)
{
	char *p;

	if (n <= s->out_cap)
		return true;
	p = realloc(s->out, n);
	if (p == NULL)
		return false;
	s->out = p;
	s->out_cap = n;
	return true;
}

static int
deliver(struct mapresp_stream *s, const char *json, size_t len)
{
	s->stats.frames++;
	s->stats.json_bytes += len;
	if (s->fn != NULL && s->fn(s->ctx, json, len) != 0)
		return MAPRESP_E_CALLBACK;
	return 0;
}

/*
 * One message = one zstd frame (Headscale: zstdframe.AppendEncode).  With a
 * declared content size and exactly one frame, decompress in one shot into
 * a buffer of exactly that size; otherwise (no size, several frames) stream
 * with the output capped at json_max.
 */
static int
deliver_zstd(struct mapresp_stream *s, const uint8_t *src, size_t n)
{
	unsigned long long csz = ZSTD_getFrameContentSize(src, n);
	ZSTD_inBuffer in = { src, n, 0 };
	size_t outlen = 0, ret, fsz;

	if (csz == ZSTD_CONTENTSIZE_ERROR)
		return MAPRESP_E_ZSTD;
	if (csz != ZSTD_CONTENTSIZE_UNKNOWN) {
		if (csz > s->json_max)
			return MAPRESP_E_JSON_TOO_BIG;
		fsz = ZSTD_findFrameCompressedSize(src, n);
		if (!ZSTD_isError(fsz) && fsz == n) {
			if (!out_reserve(s, (size_t)csz + 1))
				return MAPRESP_E_NOMEM;
			ret = ZSTD_decompressDCtx(s->dctx, s->out, (size_t)csz, src, n);
			if (ZSTD_isError(ret) || ret != csz)
				return MAPRESP_E_ZSTD;
			s->out[ret] = '\0';
			return deliver(s, s->out, ret);
		}
	}

	ZSTD_DCtx_reset(s->dctx, ZSTD_reset_session_only);
	if (!out_reserve(s, MIN(s->json_max + 2, MAX((size_t)64 << 10, n * 4))))
		return MAPRESP_E_NOMEM;
	for (;;) {
		ZSTD_outBuffer ob;

		/* Room for json_max + 1 bytes (to see an overrun) + the NUL. */
		if (outlen == s->out_cap - 1 &&
		    !out_reserve(s, MIN(s->json_max + 2, s->out_cap * 2)))
			return MAPRESP_E_NOMEM;
		ob.dst = s->out + outlen;
		ob.size = s->out_cap - 1 - outlen;
		ob.pos = 0;
		ret = ZSTD_decompressStream(s->dctx, &ob, &in);
		if (ZSTD_isError(ret))
			return ZSTD_getErrorCode(ret) == ZSTD_error_frameParameter_windowTooLarge ?
			    MAPRESP_E_JSON_TOO_BIG : MAPRESP_E_ZSTD;
		outlen += ob.pos;
		if (outlen > s->json_max)
			return MAPRESP_E_JSON_TOO_BIG;
		if (ret == 0 && in.pos == in.size)
			break;
		/* Input used up while output still had room: truncated. */
		if (in.pos == in.size && ob.pos < ob.size)
			return MAPRESP_E_ZSTD;
	}
	s->out[outlen] = '\0';
	return deliver(s, s->out, outlen);
}

static int
finish_message(struct mapresp_stream *s, const uint8_t *src, size_t n)
{
	int r;

	if (s->flags & MAPRESP_STREAM_ZSTD) {
		r = deliver_zstd(s, src, n);
	} else {
		/* Plain JSON is already in s->body with room for the NUL. */
		s->body[n] = '\0';
		r = deliver(s, (const char *)s->body, n);
	}
	if (s->body_cap > STREAM_KEEP_BUF) {
		free(s->body);
		s->body = NULL;
		s->body_cap = 0;
	}
	if (s->out_cap > STREAM_KEEP_BUF) {
		free(s->out);
		s->out = NULL;
		s->out_cap = 0;
	}
	return r;
}

int
mapresp_stream_feed(struct mapresp_stream *s, const uint8_t *buf, size_t len)
{
	size_t take;
	int r;

	if (s->err != 0)
		return s->err;
	s->stats.wire_bytes += len;
	while (len > 0) {
		if (!s->in_body) {
			take = MIN((size_t)(4 - s->hdr_have), len);
			memcpy(s->hdr + s->hdr_have, buf, take);
			s->hdr_have = (uint8_t)(s->hdr_have + take);
			buf += take;
			len -= take;
			if (s->hdr_have < 4)
				break;
			s->hdr_have = 0;
			/* Little-endian, unlike every other length in TS2021
			 * (control.md §10.1). */
			s->need = get_le32(s->hdr);
			if (s->need > s->frame_max)
				return stream_fail(s, MAPRESP_E_FRAME_TOO_BIG);
			if (!(s->flags & MAPRESP_STREAM_ZSTD) && s->need > s->json_max)
				return stream_fail(s, MAPRESP_E_JSON_TOO_BIG);
			s->in_body = true;
			s->have = 0;
			if (s->need == 0) {
				static const char empty[1];

				s->in_body = false;
				r = (s->flags & MAPRESP_STREAM_ZSTD) ? MAPRESP_E_ZSTD :
				    deliver(s, empty, 0);
				if (r != 0)
					return stream_fail(s, r);
				continue;
			}
		}
		/* A whole compressed frame in the caller's buffer is
		 * decompressed from there, without a copy. */
		if (s->have == 0 && len >= s->need && (s->flags & MAPRESP_STREAM_ZSTD)) {
			r = finish_message(s, buf, s->need);
			if (r != 0)
				return stream_fail(s, r);
			buf += s->need;
			len -= s->need;
			s->in_body = false;
			continue;
		}
		if (s->body_cap < (size_t)s->need + 1) {
			uint8_t *p = realloc(s->body, (size_t)s->need + 1);

			if (p == NULL)
				return stream_fail(s, MAPRESP_E_NOMEM);
			s->body = p;
			s->body_cap = (size_t)s->need + 1;
		}
		take = MIN((size_t)s->need - s->have, len);
		memcpy(s->body + s->have, buf, take);
		s->have += take;
		buf += take;
		len -= take;
		if (s->have == s->need) {
			s->in_body = false;
			r = finish_message(s, s->body, s->need);
			if (r != 0)
				return stream_fail(s, r);
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* JSON pull parser                                                    */
/* ------------------------------------------------------------------ */

/*
 * RFC 8259, strictly: no comments, no trailing commas, no NaN, no leading
 * zeros, no raw control characters in strings, whitespace = SP HT LF CR.
 * Go's encoding/json validates the whole document the same way before
 * decoding, so anything Headscale or Tailscale emits passes.  Invalid
 * UTF-8 is passed through as bytes (Go substitutes U+FFFD); a lone
 * surrogate escape becomes U+FFFD as in Go; \u0000 is refused in any
 * string we keep, since C strings would silently truncate it.
 */

struct jp {
	const char *p, *end, *start;
	int err;
	const char *what;
	int depth;
	struct mapresp_arena *ar;
	size_t stk_limit;
	char *sb;			/* string scratch */
	size_t sbcap;
	unsigned char *stk;		/* scratch stack for arrays being built */
	size_t stop, stcap;
};

static bool
fail(struct jp *j, int err, const char *what)
{
	if (j->err == 0) {
		j->err = err;
		j->what = what;
	}
	return false;
}

static void *
jalloc(struct jp *j, size_t n, size_t align)
{
	void *p;

	if (n == 0)
		n = 1;
	p = mapresp_arena_alloc(j->ar, n, align);
	if (p == NULL)
		fail(j, mapresp_arena_over_limit(j->ar) ? MAPRESP_E_LIMIT : MAPRESP_E_NOMEM,
		    "memory budget");
	return p;
}

static void *
jzalloc(struct jp *j, size_t n, size_t align)
{
	void *p = jalloc(j, n, align);

	if (p != NULL)
		memset(p, 0, n);
	return p;
}

static bool
stk_push(struct jp *j, const void *e, size_t n)
{
	if (j->stcap - j->stop < n) {
		size_t cap = MAX(j->stcap * 2, j->stop + n);
		unsigned char *p;

		cap = MAX(cap, (size_t)4096);
		if (cap > j->stk_limit)
			cap = MAX(j->stk_limit, j->stop + n);
		if (cap > j->stk_limit)
			return fail(j, MAPRESP_E_LIMIT, "memory budget");
		p = realloc(j->stk, cap);
		if (p == NULL)
			return fail(j, MAPRESP_E_NOMEM, "scratch");
		j->stk = p;
		j->stcap = cap;
	}
	memcpy(j->stk + j->stop, e, n);
	j->stop += n;
	return true;
}

static bool
sb_reserve(struct jp *j, size_t n)
{
	char *p;
	size_t cap;

	if (n <= j->sbcap)
		return true;
	cap = MAX(n, j->sbcap * 2);
	p = realloc(j->sb, cap);
	if (p == NULL)
		return fail(j, MAPRESP_E_NOMEM, "scratch");
	j->sb = p;
	j->sbcap = cap;
	return true;
}

static inline int
peek(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
		j->p++;
	return j->p < j->end ? (unsigned char)*j->p : -1;
}

static bool
literal(struct jp *j, const char *lit, size_t n)
{
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
		return fail(j, MAPRESP_E_SYNTAX, "literal");
	j->p += n;
	return true;
}

/* If the next value is null, consumes it and returns true. */
static bool
take_null(struct jp *j)
{
	if (peek(j) != 'n')
		return false;
	return literal(j, "null", 4);
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static bool
hex4(struct jp *j, const char *p, unsigned int *out)
{
	unsigned int v = 0;

	if (j->end - p < 4)
		return fail(j, MAPRESP_E_SYNTAX, "\\u escape");
	for (int i = 0; i < 4; i++) {
		int h = hexval((unsigned char)p[i]);

		if (h < 0)
			return fail(j, MAPRESP_E_SYNTAX, "\\u escape");
		v = v << 4 | (unsigned int)h;
	}
	*out = v;
	return true;
}

/*
 * Parses the string at j->p (a '"') into j->sb, NUL-terminated.  Longer
 * than max: with too_long NULL that is an error; otherwise the rest is
 * validated but not stored and *too_long set.  *has_nul reports \u0000.
 */
static const char *
str_parse(struct jp *j, size_t max, size_t *lenp, bool *too_long, bool *has_nul)
{
	const char *p = j->p + 1;
	size_t n = 0;
	bool over = false, nul = false;

	for (;;) {
		const char *q = p;
		size_t run;
		unsigned char esc[4];
		size_t elen = 1;

		while (q < j->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
			q++;
		run = (size_t)(q - p);
		if (!over) {
			if (run > max - n) {
				if (too_long == NULL)
					return fail(j, MAPRESP_E_LIMIT, "string length"), NULL;
				over = true;
			} else {
				if (!sb_reserve(j, n + run + 5))
					return NULL;
				memcpy(j->sb + n, p, run);
				n += run;
			}
		}
		p = q;
		if (p >= j->end)
			return fail(j, MAPRESP_E_SYNTAX, "unterminated string"), NULL;
		if (*p == '"') {
			p++;
			break;
		}
		if (*p != '\\')
			return fail(j, MAPRESP_E_SYNTAX, "control character in string"), NULL;
		if (++p >= j->end)
			return fail(j, MAPRESP_E_SYNTAX, "unterminated string"), NULL;
		switch (*p++) {
		case '"':	esc[0] = '"'; break;
		case '\\':	esc[0] = '\\'; break;
		case '/':	esc[0] = '/'; break;
		case 'b':	esc[0] = '\b'; break;
		case 'f':	esc[0] = '\f'; break;
		case 'n':	esc[0] = '\n'; break;
		case 'r':	esc[0] = '\r'; break;
		case 't':	esc[0] = '\t'; break;
		case 'u': {
			unsigned int cp, lo;

			if (!hex4(j, p, &cp))
				return NULL;
			p += 4;
			if (cp >= 0xd800 && cp < 0xdc00 && j->end - p >= 6 &&
			    p[0] == '\\' && p[1] == 'u') {
				if (!hex4(j, p + 2, &lo))
					return NULL;
				if (lo >= 0xdc00 && lo < 0xe000) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					p += 6;
				}
			}
			if (cp >= 0xd800 && cp < 0xe000)
				cp = 0xfffd;
			if (cp == 0)
				nul = true;
			if (cp < 0x80) {
				esc[0] = (unsigned char)cp;
			} else if (cp < 0x800) {
				esc[0] = (unsigned char)(0xc0 | cp >> 6);
				esc[1] = (unsigned char)(0x80 | (cp & 0x3f));
				elen = 2;
			} else if (cp < 0x10000) {
				esc[0] = (unsigned char)(0xe0 | cp >> 12);
				esc[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
				esc[2] = (unsigned char)(0x80 | (cp & 0x3f));
				elen = 3;
			} else {
				esc[0] = (unsigned char)(0xf0 | cp >> 18);
				esc[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
				esc[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
				esc[3] = (unsigned char)(0x80 | (cp & 0x3f));
				elen = 4;
			}
			break;
		}
		default:
			return fail(j, MAPRESP_E_SYNTAX, "bad escape"), NULL;
		}
		if (!over) {
			if (elen > max - n) {
				if (too_long == NULL)
					return fail(j, MAPRESP_E_LIMIT, "string length"), NULL;
				over = true;
			} else {
				memcpy(j->sb + n, esc, elen);
				n += elen;
			}
		}
	}
	j->p = p;
	if (!sb_reserve(j, n + 1))
		return NULL;
	j->sb[n] = '\0';
	*lenp = n;
	if (too_long != NULL)
		*too_long = over;
	if (has_nul != NULL)
		*has_nul = nul;
	return j->sb;
}

static bool
skip_string(struct jp *j)
{
	const char *p = j->p + 1;

	for (;;) {
		while (p < j->end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
			p++;
		if (p >= j->end)
			return fail(j, MAPRESP_E_SYNTAX, "unterminated string");
		if (*p == '"')
			break;
		if (*p != '\\')
			return fail(j, MAPRESP_E_SYNTAX, "control character in string");
		if (++p >= j->end)
			return fail(j, MAPRESP_E_SYNTAX, "unterminated string");
		switch (*p++) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
			break;
		case 'u': {
			unsigned int cp;

			if (!hex4(j, p, &cp))
				return false;
			p += 4;
			break;
		}
		default:
			return fail(j, MAPRESP_E_SYNTAX, "bad escape");
		}
	}
	j->p = p + 1;
	return true;
}

/* Scans a number token; *is_int when it has no fraction or exponent. */
static bool
scan_number(struct jp *j, const char **tok, size_t *toklen, bool *is_int)
{
	const char *p = j->p, *s = p;

	*is_int = true;
	if (p < j->end && *p == '-')
		p++;
	if (p >= j->end)
		return fail(j, MAPRESP_E_SYNTAX, "number");
	if (*p == '0') {
		p++;
	} else if (*p >= '1' && *p <= '9') {
		while (p < j->end && *p >= '0' && *p <= '9')
			p++;
	} else {
		return fail(j, MAPRESP_E_SYNTAX, "number");
	}
	if (p < j->end && *p == '.') {
		*is_int = false;
		p++;
		if (p >= j->end || *p < '0' || *p > '9')
			return fail(j, MAPRESP_E_SYNTAX, "number");
		while (p < j->end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < j->end && (*p == 'e' || *p == 'E')) {
		*is_int = false;
		p++;
		if (p < j->end && (*p == '+' || *p == '-'))
			p++;
		if (p >= j->end || *p < '0' || *p > '9')
			return fail(j, MAPRESP_E_SYNTAX, "number");
		while (p < j->end && *p >= '0' && *p <= '9')
			p++;
	}
	*tok = s;
	*toklen = (size_t)(p - s);
	j->p = p;
	return true;
}

static bool
skip_scalar(struct jp *j, int c)
{
	const char *tok;
	size_t n;
	bool is_int;

	switch (c) {
	case '"':
		return skip_string(j);
	case 't':
		return literal(j, "true", 4);
	case 'f':
		return literal(j, "false", 5);
	case 'n':
		return literal(j, "null", 4);
	default:
		if (c == '-' || (c >= '0' && c <= '9'))
			return scan_number(j, &tok, &n, &is_int);
		return fail(j, MAPRESP_E_SYNTAX, "value");
	}
}

/* Validates and skips one value of any shape, iteratively (depth capped). */
static bool
skip_value(struct jp *j)
{
	uint64_t is_obj = 0;
	int d = 0, c;

	for (;;) {
		c = peek(j);
		if (c == '{' || c == '[') {
			if (j->depth + d + 1 > MAPRESP_MAX_DEPTH)
				return fail(j, MAPRESP_E_LIMIT, "nesting depth");
			j->p++;
			if (c == '{')
				is_obj |= (uint64_t)1 << d;
			else
				is_obj &= ~((uint64_t)1 << d);
			d++;
			c = peek(j);
			if (c == (is_obj & ((uint64_t)1 << (d - 1)) ? '}' : ']')) {
				j->p++;
				d--;
			} else if (is_obj & ((uint64_t)1 << (d - 1))) {
				if (c != '"' || !skip_string(j))
					return fail(j, MAPRESP_E_SYNTAX, "object key");
				if (peek(j) != ':')
					return fail(j, MAPRESP_E_SYNTAX, "expected ':'");
				j->p++;
				continue;
			} else {
				continue;
			}
		} else if (!skip_scalar(j, c)) {
			return false;
		}
		/* After a value: close containers or move to the next member. */
		for (;;) {
			bool obj;

			if (d == 0)
				return true;
			obj = (is_obj >> (d - 1)) & 1;
			c = peek(j);
			if (c == (obj ? '}' : ']')) {
				j->p++;
				d--;
				continue;
			}
			if (c != ',')
				return fail(j, MAPRESP_E_SYNTAX, "expected ',' or end");
			j->p++;
			if (obj) {
				if (peek(j) != '"' || !skip_string(j))
					return fail(j, MAPRESP_E_SYNTAX, "object key");
				if (peek(j) != ':')
					return fail(j, MAPRESP_E_SYNTAX, "expected ':'");
				j->p++;
			}
			break;
		}
	}
}

/* The error for finding c where another kind of value belongs: a type
 * error if c starts some JSON value, else a syntax error. */
static int
bad_kind(int c)
{
	if (c == '{' || c == '[' || c == '"' || c == 't' || c == 'f' || c == 'n' || c == '-' ||
	    (c >= '0' && c <= '9'))
		return MAPRESP_E_TYPE;
	return MAPRESP_E_SYNTAX;
}

/* 1: '{' consumed; 0: null consumed; -1: error (wrong type or syntax). */
static int
obj_begin(struct jp *j, const char *what)
{
	int c = peek(j);

	if (c == '{') {
		if (j->depth + 1 > MAPRESP_MAX_DEPTH)
			return fail(j, MAPRESP_E_LIMIT, "nesting depth"), -1;
		j->p++;
		j->depth++;
		return 1;
	}
	if (c == 'n')
		return literal(j, "null", 4) ? 0 : -1;
	return fail(j, bad_kind(c), what), -1;
}

/*
 * Next member of an object opened by obj_begin().  Returns 1 with the key
 * in *k (NUL-terminated, in j->sb; NULL when longer than
 * MAPRESP_MAX_STRING) and the ':' consumed; 0 after the closing '}';
 * -1 on error.
 */
static int
obj_next(struct jp *j, size_t *count, const char **k, size_t *klen)
{
	int c = peek(j);
	bool too_long, nul;

	if (c == '}') {
		j->p++;
		j->depth--;
		return 0;
	}
	if (*count > 0) {
		if (c != ',')
			return fail(j, MAPRESP_E_SYNTAX, "expected ',' or '}'"), -1;
		j->p++;
		c = peek(j);
	}
	if (c != '"')
		return fail(j, MAPRESP_E_SYNTAX, "object key"), -1;
	*k = str_parse(j, MAPRESP_MAX_STRING, klen, &too_long, &nul);
	if (*k == NULL)
		return -1;
	if (too_long || nul)
		*k = NULL;
	if (peek(j) != ':')
		return fail(j, MAPRESP_E_SYNTAX, "expected ':'"), -1;
	j->p++;
	(*count)++;
	return 1;
}

static int
arr_begin(struct jp *j, const char *what)
{
	int c = peek(j);

	if (c == '[') {
		if (j->depth + 1 > MAPRESP_MAX_DEPTH)
			return fail(j, MAPRESP_E_LIMIT, "nesting depth"), -1;
		j->p++;
		j->depth++;
		return 1;
	}
	if (c == 'n')
		return literal(j, "null", 4) ? 0 : -1;
	return fail(j, bad_kind(c), what), -1;
}

/* 1: an element follows (not consumed); 0: ']' consumed; -1: error. */
static int
arr_next(struct jp *j, size_t *count)
{
	int c = peek(j);

	if (c == ']') {
		j->p++;
		j->depth--;
		return 0;
	}
	if (*count > 0) {
		if (c != ',')
			return fail(j, MAPRESP_E_SYNTAX, "expected ',' or ']'"), -1;
		j->p++;
		if (peek(j) == ']')
			return fail(j, MAPRESP_E_SYNTAX, "trailing ','"), -1;
	}
	if (j->p >= j->end)
		return fail(j, MAPRESP_E_SYNTAX, "unterminated array"), -1;
	(*count)++;
	return 1;
}

/* Field names compare ASCII case-insensitively, as in Go's encoding/json. */
static inline bool
key_is(const char *k, size_t klen, const char *name, size_t nlen)
{
	return k != NULL && klen == nlen && strncasecmp(k, name, nlen) == 0;
}
#define KEY(name) key_is(k, klen, name, sizeof(name) - 1)

/* ---- typed scalars ---- */

/* A string field: null leaves *out alone (Go: null is a no-op). */
static bool
get_str(struct jp *j, size_t max, const char **out, const char *what)
{
	const char *s;
	size_t n;
	bool nul;
	char *d;
	int c = peek(j);

	if (c == 'n')
		return literal(j, "null", 4);
	if (c != '"') {
		return fail(j, bad_kind(c), what);
	}
	s = str_parse(j, max, &n, NULL, &nul);
	if (s == NULL) {
		j->what = what;
		return false;
	}
	if (nul)
		return fail(j, MAPRESP_E_VALUE, what);
	if (n == 0) {
		*out = "";
		return true;
	}
	d = jalloc(j, n + 1, 1);
	if (d == NULL)
		return false;
	memcpy(d, s, n + 1);
	*out = d;
	return true;
}

/* Parses the decimal digits of tok as a signed 64-bit value. */
static bool
dec_i64(const char *tok, size_t n, bool allow_plus, int64_t *out)
{
	bool neg = false;
	uint64_t v = 0, lim;
	size_t i = 0;

	if (n > 0 && (tok[0] == '-' || (allow_plus && tok[0] == '+'))) {
		neg = tok[0] == '-';
		i = 1;
	}
	if (i == n)
		return false;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < n; i++) {
		unsigned int dgt = (unsigned char)tok[i] - '0';

		if (dgt > 9 || v > (lim - dgt) / 10)
			return false;
		v = v * 10 + dgt;
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}

static bool
get_i64(struct jp *j, int64_t *out, const char *what)
{
	const char *tok;
	size_t n;
	bool is_int;
	int c = peek(j);

	if (c == 'n')
		return literal(j, "null", 4);
	if (c != '-' && (c < '0' || c > '9')) {
		return fail(j, bad_kind(c), what);
	}
	if (!scan_number(j, &tok, &n, &is_int))
		return false;
	/* Go refuses 1.5 or 1e3 for an integer field. */
	if (!is_int)
		return fail(j, MAPRESP_E_TYPE, what);
	if (!dec_i64(tok, n, false, out))
		return fail(j, MAPRESP_E_VALUE, what);
	return true;
}

static bool
get_i32(struct jp *j, int32_t *out, const char *what)
{
	int64_t v = *out;

	if (!get_i64(j, &v, what))
		return false;
	if (v < INT32_MIN || v > INT32_MAX)
		return fail(j, MAPRESP_E_VALUE, what);
	*out = (int32_t)v;
	return true;
}

static bool
get_u16(struct jp *j, uint16_t *out, const char *what)
{
	int64_t v = *out;

	if (!get_i64(j, &v, what))
		return false;
	if (v < 0 || v > UINT16_MAX)
		return fail(j, MAPRESP_E_VALUE, what);
	*out = (uint16_t)v;
	return true;
}

static bool
get_double(struct jp *j, double *out, const char *what)
{
	const char *tok;
	size_t n;
	bool is_int;
	char buf[64];
	int c = peek(j);

	if (c == 'n')
		return literal(j, "null", 4);
	if (c != '-' && (c < '0' || c > '9')) {
		return fail(j, bad_kind(c), what);
	}
	if (!scan_number(j, &tok, &n, &is_int))
		return false;
	if (n >= sizeof buf)
		return fail(j, MAPRESP_E_VALUE, what);
	memcpy(buf, tok, n);
	buf[n] = '\0';
	*out = strtod(buf, NULL);
	return true;
}

/* A bool field; *set (if non-NULL) tells a value from null. */
static bool
get_bool(struct jp *j, bool *out, bool *set, const char *what)
{
	int c = peek(j);

	if (c == 't' || c == 'f') {
		if (!literal(j, c == 't' ? "true" : "false", c == 't' ? 4 : 5))
			return false;
		*out = c == 't';
		if (set != NULL)
			*set = true;
		return true;
	}
	if (c == 'n')
		return literal(j, "null", 4);
	return fail(j, bad_kind(c), what);
}

static bool
get_flag(struct jp *j, uint8_t *flags, uint8_t bit, const char *what)
{
	bool v = false, set = false;

	if (!get_bool(j, &v, &set, what))
		return false;
	if (set)
		*flags = v ? (uint8_t)(*flags | bit) : (uint8_t)(*flags & ~bit);
	return true;
}

/* A string value into j->sb (for keys, prefixes, times); NULL on error,
 * and *isnull for JSON null. */
static const char *
get_raw_str(struct jp *j, size_t max, size_t *n, bool *isnull, const char *what)
{
	const char *s;
	bool nul;
	int c = peek(j);

	*isnull = false;
	if (c == 'n') {
		*isnull = true;
		return literal(j, "null", 4) ? "" : NULL;
	}
	if (c != '"') {
		return fail(j, bad_kind(c), what), NULL;
	}
	s = str_parse(j, max, n, NULL, &nul);
	if (s == NULL) {
		j->what = what;
		return NULL;
	}
	if (nul)
		return fail(j, MAPRESP_E_VALUE, what), NULL;
	return s;
}

/*
 * "<prefix><64 hex>", the exact prefix and exactly 64 hex digits of either
 * case (types/key/util.go parseHex), through the constant-time decoder.
 * *present is set unless the value was null.
 */
static bool
get_key(struct jp *j, const char *prefix, uint8_t key[static KEY_LEN], bool *present,
    const char *what)
{
	size_t n, plen = strlen(prefix);
	bool isnull;
	const char *s = get_raw_str(j, 128, &n, &isnull, what);

	if (s == NULL)
		return false;
	if (isnull)
		return true;
	if (n != plen + 2 * KEY_LEN || memcmp(s, prefix, plen) != 0 ||
	    !key_from_hex(key, s + plen))
		return fail(j, MAPRESP_E_VALUE, what);
	if (present != NULL)
		*present = true;
	return true;
}

static bool
digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return n > 0;
}

static unsigned int
num2(const char *s)
{
	return (unsigned int)(s[0] - '0') * 10 + (unsigned int)(s[1] - '0');
}

static int64_t
days_from_civil(int64_t y, unsigned int m, unsigned int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * ((int64_t)m + (m > 2 ? -3 : 9)) + 2) / 5 + (int64_t)d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* Go's time.Time zero value, 0001-01-01T00:00:00Z, in Unix ms. */
#define GO_ZERO_TIME_MS (-62135596800000LL)

/*
 * RFC 3339 as Go's time.Time.UnmarshalJSON accepts it:
 * YYYY-MM-DDTHH:MM:SS[.1-9 digits](Z|+HH:MM|-HH:MM).  Returns Unix ms; the
 * zero time becomes 0.
 */
static bool
parse_time(const char *s, size_t n, int64_t *ms)
{
	unsigned int mon, day, hh, mi, ss, mdays;
	static const unsigned char dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int64_t year, v, frac_ms = 0;
	size_t i = 19;

	if (n < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
	    !digits(s + 8, 2) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) ||
	    s[13] != ':' || !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
		return false;
	year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	mon = num2(s + 5);
	day = num2(s + 8);
	hh = num2(s + 11);
	mi = num2(s + 14);
	ss = num2(s + 17);
	if (mon < 1 || mon > 12 || hh > 23 || mi > 59 || ss > 59)
		return false;
	mdays = dim[mon - 1];
	if (mon == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
		mdays = 29;
	if (day < 1 || day > mdays)
		return false;
	if (s[i] == '.' || s[i] == ',') {
		size_t f = ++i, nd;

		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		nd = i - f;
		if (nd < 1 || nd > 9)
			return false;
		for (size_t k = 0; k < 3; k++)
			frac_ms = frac_ms * 10 + (k < nd ? s[f + k] - '0' : 0);
	}
	v = (days_from_civil(year, mon, day) * 86400 + hh * 3600 + mi * 60 + ss) * 1000 + frac_ms;
	if (i == n - 1 && (s[i] == 'Z' || s[i] == 'z')) {
		/* UTC */
	} else if (n - i == 6 && (s[i] == '+' || s[i] == '-') && digits(s + i + 1, 2) &&
	    s[i + 3] == ':' && digits(s + i + 4, 2)) {
		unsigned int oh = num2(s + i + 1), om = num2(s + i + 4);
		int64_t off;

		if (oh > 23 || om > 59)
			return false;
		off = ((int64_t)oh * 3600 + om * 60) * 1000;
		v += s[i] == '+' ? -off : off;
	} else {
		return false;
	}
	*ms = v == GO_ZERO_TIME_MS ? 0 : v;
	return true;
}

/* A time field; null leaves *ms alone.  *present set for a non-null value. */
static bool
get_time(struct jp *j, int64_t *ms, bool *present, const char *what)
{
	size_t n;
	bool isnull;
	const char *s = get_raw_str(j, 64, &n, &isnull, what);

	if (s == NULL)
		return false;
	if (isnull)
		return true;
	if (!parse_time(s, n, ms))
		return fail(j, MAPRESP_E_VALUE, what);
	if (present != NULL)
		*present = true;
	return true;
}

static bool
parse_ip(const char *s, size_t n, uint8_t addr[16], uint8_t *family)
{
	char buf[INET6_ADDRSTRLEN + 8];

	if (n == 0 || n >= sizeof buf)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	memset(addr, 0, 16);
	if (memchr(buf, ':', n) != NULL) {
		*family = 6;
		return inet_pton(AF_INET6, buf, addr) == 1;
	}
	*family = 4;
	return inet_pton(AF_INET, buf, addr) == 1;
}

/* netip.ParsePrefix: "addr/bits", bits decimal without leading zeros. */
static bool
parse_prefix(const char *s, size_t n, struct netmap_prefix *pf)
{
	const char *slash = memchr(s, '/', n);
	size_t blen;
	unsigned int bits = 0;

	if (slash == NULL)
		return false;
	blen = n - (size_t)(slash - s) - 1;
	if (!digits(slash + 1, blen) || blen > 3 || (blen > 1 && slash[1] == '0'))
		return false;
	for (size_t i = 0; i < blen; i++)
		bits = bits * 10 + (unsigned int)(slash[1 + i] - '0');
	if (!parse_ip(s, (size_t)(slash - s), pf->addr, &pf->family))
		return false;
	if (bits > (pf->family == 4 ? 32u : 128u))
		return false;
	pf->bits = (uint8_t)bits;
	return true;
}

/* netip.ParseAddrPort: "a.b.c.d:port" or "[v6]:port".  A v6 zone
 * ("%eth0") is accepted and dropped: we have no use for it. */
static bool
parse_addrport(const char *s, size_t n, struct netmap_addrport *ap)
{
	const char *host, *colon;
	size_t hlen, plen;
	unsigned long port = 0;

	if (n > 0 && s[0] == '[') {
		const char *rb = memchr(s, ']', n), *pct;

		if (rb == NULL || rb + 1 >= s + n || rb[1] != ':')
			return false;
		host = s + 1;
		hlen = (size_t)(rb - host);
		pct = memchr(host, '%', hlen);
		if (pct != NULL) {
			if (pct + 1 == rb)
				return false;
			hlen = (size_t)(pct - host);
		}
		colon = rb + 1;
		if (memchr(host, ':', hlen) == NULL)
			return false;
	} else {
		colon = memrchr(s, ':', n);
		if (colon == NULL)
			return false;
		host = s;
		hlen = (size_t)(colon - s);
		if (memchr(host, ':', hlen) != NULL)
			return false;
	}
	plen = n - (size_t)(colon - s) - 1;
	if (!digits(colon + 1, plen) || plen > 5)
		return false;
	for (size_t i = 0; i < plen; i++)
		port = port * 10 + (unsigned long)(colon[1 + i] - '0');
	if (port > 65535)
		return false;
	if (!parse_ip(host, hlen, ap->addr, &ap->family))
		return false;
	ap->port = (uint16_t)port;
	return true;
}

static void
hash_span(uint8_t out[16], const char *start, const char *end)
{
	crypto_generichash(out, 16, (const unsigned char *)start, (size_t)(end - start), NULL, 0);
}

/* ---- arrays ---- */

union elem_buf {
	struct netmap_node node;
	struct mapresp_patch patch;
	struct netmap_derp_region region;
	struct netmap_derp_node dnode;
	struct netmap_derp_score score;
	struct netmap_filter_rule rule;
	struct netmap_dst_ports dst;
	struct netmap_dns_resolver res;
	struct netmap_dns_route route;
	struct netmap_dns_record rec;
	struct netmap_user user;
	struct mapresp_filter filt;
	struct mapresp_id_bool ib;
	struct netmap_prefix pf;
	struct netmap_addrport ap;
	const char *str;
	int64_t i64;
	int32_t i32;
};

/* Parses one element into e (zeroed); 1 = keep, 0 = drop (a null in a Go
 * slice of pointers), -1 = error. */
typedef int (*elem_fn)(struct jp *j, void *e, const char *what);

/* The elements collect on the scratch stack (nested arrays stack above and
 * pop before their parent's element is pushed) and are then copied into
 * the arena in one piece.  *present: the array was non-null. */
static bool
get_array(struct jp *j, size_t size, size_t align, size_t max, elem_fn fn, const void **out,
    uint32_t *count, bool *present, const char *what)
{
	size_t mark = j->stop, an = 0, cnt = 0;
	union elem_buf e;
	void *dst;
	int r = arr_begin(j, what);

	if (r <= 0)
		return r == 0;
	while ((r = arr_next(j, &an)) > 0) {
		memset(&e, 0, sizeof e);
		r = fn(j, &e, what);
		if (r < 0)
			return false;
		if (r == 0)
			continue;
		if (cnt >= max)
			return fail(j, MAPRESP_E_LIMIT, what);
		if (!stk_push(j, &e, size))
			return false;
		cnt++;
	}
	if (r < 0)
		return false;
	dst = NULL;
	if (cnt > 0) {
		dst = jalloc(j, cnt * size, align);
		if (dst == NULL)
			return false;
		memcpy(dst, j->stk + mark, cnt * size);
	}
	j->stop = mark;
	*out = dst;
	*count = (uint32_t)cnt;
	if (present != NULL)
		*present = true;
	return true;
}

static int
elem_prefix(struct jp *j, void *e, const char *what)
{
	size_t n;
	bool isnull;
	const char *s = get_raw_str(j, 64, &n, &isnull, what);

	if (s == NULL)
		return -1;
	if (isnull || !parse_prefix(s, n, e))
		return fail(j, isnull ? MAPRESP_E_TYPE : MAPRESP_E_VALUE, what), -1;
	return 1;
}

static int
elem_addrport(struct jp *j, void *e, const char *what)
{
	size_t n;
	bool isnull;
	const char *s = get_raw_str(j, 80, &n, &isnull, what);

	if (s == NULL)
		return -1;
	if (isnull || !parse_addrport(s, n, e))
		return fail(j, isnull ? MAPRESP_E_TYPE : MAPRESP_E_VALUE, what), -1;
	return 1;
}

/* []string: a null element is "" (Go). */
static int
elem_str(struct jp *j, void *e, const char *what)
{
	const char **s = e;

	*s = "";
	return get_str(j, MAPRESP_MAX_STRING, s, what) ? 1 : -1;
}

static int
elem_long_str(struct jp *j, void *e, const char *what)
{
	const char **s = e;

	*s = "";
	return get_str(j, MAPRESP_MAX_LONG_STRING, s, what) ? 1 : -1;
}

static int
elem_i64(struct jp *j, void *e, const char *what)
{
	return get_i64(j, e, what) ? 1 : -1;
}

static int
elem_i32(struct jp *j, void *e, const char *what)
{
	return get_i32(j, e, what) ? 1 : -1;
}

static bool
get_prefixes(struct jp *j, size_t max, const struct netmap_prefix **out, uint32_t *n,
    bool *present, const char *what)
{
	const void *p = NULL;

	if (!get_array(j, sizeof(struct netmap_prefix), 1, max, elem_prefix, &p, n, present, what))
		return false;
	*out = p;
	return true;
}

static bool
get_strings(struct jp *j, size_t max, const char *const **out, uint32_t *n, const char *what)
{
	const void *p = NULL;

	if (!get_array(j, sizeof(const char *), alignof(const char *), max, elem_str, &p, n,
	    NULL, what))
		return false;
	*out = p;
	return true;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts a string list in place and drops duplicates; returns the count. */
static uint32_t
sort_unique(const char **v, uint32_t n)
{
	uint32_t o = 0;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof *v, cmp_str);
	for (uint32_t i = 0; i < n; i++)
		if (o == 0 || strcmp(v[o - 1], v[i]) != 0)
			v[o++] = v[i];
	return o;
}

/*
 * Keys of a JSON object whose values we do not keep (CapMap: values are
 * raw JSON).  Returns sorted, unique keys.
 */
static bool
get_object_keys(struct jp *j, size_t max, const char ***out, uint32_t *count, bool *present,
    const char *what)
{
	size_t mark = j->stop, an = 0, cnt = 0;
	const char *k;
	size_t klen;
	int r = obj_begin(j, what);
	const char **dst;

	if (r <= 0)
		return r == 0;
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		char *d;

		if (k == NULL)
			return fail(j, MAPRESP_E_LIMIT, what);
		if (cnt >= max)
			return fail(j, MAPRESP_E_LIMIT, what);
		d = jalloc(j, klen + 1, 1);
		if (d == NULL)
			return false;
		memcpy(d, k, klen + 1);
		if (!stk_push(j, &d, sizeof d) || !skip_value(j))
			return false;
		cnt++;
	}
	if (r < 0)
		return false;
	dst = jalloc(j, cnt * sizeof *dst, alignof(const char *));
	if (dst == NULL)
		return false;
	memcpy(dst, j->stk + mark, cnt * sizeof *dst);
	j->stop = mark;
	*out = dst;
	*count = sort_unique(dst, (uint32_t)cnt);
	*present = true;
	return true;
}

/* Map keys that are Go integers (NodeID, region ID): strconv.ParseInt. */
static bool
key_int(struct jp *j, const char *k, size_t klen, int64_t *v, const char *what)
{
	if (k == NULL || !dec_i64(k, klen, true, v))
		return fail(j, MAPRESP_E_VALUE, what);
	return true;
}

/* ---- tailcfg.Node ---- */

static bool
hostinfo_parse(struct jp *j, struct netmap_node *n)
{
	size_t an = 0, klen;
	const char *k;
	int r = obj_begin(j, "Hostinfo");

	if (r <= 0)
		return r == 0;
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		bool ok;

		if (KEY("Hostname"))
			ok = get_str(j, MAPRESP_MAX_STRING, &n->hostname, "Hostinfo.Hostname");
		else if (KEY("OS"))
			ok = get_str(j, MAPRESP_MAX_STRING, &n->os, "Hostinfo.OS");
		else
			ok = skip_value(j);
		if (!ok)
			return false;
	}
	return r == 0;
}

/* Legacy "DERP": "127.3.3.40:N" (map.go upgradeNode: tailcfg.DerpMagicIP
 * and a port that strconv.Atoi accepts). */
static void
legacy_derp(struct netmap_node *n, const char *s)
{
	static const char magic[] = "127.3.3.40:";
	int64_t v;

	if (n->home_derp != 0 || strncmp(s, magic, sizeof magic - 1) != 0)
		return;
	s += sizeof magic - 1;
	if (dec_i64(s, strlen(s), true, &v) && v >= INT32_MIN && v <= INT32_MAX)
		n->home_derp = (int32_t)v;
}

static bool
node_parse(struct jp *j, struct netmap_node *n, const char *what)
{
	size_t an = 0, klen;
	const char *k, *legacy = NULL;
	const char **capmap = NULL, *const *caplist = NULL;
	uint32_t n_capmap = 0, n_caplist = 0, n32;
	bool have_allowed = false, have_capmap = false, online = false, online_set = false;
	const void *p;
	int r;

	n->stable_id = n->name = n->hostname = n->os = "";
	r = obj_begin(j, what);
	if (r == 0)
		return fail(j, MAPRESP_E_TYPE, what);	/* callers take null first */
	if (r < 0)
		return false;
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		bool ok;

		if (KEY("ID"))
			ok = get_i64(j, &n->id, "Node.ID");
		else if (KEY("StableID"))
			ok = get_str(j, MAPRESP_MAX_STRING, &n->stable_id, "Node.StableID");
		else if (KEY("Name"))
			ok = get_str(j, MAPRESP_MAX_STRING, &n->name, "Node.Name");
		else if (KEY("User"))
			ok = get_i64(j, &n->user, "Node.User");
		else if (KEY("Key"))
			ok = get_key(j, "nodekey:", n->key, NULL, "Node.Key");
		else if (KEY("KeyExpiry"))
			ok = get_time(j, &n->key_expiry, NULL, "Node.KeyExpiry");
		else if (KEY("Machine"))
			ok = get_key(j, "mkey:", n->machine, NULL, "Node.Machine");
		else if (KEY("DiscoKey"))
			ok = get_key(j, "discokey:", n->disco, NULL, "Node.DiscoKey");
		else if (KEY("Addresses")) {
			ok = get_prefixes(j, MAPRESP_MAX_ADDRS, &n->addrs, &n32, NULL,
			    "Node.Addresses");
			n->n_addrs = (uint8_t)n32;
		} else if (KEY("AllowedIPs"))
			ok = get_prefixes(j, MAPRESP_MAX_ROUTES, &n->allowed_ips, &n->n_allowed_ips,
			    &have_allowed, "Node.AllowedIPs");
		else if (KEY("PrimaryRoutes"))
			ok = get_prefixes(j, MAPRESP_MAX_ROUTES, &n->primary_routes,
			    &n->n_primary_routes, NULL, "Node.PrimaryRoutes");
		else if (KEY("Endpoints")) {
			p = NULL;
			n32 = 0;
			ok = get_array(j, sizeof(struct netmap_addrport),
			    alignof(struct netmap_addrport),
			    MAPRESP_MAX_ENDPOINTS, elem_addrport, &p, &n32, NULL, "Node.Endpoints");
			n->endpoints = p;
			n->n_endpoints = (uint16_t)n32;
		} else if (KEY("DERP"))
			ok = get_str(j, MAPRESP_MAX_STRING, &legacy, "Node.DERP");
		else if (KEY("HomeDERP"))
			ok = get_i32(j, &n->home_derp, "Node.HomeDERP");
		else if (KEY("Hostinfo"))
			ok = hostinfo_parse(j, n);
		else if (KEY("Created"))
			ok = get_time(j, &n->created, NULL, "Node.Created");
		else if (KEY("Cap"))
			ok = get_i32(j, &n->cap, "Node.Cap");
		else if (KEY("Tags")) {
			const char *const *t = NULL;

			n32 = 0;
			ok = get_strings(j, MAPRESP_MAX_CAPS, &t, &n32, "Node.Tags");
			n->tags = t;
			n->n_tags = (uint16_t)n32;
		} else if (KEY("LastSeen")) {
			bool set = false;
			int64_t v = 0;

			ok = get_time(j, &v, &set, "Node.LastSeen");
			n->last_seen = v;
		} else if (KEY("Online")) {
			online_set = false;
			ok = get_bool(j, &online, &online_set, "Node.Online");
			n->online = online_set ? (online ? NETMAP_ONLINE_YES : NETMAP_ONLINE_NO) :
			    NETMAP_ONLINE_UNKNOWN;
		} else if (KEY("MachineAuthorized"))
			ok = get_flag(j, &n->flags, NETMAP_NODE_AUTHORIZED,
			    "Node.MachineAuthorized");
		else if (KEY("Expired"))
			ok = get_flag(j, &n->flags, NETMAP_NODE_EXPIRED, "Node.Expired");
		else if (KEY("UnsignedPeerAPIOnly"))
			ok = get_flag(j, &n->flags, NETMAP_NODE_UNSIGNED_PEERAPI,
			    "Node.UnsignedPeerAPIOnly");
		else if (KEY("IsWireGuardOnly"))
			ok = get_flag(j, &n->flags, NETMAP_NODE_WIREGUARD_ONLY,
			    "Node.IsWireGuardOnly");
		else if (KEY("IsJailed"))
			ok = get_flag(j, &n->flags, NETMAP_NODE_JAILED, "Node.IsJailed");
		else if (KEY("Capabilities"))
			ok = get_strings(j, MAPRESP_MAX_CAPS, &caplist, &n_caplist,
			    "Node.Capabilities");
		else if (KEY("CapMap"))
			ok = get_object_keys(j, MAPRESP_MAX_CAPS, &capmap, &n_capmap, &have_capmap,
			    "Node.CapMap");
		else	/* incl. ComputedName*, which are the client's to compute */
			ok = skip_value(j);
		if (!ok)
			return false;
	}
	if (r < 0)
		return false;

	/* map.go upgradeNode. */
	if (legacy != NULL)
		legacy_derp(n, legacy);
	if (!have_allowed) {
		n->allowed_ips = n->addrs;
		n->n_allowed_ips = n->n_addrs;
	}
	/* map.go: old servers' Capabilities become CapMap keys. */
	if (n_caplist > 0) {
		const char **all;

		if (n_capmap + n_caplist > MAPRESP_MAX_CAPS)
			return fail(j, MAPRESP_E_LIMIT, "Node.Capabilities");
		all = jalloc(j, (n_capmap + n_caplist) * sizeof *all, alignof(const char *));
		if (all == NULL)
			return false;
		if (n_capmap > 0)
			memcpy(all, capmap, n_capmap * sizeof *all);
		memcpy(all + n_capmap, caplist, n_caplist * sizeof *all);
		capmap = all;
		n_capmap = sort_unique(all, n_capmap + n_caplist);
	}
	n->caps = capmap;
	n->n_caps = (uint16_t)n_capmap;
	return true;
}

static int
elem_node(struct jp *j, void *e, const char *what)
{
	if (take_null(j))
		return j->err ? -1 : 0;
	return node_parse(j, e, what) ? 1 : -1;
}

/* ---- tailcfg.PeerChange ---- */

static int
elem_patch(struct jp *j, void *e, const char *what)
{
	struct mapresp_patch *pc = e;
	size_t an = 0, klen;
	const char *k;
	int r;

	if (take_null(j))
		return j->err ? -1 : 0;
	r = obj_begin(j, what);
	if (r <= 0)
		return -1;
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		bool ok, set = false;

		if (KEY("NodeID"))
			ok = get_i64(j, &pc->node_id, "PeersChangedPatch.NodeID");
		else if (KEY("DERPRegion")) {
			ok = get_i32(j, &pc->derp_region, "PeersChangedPatch.DERPRegion");
			/* map.go applies DERPRegion and Cap only when non-zero. */
			pc->has = pc->derp_region != 0 ? pc->has | MAPRESP_PATCH_DERP :
			    pc->has & ~(uint32_t)MAPRESP_PATCH_DERP;
		} else if (KEY("Cap")) {
			ok = get_i32(j, &pc->cap, "PeersChangedPatch.Cap");
			pc->has = pc->cap != 0 ? pc->has | MAPRESP_PATCH_CAP :
			    pc->has & ~(uint32_t)MAPRESP_PATCH_CAP;
		} else if (KEY("CapMap")) {
			const char **keys = NULL;
			uint32_t n32 = 0;

			ok = get_object_keys(j, MAPRESP_MAX_CAPS, &keys, &n32, &set,
			    "PeersChangedPatch.CapMap");
			if (set) {
				pc->caps = keys;
				pc->n_caps = (uint16_t)n32;
				pc->has |= MAPRESP_PATCH_CAPMAP;
			}
		} else if (KEY("Endpoints")) {
			const void *p = NULL;
			uint32_t n32 = 0;

			ok = get_array(j, sizeof(struct netmap_addrport),
			    alignof(struct netmap_addrport),
			    MAPRESP_MAX_ENDPOINTS, elem_addrport, &p, &n32, &set,
			    "PeersChangedPatch.Endpoints");
			if (set) {
				pc->endpoints = p;
				pc->n_endpoints = (uint16_t)n32;
				pc->has |= MAPRESP_PATCH_ENDPOINTS;
			}
		} else if (KEY("Key")) {
			ok = get_key(j, "nodekey:", pc->key, &set, "PeersChangedPatch.Key");
			if (set)
				pc->has |= MAPRESP_PATCH_KEY;
		} else if (KEY("DiscoKey")) {
			ok = get_key(j, "discokey:", pc->disco, &set, "PeersChangedPatch.DiscoKey");
			if (set)
				pc->has |= MAPRESP_PATCH_DISCO;
		} else if (KEY("Online")) {
			ok = get_bool(j, &pc->online, &set, "PeersChangedPatch.Online");
			if (set)
				pc->has |= MAPRESP_PATCH_ONLINE;
		} else if (KEY("LastSeen")) {
			ok = get_time(j, &pc->last_seen, &set, "PeersChangedPatch.LastSeen");
			if (set)
				pc->has |= MAPRESP_PATCH_LAST_SEEN;
		} else if (KEY("KeyExpiry")) {
			ok = get_time(j, &pc->key_expiry, &set, "PeersChangedPatch.KeyExpiry");
			if (set)
				pc->has |= MAPRESP_PATCH_KEY_EXPIRY;
		} else
			ok = skip_value(j);	/* KeySignature: no TKA here */
		if (!ok)
			return -1;
	}
	return r == 0 ? 1 : -1;
}

/* OnlineChange / PeerSeenChange: {"<NodeID>": bool}; null is false (Go
 * stores the zero value for a null map element). */
static bool
get_id_bools(struct jp *j, const struct mapresp_id_bool **out, uint32_t *count, const char *what)
{
	size_t mark = j->stop, an = 0, cnt = 0, klen;
	const char *k;
	struct mapresp_id_bool *dst;
	int r = obj_begin(j, what);

	if (r <= 0)
		return r == 0;
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		struct mapresp_id_bool e = { 0, false };

		if (cnt >= MAPRESP_MAX_NODES)
			return fail(j, MAPRESP_E_LIMIT, what);
		if (!key_int(j, k, klen, &e.id, what) || !get_bool(j, &e.value, NULL, what) ||
		    !stk_push(j, &e, sizeof e))
			return false;
		cnt++;
	}
	if (r < 0)
		return false;
	dst = jalloc(j, cnt * sizeof *dst, alignof(struct mapresp_id_bool));
	if (dst == NULL)
		return false;
	memcpy(dst, j->stk + mark, cnt * sizeof *dst);
	j->stop = mark;
	*out = dst;
	*count = (uint32_t)cnt;
	return true;
}

/* ---- sorting map entries: Go maps keep the last of duplicate keys ---- */

struct sort_ctx {
	const unsigned char *base;
	size_t size;
	int (*cmp)(const void *, const void *);
};

static int
cmp_idx(const void *a, const void *b, void *arg)
{
	const struct sort_ctx *c = arg;
	uint32_t ia = *(const uint32_t *)a, ib = *(const uint32_t *)b;
	int r = c->cmp(c->base + ia * c->size, c->base + ib * c->size);

	if (r != 0)
		return r;
	return ia < ib ? -1 : ia > ib;
}

/* Sorts n elements of base by cmp into a new arena array, keeping only the
 * last occurrence of equal keys.  Returns the new count, or -1. */
static int64_t
sort_last_wins(struct jp *j, const void *base, size_t n, size_t size, size_t align,
    int (*cmp)(const void *, const void *), void **out)
{
	struct sort_ctx c = { base, size, cmp };
	uint32_t *idx;
	unsigned char *dst;
	size_t o = 0;

	*out = NULL;
	if (n == 0)
		return 0;
	idx = malloc(n * sizeof *idx);
	if (idx == NULL)
		return fail(j, MAPRESP_E_NOMEM, "sort"), -1;
	for (size_t i = 0; i < n; i++)
		idx[i] = (uint32_t)i;
	qsort_r(idx, n, sizeof *idx, cmp_idx, &c);
	dst = jalloc(j, n * size, align);
	if (dst == NULL) {
		free(idx);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && cmp(c.base + idx[i] * size, c.base + idx[i + 1] * size) == 0)
			continue;
		memcpy(dst + o * size, c.base + idx[i] * size, size);
		o++;
	}
	free(idx);
	*out = dst;
	return (int64_t)o;
}

/* ---- DERPMap ---- */

static int
elem_derp_node(struct jp *j, void *e, const char *what)
{
	struct netmap_derp_node *dn = e;
	size_t an = 0, klen;
	const char *k;
	int r;

	if (take_null(j))
		return j->err ? -1 : 0;
	dn->name = dn->hostname = dn->cert_name = dn->ipv4 = dn->ipv6 = "";
	r = obj_begin(j, what);
	if (r <= 0)
		return -1;
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		bool ok;

		if (KEY("Name"))
			ok = get_str(j, MAPRESP_MAX_STRING, &dn->name, "DERPNode.Name");
		else if (KEY("RegionID"))
			ok = get_i32(j, &dn->region_id, "DERPNode.RegionID");
		else if (KEY("HostName"))
			ok = get_str(j, MAPRESP_MAX_STRING, &dn->hostname, "DERPNode.HostName");
		else if (KEY("CertName"))
			ok = get_str(j, MAPRESP_MAX_STRING, &dn->cert_name, "DERPNode.CertName");
		else if (KEY("IPv4"))
			ok = get_str(j, MAPRESP_MAX_STRING, &dn->ipv4, "DERPNode.IPv4");
		else if (KEY("IPv6"))
			ok = get_str(j, MAPRESP_MAX_STRING, &dn->ipv6, "DERPNode.IPv6");
		else if (KEY("STUNPort"))
			ok = get_i32(j, &dn->stun_port, "DERPNode.STUNPort");
		else if (KEY("DERPPort"))
			ok = get_i32(j, &dn->derp_port, "DERPNode.DERPPort");
		else if (KEY("STUNOnly"))
			ok = get_flag(j, &dn->flags, NETMAP_DERP_STUN_ONLY, "DERPNode.STUNOnly");
		else if (KEY("InsecureForTests"))
			ok = get_flag(j, &dn->flags, NETMAP_DERP_INSECURE_FOR_TESTS,
			    "DERPNode.InsecureForTests");
		else if (KEY("CanPort80"))
			ok = get_flag(j, &dn->flags, NETMAP_DERP_CAN_PORT_80, "DERPNode.CanPort80");
		else
			ok = skip_value(j);
		if (!ok)
			return -1;
	}
	return r == 0 ? 1 : -1;
}

/* 1 = region parsed, 0 = null region (dropped, as map.go does), -1 error. */
static int
region_parse(struct jp *j, struct netmap_derp_region *rg)
{
	size_t an = 0, klen;
	const char *k;
	int r;

	if (take_null(j))
		return j->err ? -1 : 0;
	rg->code = rg->name = "";
	r = obj_begin(j, "DERPRegion");
	if (r <= 0)
		return -1;
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		bool ok;

		if (KEY("RegionCode"))
			ok = get_str(j, MAPRESP_MAX_STRING, &rg->code, "DERPRegion.RegionCode");
		else if (KEY("RegionName"))
			ok = get_str(j, MAPRESP_MAX_STRING, &rg->name, "DERPRegion.RegionName");
		else if (KEY("RegionID")) {
			int32_t ignored = 0;	/* identity is the Regions map key */

			ok = get_i32(j, &ignored, "DERPRegion.RegionID");
		} else if (KEY("Avoid"))
			ok = get_flag(j, &rg->flags, NETMAP_DERP_REGION_AVOID, "DERPRegion.Avoid");
		else if (KEY("NoMeasureNoHome"))
			ok = get_flag(j, &rg->flags, NETMAP_DERP_REGION_NO_MEASURE_NO_HOME,
			    "DERPRegion.NoMeasureNoHome");
		else if (KEY("Nodes")) {
			const void *p = NULL;

			ok = get_array(j, sizeof(struct netmap_derp_node),
			    alignof(struct netmap_derp_node),
			    MAPRESP_MAX_DERP_NODES, elem_derp_node, &p, &rg->n_nodes, NULL,
			    "DERPRegion.Nodes");
			rg->nodes = p;
		} else
			ok = skip_value(j);
		if (!ok)
			return -1;
	}
	return r == 0 ? 1 : -1;
}

static int
cmp_region(const void *a, const void *b)
{
	int32_t x = ((const struct netmap_derp_region *)a)->region_id;
	int32_t y = ((const struct netmap_derp_region *)b)->region_id;

	return x < y ? -1 : x > y;
}

static int
cmp_score(const void *a, const void *b)
{
	int32_t x = ((const struct netmap_derp_score *)a)->region_id;
	int32_t y = ((const struct netmap_derp_score *)b)->region_id;

	return x < y ? -1 : x > y;
}

static bool
region_id_key(struct jp *j, const char *k, size_t klen, int32_t *id, const char *what)
{
	int64_t v;

	if (!key_int(j, k, klen, &v, what))
		return false;
	if (v < INT32_MIN || v > INT32_MAX)
		return fail(j, MAPRESP_E_VALUE, what);
	*id = (int32_t)v;
	return true;
}

static bool
regions_parse(struct jp *j, struct mapresp_derp *d)
{
	size_t mark = j->stop, an = 0, cnt = 0, klen;
	const char *k, *start;
	void *sorted;
	int64_t n;
	int r;

	peek(j);
	start = j->p;
	r = obj_begin(j, "DERPMap.Regions");
	if (r <= 0)
		return r == 0;
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		struct netmap_derp_region rg;
		int32_t id;

		memset(&rg, 0, sizeof rg);
		if (!region_id_key(j, k, klen, &id, "DERPMap.Regions"))
			return false;
		r = region_parse(j, &rg);
		if (r < 0)
			return false;
		if (r == 0)
			continue;
		if (cnt >= MAPRESP_MAX_DERP_REGIONS)
			return fail(j, MAPRESP_E_LIMIT, "DERPMap.Regions");
		rg.region_id = id;
		if (!stk_push(j, &rg, sizeof rg))
			return false;
		cnt++;
	}
	if (r < 0)
		return false;
	n = sort_last_wins(j, j->stk + mark, cnt, sizeof(struct netmap_derp_region),
	    alignof(struct netmap_derp_region), cmp_region, &sorted);
	if (n < 0)
		return false;
	j->stop = mark;
	d->map.regions = sorted;
	d->map.n_regions = (uint32_t)n;
	d->has_regions = true;
	hash_span(d->regions_hash, start, j->p);
	return true;
}

static bool
home_params_parse(struct jp *j, struct mapresp_derp *d)
{
	size_t an = 0, klen;
	const char *k;
	int r = obj_begin(j, "DERPMap.HomeParams");

	if (r <= 0)
		return r == 0;
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		if (KEY("RegionScore")) {
			size_t mark = j->stop, sn = 0, cnt = 0, sklen;
			const char *sk, *start;
			void *sorted;
			int64_t n;

			peek(j);
			start = j->p;
			r = obj_begin(j, "HomeParams.RegionScore");
			if (r < 0)
				return false;
			if (r == 0)
				continue;
			while ((r = obj_next(j, &sn, &sk, &sklen)) > 0) {
				struct netmap_derp_score sc = { 0, 0 };

				if (cnt >= MAPRESP_MAX_DERP_REGIONS)
					return fail(j, MAPRESP_E_LIMIT, "HomeParams.RegionScore");
				if (!region_id_key(j, sk, sklen, &sc.region_id,
				    "HomeParams.RegionScore") ||
				    !get_double(j, &sc.score, "HomeParams.RegionScore") ||
				    !stk_push(j, &sc, sizeof sc))
					return false;
				cnt++;
			}
			if (r < 0)
				return false;
			n = sort_last_wins(j, j->stk + mark, cnt, sizeof(struct netmap_derp_score),
			    alignof(struct netmap_derp_score), cmp_score, &sorted);
			if (n < 0)
				return false;
			j->stop = mark;
			d->map.scores = sorted;
			d->map.n_scores = (uint32_t)n;
			d->has_scores = true;
			hash_span(d->scores_hash, start, j->p);
		} else if (!skip_value(j)) {
			return false;
		}
	}
	return r == 0;
}

static bool
derp_parse(struct jp *j, const struct mapresp_derp **out)
{
	struct mapresp_derp *d;
	size_t an = 0, klen;
	const char *k;
	bool omit = false;
	int r = obj_begin(j, "DERPMap");

	if (r <= 0)
		return r == 0;
	d = jzalloc(j, sizeof *d, alignof(struct mapresp_derp));
	if (d == NULL)
		return false;
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		bool ok;

		if (KEY("Regions"))
			ok = regions_parse(j, d);
		else if (KEY("HomeParams"))
			ok = home_params_parse(j, d);
		else if (KEY("omitDefaultRegions"))
			ok = get_bool(j, &omit, NULL, "DERPMap.omitDefaultRegions");
		else
			ok = skip_value(j);
		if (!ok)
			return false;
	}
	if (r < 0)
		return false;
	d->map.omit_default_regions = omit;
	*out = d;
	return true;
}

/* ---- DNSConfig ---- */

static int
elem_resolver(struct jp *j, void *e, const char *what)
{
	struct netmap_dns_resolver *res = e;
	size_t an = 0, klen;
	const char *k;
	int r;

	if (take_null(j))
		return j->err ? -1 : 0;
	res->addr = "";
	r = obj_begin(j, what);
	if (r <= 0)
		return -1;
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		bool ok;

		if (KEY("Addr"))
			ok = get_str(j, MAPRESP_MAX_STRING, &res->addr, "Resolver.Addr");
		else if (KEY("UseWithExitNode"))
			ok = get_bool(j, &res->use_with_exit_node, NULL,
			    "Resolver.UseWithExitNode");
		else
			ok = skip_value(j);
		if (!ok)
			return -1;
	}
	return r == 0 ? 1 : -1;
}

static bool
get_resolvers(struct jp *j, const struct netmap_dns_resolver **out, uint32_t *n, const char *what)
{
	const void *p = NULL;

	if (!get_array(j, sizeof(struct netmap_dns_resolver), alignof(struct netmap_dns_resolver),
	    MAPRESP_MAX_DNS_LIST, elem_resolver, &p, n, NULL, what))
		return false;
	*out = p;
	return true;
}

static int
elem_record(struct jp *j, void *e, const char *what)
{
	struct netmap_dns_record *rec = e;
	size_t an = 0, klen;
	const char *k;
	int r;

	if (take_null(j))
		return j->err ? -1 : 0;
	rec->name = rec->type = rec->value = "";
	r = obj_begin(j, what);
	if (r <= 0)
		return -1;
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		bool ok;

		if (KEY("Name"))
			ok = get_str(j, MAPRESP_MAX_STRING, &rec->name, "DNSRecord.Name");
		else if (KEY("Type"))
			ok = get_str(j, MAPRESP_MAX_STRING, &rec->type, "DNSRecord.Type");
		else if (KEY("Value"))
			ok = get_str(j, MAPRESP_MAX_STRING, &rec->value, "DNSRecord.Value");
		else
			ok = skip_value(j);
		if (!ok)
			return -1;
	}
	return r == 0 ? 1 : -1;
}

static int
cmp_route(const void *a, const void *b)
{
	return strcmp(((const struct netmap_dns_route *)a)->suffix,
	    ((const struct netmap_dns_route *)b)->suffix);
}

static bool
routes_parse(struct jp *j, struct netmap_dns_config *dc)
{
	size_t mark = j->stop, an = 0, cnt = 0, klen;
	const char *k;
	void *sorted;
	int64_t n;
	int r = obj_begin(j, "DNSConfig.Routes");

	if (r <= 0)
		return r == 0;
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		struct netmap_dns_route rt = { "", 0, NULL };
		char *d;

		if (k == NULL)
			return fail(j, MAPRESP_E_LIMIT, "DNSConfig.Routes");
		if (cnt >= MAPRESP_MAX_DNS_ROUTES)
			return fail(j, MAPRESP_E_LIMIT, "DNSConfig.Routes");
		d = jalloc(j, klen + 1, 1);
		if (d == NULL)
			return false;
		memcpy(d, k, klen + 1);
		rt.suffix = d;
		if (!get_resolvers(j, &rt.resolvers, &rt.n_resolvers, "DNSConfig.Routes") ||
		    !stk_push(j, &rt, sizeof rt))
			return false;
		cnt++;
	}
	if (r < 0)
		return false;
	n = sort_last_wins(j, j->stk + mark, cnt, sizeof(struct netmap_dns_route),
	    alignof(struct netmap_dns_route), cmp_route, &sorted);
	if (n < 0)
		return false;
	j->stop = mark;
	dc->routes = sorted;
	dc->n_routes = (uint32_t)n;
	return true;
}

static bool
dns_parse(struct jp *j, struct mapresp *mr)
{
	struct netmap_dns_config *dc;
	size_t an = 0, klen;
	const char *k, *start;
	int r;

	peek(j);
	start = j->p;
	r = obj_begin(j, "DNSConfig");
	if (r <= 0)
		return r == 0;
	dc = jzalloc(j, sizeof *dc, alignof(struct netmap_dns_config));
	if (dc == NULL)
		return false;
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		bool ok;

		if (KEY("Resolvers"))
			ok = get_resolvers(j, &dc->resolvers, &dc->n_resolvers,
			    "DNSConfig.Resolvers");
		else if (KEY("FallbackResolvers"))
			ok = get_resolvers(j, &dc->fallback, &dc->n_fallback,
			    "DNSConfig.FallbackResolvers");
		else if (KEY("Routes"))
			ok = routes_parse(j, dc);
		else if (KEY("Domains"))
			ok = get_strings(j, MAPRESP_MAX_DNS_LIST, &dc->domains, &dc->n_domains,
			    "DNSConfig.Domains");
		else if (KEY("Proxied"))
			ok = get_bool(j, &dc->proxied, NULL, "DNSConfig.Proxied");
		else if (KEY("ExtraRecords")) {
			const void *p = NULL;

			ok = get_array(j, sizeof(struct netmap_dns_record),
			    alignof(struct netmap_dns_record),
			    MAPRESP_MAX_DNS_RECORDS, elem_record, &p, &dc->n_records, NULL,
			    "DNSConfig.ExtraRecords");
			dc->records = p;
		} else if (KEY("CertDomains"))
			ok = get_strings(j, MAPRESP_MAX_DNS_LIST, &dc->cert_domains,
			    &dc->n_cert_domains,
			    "DNSConfig.CertDomains");
		else
			ok = skip_value(j);
		if (!ok)
			return false;
	}
	if (r < 0)
		return false;
	hash_span(mr->dns_hash, start, j->p);
	mr->dns = dc;
	return true;
}

/* ---- FilterRule ---- */

static int
elem_dst(struct jp *j, void *e, const char *what)
{
	struct netmap_dst_ports *dp = e;
	size_t an = 0, klen;
	const char *k;
	int r;

	if (take_null(j))
		return j->err ? -1 : 0;
	dp->ip = "";
	dp->bits = -1;
	r = obj_begin(j, what);
	if (r <= 0)
		return -1;
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		bool ok;

		if (KEY("IP"))
			ok = get_str(j, MAPRESP_MAX_STRING, &dp->ip, "DstPorts.IP");
		else if (KEY("Bits"))
			ok = get_i32(j, &dp->bits, "DstPorts.Bits");
		else if (KEY("Ports")) {
			size_t pn = 0, pklen;
			const char *pk;

			r = obj_begin(j, "DstPorts.Ports");
			if (r < 0)
				return -1;
			while (r > 0 && (r = obj_next(j, &pn, &pk, &pklen)) > 0) {
				if (key_is(pk, pklen, "First", 5))
					ok = get_u16(j, &dp->ports.first, "Ports.First");
				else if (key_is(pk, pklen, "Last", 4))
					ok = get_u16(j, &dp->ports.last, "Ports.Last");
				else
					ok = skip_value(j);
				if (!ok)
					return -1;
			}
			ok = r == 0;
		} else
			ok = skip_value(j);
		if (!ok)
			return -1;
	}
	return r == 0 ? 1 : -1;
}

static int
elem_rule(struct jp *j, void *e, const char *what)
{
	struct netmap_filter_rule *fr = e;
	size_t an = 0, klen;
	const char *k;
	const void *p;
	int r;

	if (take_null(j))
		return j->err ? -1 : 0;
	r = obj_begin(j, what);
	if (r <= 0)
		return -1;
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		bool ok;

		p = NULL;
		if (KEY("SrcIPs")) {
			ok = get_array(j, sizeof(const char *), alignof(const char *),
			    MAPRESP_MAX_RULE_LIST,
			    elem_str, &p, &fr->n_src_ips, NULL, "FilterRule.SrcIPs");
			fr->src_ips = p;
		} else if (KEY("SrcBits")) {
			ok = get_array(j, sizeof(int32_t), alignof(int32_t), MAPRESP_MAX_RULE_LIST,
			    elem_i32, &p, &fr->n_src_bits, NULL, "FilterRule.SrcBits");
			fr->src_bits = p;
		} else if (KEY("DstPorts")) {
			ok = get_array(j, sizeof(struct netmap_dst_ports),
			    alignof(struct netmap_dst_ports),
			    MAPRESP_MAX_RULE_LIST, elem_dst, &p, &fr->n_dst_ports, NULL,
			    "FilterRule.DstPorts");
			fr->dst_ports = p;
		} else if (KEY("IPProto")) {
			ok = get_array(j, sizeof(int32_t), alignof(int32_t), MAPRESP_MAX_IPPROTO,
			    elem_i32, &p, &fr->n_ip_proto, NULL, "FilterRule.IPProto");
			fr->ip_proto = p;
		} else if (KEY("CapGrant")) {
			/* App-level grants (tailcfg.CapGrant) are not packet
			 * permits; agent/filter only needs to know they exist. */
			size_t cn = 0;

			r = arr_begin(j, "FilterRule.CapGrant");
			while (r > 0 && (r = arr_next(j, &cn)) > 0)
				if (!skip_value(j))
					return -1;
			ok = r == 0;
			if (cn > 0)
				fr->cap_grant = true;
		} else
			ok = skip_value(j);
		if (!ok)
			return -1;
	}
	return r == 0 ? 1 : -1;
}

static bool
get_rules(struct jp *j, const struct netmap_filter_rule **out, uint32_t *n, bool *present,
    const char *what)
{
	const void *p = NULL;

	if (!get_array(j, sizeof(struct netmap_filter_rule), alignof(struct netmap_filter_rule),
	    MAPRESP_MAX_RULES, elem_rule, &p, n, present, what))
		return false;
	*out = p;
	return true;
}

static bool
packet_filters_parse(struct jp *j, struct mapresp *mr)
{
	size_t mark = j->stop, an = 0, cnt = 0, klen;
	const char *k;
	struct mapresp_filter *dst;
	int r = obj_begin(j, "PacketFilters");

	if (r <= 0)
		return r == 0;
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		struct mapresp_filter f;
		const char *start;
		bool present = false;
		char *d;

		memset(&f, 0, sizeof f);
		if (k == NULL || cnt >= MAPRESP_MAX_FILTERS)
			return fail(j, MAPRESP_E_LIMIT, "PacketFilters");
		d = jalloc(j, klen + 1, 1);
		if (d == NULL)
			return false;
		memcpy(d, k, klen + 1);
		f.name = d;
		peek(j);
		start = j->p;
		if (!get_rules(j, &f.rules, &f.n_rules, &present, "PacketFilters"))
			return false;
		f.is_null = !present;
		hash_span(f.hash, start, j->p);
		if (!stk_push(j, &f, sizeof f))
			return false;
		cnt++;
	}
	if (r < 0)
		return false;
	/* Kept in message order: netmap_apply() needs Go's map semantics
	 * (last duplicate wins, "*": null first), which order gives it. */
	dst = jalloc(j, cnt * sizeof *dst, alignof(struct mapresp_filter));
	if (dst == NULL)
		return false;
	memcpy(dst, j->stk + mark, cnt * sizeof *dst);
	j->stop = mark;
	mr->packet_filters = dst;
	mr->n_packet_filters = (uint32_t)cnt;
	mr->has |= MAPRESP_HAS_PACKET_FILTERS;
	return true;
}

/* ---- UserProfiles, PingRequest ---- */

static int
elem_user(struct jp *j, void *e, const char *what)
{
	struct netmap_user *u = e;
	size_t an = 0, klen;
	const char *k;
	int r;

	if (take_null(j))
		return j->err ? -1 : 0;
	u->login_name = u->display_name = "";
	r = obj_begin(j, what);
	if (r <= 0)
		return -1;
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		bool ok;

		if (KEY("ID"))
			ok = get_i64(j, &u->id, "UserProfile.ID");
		else if (KEY("LoginName"))
			ok = get_str(j, MAPRESP_MAX_STRING, &u->login_name,
			    "UserProfile.LoginName");
		else if (KEY("DisplayName"))
			ok = get_str(j, MAPRESP_MAX_STRING, &u->display_name,
			    "UserProfile.DisplayName");
		else
			ok = skip_value(j);
		if (!ok)
			return -1;
	}
	return r == 0 ? 1 : -1;
}

static bool
ping_parse(struct jp *j, struct mapresp *mr)
{
	struct mapresp_ping *pr;
	size_t an = 0, klen;
	const char *k;
	int r = obj_begin(j, "PingRequest");

	if (r <= 0)
		return r == 0;
	pr = jzalloc(j, sizeof *pr, alignof(struct mapresp_ping));
	if (pr == NULL)
		return false;
	pr->url = pr->types = pr->ip = "";
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		bool ok;

		if (KEY("URL"))
			ok = get_str(j, MAPRESP_MAX_LONG_STRING, &pr->url, "PingRequest.URL");
		else if (KEY("URLIsNoise"))
			ok = get_bool(j, &pr->url_is_noise, NULL, "PingRequest.URLIsNoise");
		else if (KEY("Log"))
			ok = get_bool(j, &pr->log, NULL, "PingRequest.Log");
		else if (KEY("Types"))
			ok = get_str(j, MAPRESP_MAX_STRING, &pr->types, "PingRequest.Types");
		else if (KEY("IP"))
			ok = get_str(j, MAPRESP_MAX_STRING, &pr->ip, "PingRequest.IP");
		else
			ok = skip_value(j);
		if (!ok)
			return false;
	}
	if (r < 0)
		return false;
	mr->ping = pr;
	return true;
}

/* A present, non-null value we do not decode (SSHPolicy, Debug). */
static bool
skip_present(struct jp *j, struct mapresp *mr, uint32_t bit)
{
	if (take_null(j))
		return j->err == 0;
	if (j->err != 0 || !skip_value(j))
		return false;
	mr->has |= bit;
	return true;
}

/* ---- MapResponse ---- */

static bool
mapresp_parse(struct jp *j, struct mapresp *mr)
{
	size_t an = 0, klen;
	const char *k;
	const void *p;
	int r = obj_begin(j, "MapResponse");

	if (r <= 0)
		return r == 0;
	while ((r = obj_next(j, &an, &k, &klen)) > 0) {
		bool ok, set = false;

		p = NULL;
		if (KEY("KeepAlive"))
			ok = get_bool(j, &mr->keep_alive, NULL, "KeepAlive");
		else if (KEY("Node")) {
			if (take_null(j)) {
				ok = j->err == 0;
			} else {
				struct netmap_node *n = jzalloc(j, sizeof *n,
				    alignof(struct netmap_node));

				ok = n != NULL && node_parse(j, n, "Node");
				if (ok)
					mr->node = n;
			}
		} else if (KEY("Peers")) {
			ok = get_array(j, sizeof(struct netmap_node), alignof(struct netmap_node),
			    MAPRESP_MAX_NODES, elem_node, &p, &mr->n_peers, NULL, "Peers");
			mr->peers = p;
		} else if (KEY("PeersChanged")) {
			ok = get_array(j, sizeof(struct netmap_node), alignof(struct netmap_node),
			    MAPRESP_MAX_NODES, elem_node, &p, &mr->n_peers_changed, NULL,
			    "PeersChanged");
			mr->peers_changed = p;
		} else if (KEY("PeersRemoved")) {
			ok = get_array(j, sizeof(int64_t), alignof(int64_t), MAPRESP_MAX_NODES,
			    elem_i64,
			    &p, &mr->n_peers_removed, NULL, "PeersRemoved");
			mr->peers_removed = p;
		} else if (KEY("PeersChangedPatch")) {
			ok = get_array(j, sizeof(struct mapresp_patch),
			    alignof(struct mapresp_patch),
			    MAPRESP_MAX_NODES, elem_patch, &p, &mr->n_patches, NULL,
			    "PeersChangedPatch");
			mr->patches = p;
		} else if (KEY("OnlineChange"))
			ok = get_id_bools(j, &mr->online_change, &mr->n_online_change,
			    "OnlineChange");
		else if (KEY("PeerSeenChange"))
			ok = get_id_bools(j, &mr->seen_change, &mr->n_seen_change,
			    "PeerSeenChange");
		else if (KEY("DERPMap")) {
			const struct mapresp_derp *d = NULL;

			ok = derp_parse(j, &d);
			if (ok && d != NULL)
				mr->derp = d;
		} else if (KEY("DNSConfig"))
			ok = dns_parse(j, mr);
		else if (KEY("Domain"))
			ok = get_str(j, MAPRESP_MAX_STRING, &mr->domain, "Domain");
		else if (KEY("PacketFilter")) {
			const char *start;

			peek(j);
			start = j->p;
			ok = get_rules(j, &mr->packet_filter, &mr->n_packet_filter, &set,
			    "PacketFilter");
			if (ok && set) {
				mr->has |= MAPRESP_HAS_PACKET_FILTER;
				hash_span(mr->packet_filter_hash, start, j->p);
			}
		} else if (KEY("PacketFilters"))
			ok = packet_filters_parse(j, mr);
		else if (KEY("UserProfiles")) {
			ok = get_array(j, sizeof(struct netmap_user), alignof(struct netmap_user),
			    MAPRESP_MAX_USERS, elem_user, &p, &mr->n_user_profiles, NULL,
			    "UserProfiles");
			mr->user_profiles = p;
		} else if (KEY("Health")) {
			ok = get_array(j, sizeof(const char *), alignof(const char *),
			    MAPRESP_MAX_HEALTH,
			    elem_long_str, &p, &mr->n_health, &set, "Health");
			mr->health = p;
			if (ok && set)
				mr->has |= MAPRESP_HAS_HEALTH;
		} else if (KEY("ControlTime")) {
			ok = get_time(j, &mr->control_time, &set, "ControlTime");
			if (ok && set)
				mr->has |= MAPRESP_HAS_CONTROL_TIME;
		} else if (KEY("CollectServices")) {
			/* opt.Bool: true, false or null (types/opt/bool.go). */
			ok = get_bool(j, &mr->collect_services, &set, "CollectServices");
			if (ok && set)
				mr->has |= MAPRESP_HAS_COLLECT_SERVICES;
		} else if (KEY("Seq"))
			ok = get_i64(j, &mr->seq, "Seq");
		else if (KEY("MapSessionHandle"))
			ok = get_str(j, MAPRESP_MAX_STRING, &mr->map_session_handle,
			    "MapSessionHandle");
		else if (KEY("PopBrowserURL"))
			ok = get_str(j, MAPRESP_MAX_LONG_STRING, &mr->pop_browser_url,
			    "PopBrowserURL");
		else if (KEY("PingRequest"))
			ok = ping_parse(j, mr);
		else if (KEY("SSHPolicy"))
			ok = skip_present(j, mr, MAPRESP_HAS_SSH_POLICY);
		else if (KEY("Debug"))
			ok = skip_present(j, mr, MAPRESP_HAS_DEBUG);
		else
			ok = skip_value(j);
		if (!ok)
			return false;
	}
	return r == 0;
}

int
mapresp_decode(const char *json, size_t len, struct mapresp **out, struct mapresp_stats *stats,
    char *where_buf, size_t where_len)
{
	static int sodium_ready;
	struct jp j;
	struct mapresp *mr = NULL;
	size_t limit;
	int err;

	*out = NULL;
	if (!sodium_ready)
		sodium_ready = sodium_init() >= 0;
	memset(&j, 0, sizeof j);
	j.p = j.start = json;
	j.end = json + len;
	limit = ((size_t)1 << 20) + (len > SIZE_MAX / 64 ? SIZE_MAX / 2 : len * MAPRESP_MEM_FACTOR);
	j.stk_limit = limit;
	j.ar = mapresp_arena_new(limit);
	if (j.ar == NULL)
		goto fail;
	mr = jzalloc(&j, sizeof *mr, alignof(struct mapresp));
	if (mr == NULL)
		goto fail;
	mr->arena = j.ar;
	if (peek(&j) < 0)
		fail(&j, MAPRESP_E_SYNTAX, "empty message");
	else if (!mapresp_parse(&j, mr))
		fail(&j, MAPRESP_E_SYNTAX, "MapResponse");	/* no-op if already set */
	else if (peek(&j) >= 0)
		fail(&j, MAPRESP_E_SYNTAX, "data after the top-level value");
fail:
	free(j.sb);
	free(j.stk);
	err = j.err != 0 ? j.err : (mr == NULL ? MAPRESP_E_NOMEM : 0);
	if (err != 0) {
		if (where_buf != NULL && where_len > 0)
			snprintf(where_buf, where_len, "%s at byte %zu", j.what ? j.what : "?",
			    (size_t)(j.p - j.start));
		mapresp_arena_free(j.ar);
		if (stats != NULL) {
			stats->rejected++;
			if (err == MAPRESP_E_LIMIT)
				stats->over_cap++;
		}
		return err;
	}
	if (stats != NULL)
		stats->decoded++;
	*out = mr;
	return 0;
}

void
mapresp_free(struct mapresp *mr)
{
	if (mr != NULL)
		mapresp_arena_free(mr->arena);
}
