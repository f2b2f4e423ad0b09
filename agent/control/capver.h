/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_CAPVER_H
#define MESHD_CAPVER_H

/*
 * The Tailscale capability version meshd claims (protocol/control.md §8;
 * history: tailcfg/tailcfg.go CurrentCapabilityVersion in Go tailscale).
 * One value everywhere: the /key?v= query, the Noise initiation header and
 * prologue ("Tailscale Control Protocol v130"), RegisterRequest.Version and
 * MapRequest.Version.  Never send two different numbers.
 *
 * Why 130 and not 142.  Go tailscale v1.102.3 claims 142, and Headscale
 * 0.29.2 would accept it: it only refuses versions below 113 and gates
 * nothing else on the number (it echoes it back as Node.Cap).  But a
 * capability version is a promise to the server, and 131..142 promise
 * things we do not do: node attributes for auto-update, hosts-file updates,
 * Android, cached netmaps, CGNAT drop rules, runtime metrics, GSO/GRO
 * switches (131-136, 139-141), 429 handling on register (137) and the c2n
 * /debug/tka and /remoteapi/localapi proxy endpoints (138, 142).  130 is what
 * control.md recommends and what Tailscale's own non-Go client
 * (tailscale-rs) claims against both SaaS and Headscale; it sits 17 above
 * Headscale's floor, which rises about one per Headscale release.  Raise it
 * only together with the code that honours every version crossed, and
 * extend the list below.
 *
 * Claiming 130 commits meshd to the following (version: behaviour).
 *
 * Map responses and deltas (control.md §7.1; order of application:
 * Peers, PeersRemoved, PeersChanged, PeerSeenChange, OnlineChange,
 * PeersChangedPatch, then Node, UserProfiles, DERPMap, filters, DNSConfig):
 *   5, 18    non-empty Peers replaces the whole peer set; PeersChanged
 *            upserts whole Node objects by ID; PeersRemoved deletes by ID;
 *            UserProfiles is additive.  Node absent = self unchanged.
 *   6, 81    PacketFilter absent = unchanged; PacketFilters is a map of
 *            named filters, null deletes a name, "*": null clears all first,
 *            the effective filter is the concatenation in name order.
 *   7, 13    FilterRule.SrcIPs may be "*", an IP, a CIDR or a range a-b;
 *            FilterRule.IPProto is honoured (empty = TCP, UDP, ICMPv4/v6).
 *   10, 16   PeerSeenChange and OnlineChange ({"<id>": bool}); Node.Online.
 *   15, 17   DNSConfig absent = unchanged; Domain absent or "" = unchanged.
 *   33, 36,  PeersChangedPatch: per-field overwrite of DERPRegion, Cap,
 *   40, 54   CapMap, Endpoints, Key, DiscoKey, Online, LastSeen, KeyExpiry
 *            (zero clears), KeySignature; unknown node IDs are ignored.
 *   53       Node.Expired is honoured (only false -> true) and peers are
 *            expired locally from KeyExpiry; no traffic to expired peers.
 *   65       DERPMap absent = unchanged; present with Regions null keeps the
 *            old regions and HomeParams; null region entries are dropped.
 *   74, 89   CapMap (raw JSON values) replaces Capabilities, which is only
 *            merged into CapMap keys if present.
 *   111, 112 Node.HomeDERP, falling back to the legacy "DERP" string;
 *            AllowedIPs null means "same as Addresses".
 *   115      DERPRegion.NoMeasureNoHome: probe it never, home on it never.
 *   117      MapResponse.DisplayMessages: parsed (and may be ignored).
 *   Unknown fields anywhere are ignored, never fatal.
 *
 * Control-plane behaviour:
 *   12, 31,  PingRequest: a HEAD to URL, over Noise if URLIsNoise, else
 *   38       plain HTTP(S); deduplicated on URL.  Headscale's HA-route
 *            probes depend on it.  Types we do not implement ("c2n",
 *            disco, TSMP) are answered with nothing or a 404, never a crash.
 *   58, 68   Hostinfo and endpoint changes go out as lite (non-streaming)
 *            map requests, retried before the long poll is restarted;
 *            Hostinfo/Endpoints on a streaming request may be ignored.
 *   113, 118 Hostinfo.IngressEnabled and Hostinfo.StateEncrypted are false
 *            (no funnel; the state file is plain, mode 0600).
 *   122      Hostinfo.ExitNodeID reports the exit node in use, if any.
 *   126      seamless key renewal: on expiry or --force-reauth the new node
 *            key is registered while the old one keeps the data plane up
 *            (agent/state.h state_begin_rotation/state_commit_rotation),
 *            unless the self node carries "disable-seamless-key-renewal".
 *
 * Data plane and DNS:
 *   11, 8    IPv6 addresses and routes, several default routes (exit nodes).
 *   14, 23,  DNSConfig.Routes (split DNS; an empty value means "answer from
 *   22, 41   ExtraRecords") and Resolvers; ExtraRecords served on
 *            100.100.100.100.
 *   116      answer MagicDNS AAAA for peers when the self node's CapMap
 *            has "magicdns-aaaa".
 *   119      Hostinfo.Location.Priority ranks otherwise equal routes.
 *   120, 121 peer-relay disco message types exist: an unknown disco type is
 *            dropped silently.  (Under Headscale moot: Node.Cap is rewritten
 *            to each receiver's own capver.)
 *   123, 124 cryptokey routing is mandatory: a decrypted packet whose inner
 *            source is outside the sending peer's AllowedIPs is dropped.
 *   125      dnstype.Resolver.UseWithExitNode: with an exit node in use,
 *            only resolvers so marked stay in use; the rest go via the exit.
 *
 * Promised by 127..130 but meaningless without the features they name, and
 * never exercised by Headscale: c2n /debug/netmap and /debug/health (127,
 * 128; answer 404), the relay deadlock fix (129), and optional hardware
 * attestation keys in MapRequest (130; we send none).
 */
#define MESHD_CAPVER 130

#endif
