// SPDX-License-Identifier: (GPL-2.0 OR MIT)
// The TUN lab's real-server helper (scripts/lab up tun): this kernel has no ipip module, so the
// real servers decapsulate IP-in-IP in XDP. A frame carrying IPv4 protocol 4 with a plain
// 20-byte outer header (no options, not a fragment) loses its outer header: the Ethernet header
// moves 20 bytes forward and the frame goes on to the kernel as the inner IPv4 packet, which the
// real server holds the VIP for. Everything else passes untouched.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>

#define SEC(name) __attribute__((section(name), used))

static long (*bpf_xdp_adjust_head)(struct xdp_md *ctx, int delta) = (void *)44;

SEC("xdp")
int ipip_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *outer = (void *)(eth + 1);
	struct ethhdr copy;

	if ((void *)(outer + 1) > end)
		return XDP_PASS;
	if (eth->h_proto != __builtin_bswap16(ETH_P_IP))
		return XDP_PASS;
	if (outer->protocol != IPPROTO_IPIP || outer->ihl != 5 ||
	    (outer->frag_off & __builtin_bswap16(0x3fff)))
		return XDP_PASS;
	__builtin_memcpy(&copy, eth, sizeof(copy));
	if (bpf_xdp_adjust_head(ctx, (int)sizeof(struct iphdr)))
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
