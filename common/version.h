/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_VERSION_H
#define MESHD_VERSION_H

#define MESHD_VERSION "0.1.0"

#endif
