// SPDX-License-Identifier: (GPL-2.0 OR MIT)
// The TUN lab's real-server helper (scripts/lab up tun|dr): this kernel has no ipip or ip6_tunnel
// module, so the real servers decapsulate in XDP. Two cases, everything else passes untouched:
//
// - IP-in-IP: an IPv4 frame carrying protocol 4 with a plain 20-byte outer header (no options,
//   not a fragment) loses its outer header.
// - IPv6-in-IPv6 (TUN6, as IPVS sends it): an IPv6 frame whose fixed 40-byte outer header has
//   next header 41 (no extension headers), is addressed to this real server (REAL6, its IPv6
//   address, compiled in: scripts/lab builds one object per real server with
//   -DREAL6={0x20,0x01,...}) and carries a whole inner IPv6 packet (payload length within what
//   the frame holds, at least an inner fixed header, version 6) loses its outer header.
//
// Either way the Ethernet header moves forward over the outer header (its EtherType already
// names the inner family) and the frame goes on to the kernel as the inner packet, whose
// destination (the VIP or VIP6) the real server holds on lo. Every access is bounds-checked
// against data_end, and there is no loop: the verifier accepts it as it is.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

#define SEC(name) __attribute__((section(name), used))

#ifndef REAL6
#error "build with -DREAL6={16 bytes}: the real server's IPv6 address (scripts/lab does)"
#endif

static long (*bpf_xdp_adjust_head)(struct xdp_md *ctx, int delta) = (void *)44;

static const __u8 real6[16] = REAL6;

// The outer header's length to strip, or 0 to pass the frame as it is.
static __always_inline int outer_len(struct ethhdr *eth, void *end)
{
	if (eth->h_proto == __builtin_bswap16(ETH_P_IP)) {
		struct iphdr *outer = (void *)(eth + 1);

		if ((void *)(outer + 1) > end)
			return 0;
		if (outer->protocol != IPPROTO_IPIP || outer->ihl != 5 ||
		    (outer->frag_off & __builtin_bswap16(0x3fff)))
			return 0;
		return sizeof(struct iphdr);
	}
	if (eth->h_proto == __builtin_bswap16(ETH_P_IPV6)) {
		struct ipv6hdr *outer = (void *)(eth + 1);
		struct ipv6hdr *inner = outer + 1;
		const __u32 *want = (const __u32 *)real6;
		const __u32 *dst = outer->daddr.in6_u.u6_addr32;

		if ((void *)(inner + 1) > end)
			return 0;
		if (outer->nexthdr != IPPROTO_IPV6 || inner->version != 6)
			return 0;
		if (dst[0] != want[0] || dst[1] != want[1] || dst[2] != want[2] ||
		    dst[3] != want[3])
			return 0;
		if (__builtin_bswap16(outer->payload_len) < sizeof(*inner) ||
		    __builtin_bswap16(outer->payload_len) > (long)end - (long)inner)
			return 0;
		return sizeof(struct ipv6hdr);
	}
	return 0;
}

SEC("xdp")
int ipip_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ethhdr copy;
	int strip;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	strip = outer_len(eth, end);
	if (!strip)
		return XDP_PASS;
	__builtin_memcpy(&copy, eth, sizeof(copy));
	if (bpf_xdp_adjust_head(ctx, strip))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(eth, &copy, sizeof(copy));
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual MIT/GPL";
