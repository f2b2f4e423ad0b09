// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/log.h"

int log_level = LOG_LVL_INFO;
static const char *log_prog = "meshd";

void
log_init(const char *prog, int level)
{
	log_prog = prog;
	log_level = level;
}

static void vlog(const char *tag, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void
vlog(const char *tag, const char *fmt, va_list ap)
{
	char line[1024];
	struct timespec ts;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(line, sizeof line, "%lld.%03ld %s: %s",
	    (long long)ts.tv_sec, ts.tv_nsec / 1000000, log_prog, tag);
	if (n < 0 || (size_t)n >= sizeof line)
		n = 0;
	vsnprintf(line + n, sizeof line - n, fmt, ap);
	/* One write per line keeps lines whole when several processes share stderr. */
	fprintf(stderr, "%s\n", line);
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const char *tags[] = { "error: ", "warning: ", "", "debug: ", "trace: " };
	va_list ap;
	int saved = errno;

	if ((int)lvl > log_level)
		return;
	va_start(ap, fmt);
	vlog(tags[lvl], fmt, ap);
	va_end(ap);
	errno = saved;
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("fatal: ", fmt, ap);
	va_end(ap);
	exit(1);
}
