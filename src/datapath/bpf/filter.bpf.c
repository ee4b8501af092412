// SPDX-License-Identifier: (GPL-2.0 OR MIT)
//
// xvs XDP filter: steers load-balancer traffic into the AF_XDP sockets and passes everything else
// (ARP, ICMP echo and errors about the box's own traffic, SSH, VRRP, health-check replies, IPv6
// for now) to the kernel stack.
//
// Own frames only: a frame is considered at all only when its destination MAC is the receiving
// interface's own (`ports` holds each attached interface's MAC by ifindex, kept current by the
// control plane). Another host's unicast frame (flooded by a hub, a bridge with ageing 0, an
// overflowed switch), a broadcast and a multicast go to the kernel, which drops what is not its
// own (PACKET_OTHERHOST). A frame whose source MAC is one of the box's own (`own_macs`, every
// attached interface's MAC) is one xvs sent, looped back: it goes to the kernel too, never to
// xvs again. Two interfaces may share a MAC (bonds, VLANs): `ports` is keyed by ifindex and
// `own_macs` by MAC, so each check holds for each interface.
//
// A frame is steered when its IPv4 destination (VIP, port, protocol) is a virtual service
// (dir 0), or its IPv4 source is a NAT real server's address and port (dir 1, the replies) and
// its destination is not one of the box's own addresses (`local_addrs`: replies to the box's own
// connections, e.g. health checks, stay with the kernel). VLAN-tagged frames are passed.
// A FULLNAT reply is addressed to a local address of a `local_addresses` pool, at a port of the
// pool's range: `local_pools` maps each pool address to its range, and such a frame is steered
// before the `local_addrs` check (pool addresses are the box's own). Ports outside the range stay
// the kernel's (ARP and ICMP too), so the box's own connections from a pool address keep working
// as long as their ports are outside the pool's range.
// Port 0 in a key is a wildcard, looked up after the exact port misses: an all-port service's
// VIP (dir 0) or a real server of one (dir 1).
// ICMP destination unreachable and time exceeded messages (not fragments) are steered by the
// packet they quote: when its source is a service (VIP, port, protocol: an error about a reply
// the client got), or a FULLNAT pool address at a port of its range (`local_pools`: an error
// about a packet xvs sent a FULLNAT real server), or its destination is a NAT real server's
// address and port (an error about a packet xvs sent it) and the error is not addressed to the
// box itself; and a "fragmentation needed"
// quoting an IP-in-IP packet whose inner destination is a service (from inside a TUN tunnel).
// Every other ICMP message (echo to a VIP included) is the kernel's.
// The socket is the one registered in `xsks` at `port_index * 64 + rx_queue_index`, where
// `port_index` is the interface's position in `datapath.interfaces` (map `ports`). An empty slot
// makes `bpf_redirect_map` fall back to XDP_PASS, so nothing is lost before sockets are bound.
//
// Self-contained on purpose: only the kernel UAPI headers are needed (no libbpf-dev).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/types.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define xvs_htons(x) ((__be16)__builtin_bswap16(x))
#else
#define xvs_htons(x) ((__be16)(x))
#endif

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;

// Sockets per port: one slot per receive queue. Must match `QUEUES_PER_PORT` in filter.rs.
#define QUEUES_PER_PORT 64
// Ports (attached interfaces). Must match `MAX_PORTS` in filter.rs.
#define MAX_PORTS 16
#define STEER_DST 0
#define STEER_SRC 1
#define STEER_DST_FRAGMENTS 2
#define STEER_SRC_FRAGMENTS 3

// Key of `steer`. IPv4 addresses are stored v4-mapped (::ffff:a.b.c.d) so that IPv6 needs no
// new key type. Layout must match `steer_key_bytes` in filter.rs (20 bytes, no padding).
struct steer_key {
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 dir;
};
_Static_assert(sizeof(struct steer_key) == 20, "steer_key must be 20 bytes");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct steer_key);
	__type(value, __u8);
} steer SEC(".maps");

// The box's own addresses (v4-mapped like `steer`). Must match `MAX_LOCAL_ADDRS` in filter.rs.
#define MAX_LOCAL_ADDRS 1024
struct addr_key {
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_LOCAL_ADDRS);
	__type(key, struct addr_key);
	__type(value, __u8);
} local_addrs SEC(".maps");

// FULLNAT pool addresses (v4-mapped) → their port range. Must match `MAX_LOCAL_POOL_ADDRS` and
// `local_pool_value` in filter.rs.
#define MAX_LOCAL_POOL_ADDRS 1024
struct port_range {
	__u16 first; // host byte order
	__u16 last;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_LOCAL_POOL_ADDRS);
	__type(key, struct addr_key);
	__type(value, struct port_range);
} local_pools SEC(".maps");

// Value of `ports`. Layout must match `port_value` in filter.rs (12 bytes, no padding).
struct port_info {
	__u32 index; // position in `datapath.interfaces`
	__u8 mac[6]; // the interface's own MAC
	__u8 pad[2];
};
_Static_assert(sizeof(struct port_info) == 12, "port_info must be 12 bytes");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32); // ifindex
	__type(value, struct port_info);
} ports SEC(".maps");

// Key of `own_macs`: a MAC padded to 8 bytes (`mac_key_bytes` in filter.rs).
struct mac_key {
	__u8 mac[6];
	__u8 pad[2];
};
_Static_assert(sizeof(struct mac_key) == 8, "mac_key must be 8 bytes");

// Every attached interface's MAC (a set: interfaces sharing a MAC share an entry). Twice the
// ports: while MACs change, the new ones are added before the old ones leave. Must match
// `MAX_OWN_MACS` in filter.rs.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * MAX_PORTS);
	__type(key, struct mac_key);
	__type(value, __u8);
} own_macs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_PORTS * QUEUES_PER_PORT);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

static __always_inline void v4_mapped(__u8 addr[16], __be32 ip)
{
	__builtin_memset(addr, 0, 10);
	addr[10] = 0xff;
	addr[11] = 0xff;
	__builtin_memcpy(&addr[12], &ip, 4);
}

// Sends the frame to the socket of its interface (`port_index`) and queue (XDP_PASS if there is
// none).
static __always_inline int redirect(struct xdp_md *ctx, __u32 port_index)
{
	__u32 queue = ctx->rx_queue_index;
	if (queue >= QUEUES_PER_PORT || port_index >= MAX_PORTS)
		return XDP_PASS;

	return bpf_redirect_map(&xsks, port_index * QUEUES_PER_PORT + queue, XDP_PASS);
}

static __always_inline int same_mac(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] &&
	       a[5] == b[5];
}

// Looks up `key` (dir, addr, proto set) at `port`, then at the wildcard port 0.
static __always_inline int steered_at(struct steer_key *key, __be16 port)
{
	key->port = port;
	if (bpf_map_lookup_elem(&steer, key))
		return 1;
	key->port = 0;
	return bpf_map_lookup_elem(&steer, key) != 0;
}

#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11

#define ICMP_FRAG_NEEDED 4

// A "fragmentation needed" about a packet xvs tunnelled (TUN): `inner` is the client's packet
// inside the quoted outer header; steered when its destination is a service.
static __always_inline int tunnel_frag_needed(struct xdp_md *ctx, struct iphdr *inner, void *data_end,
					      __u32 port)
{
	if ((void *)(inner + 1) > data_end)
		return XDP_PASS;
	if (inner->version != 4 || inner->ihl < 5 || (inner->frag_off & xvs_htons(0x1fff)))
		return XDP_PASS;
	if (inner->protocol != IPPROTO_TCP && inner->protocol != IPPROTO_UDP)
		return XDP_PASS;
	__u32 iihl = (__u32)inner->ihl * 4;
	__be16 *ports = (void *)inner + iihl;
	if ((void *)(ports + 2) > data_end)
		return XDP_PASS;
	struct steer_key key = {};
	key.proto = inner->protocol;
	v4_mapped(key.addr, inner->daddr);
	key.dir = STEER_DST;
	if (steered_at(&key, ports[1]))
		return redirect(ctx, port);
	return XDP_PASS;
}

// An ICMP message: steered if it is an error about a balanced flow (see the header comment).
static __always_inline int icmp_error(struct xdp_md *ctx, struct iphdr *ip, void *data_end,
				      __u32 port)
{
	if (ip->frag_off & xvs_htons(0x3fff))
		return XDP_PASS;
	__u32 ihl = (__u32)ip->ihl * 4; // 20..60
	__u8 *icmp = (void *)ip + ihl;
	if ((void *)(icmp + 8) > data_end)
		return XDP_PASS;
	if (icmp[0] != ICMP_DEST_UNREACH && icmp[0] != ICMP_TIME_EXCEEDED)
		return XDP_PASS;
	struct iphdr *q = (void *)(icmp + 8);
	if ((void *)(q + 1) > data_end)
		return XDP_PASS;
	if (q->version != 4 || q->ihl < 5 || (q->frag_off & xvs_htons(0x1fff)))
		return XDP_PASS;
	__u32 qihl = (__u32)q->ihl * 4;
	if (q->protocol == IPPROTO_IPIP && icmp[0] == ICMP_DEST_UNREACH && icmp[1] == ICMP_FRAG_NEEDED)
		return tunnel_frag_needed(ctx, (void *)q + qihl, data_end, port);
	if (q->protocol != IPPROTO_TCP && q->protocol != IPPROTO_UDP)
		return XDP_PASS;
	__be16 *ports = (void *)q + qihl;
	if ((void *)(ports + 2) > data_end)
		return XDP_PASS;
	__be16 sport = ports[0];
	__be16 dport = ports[1];

	struct steer_key key = {};
	key.proto = q->protocol;
	// About a reply the client got: the quote's source is a service.
	v4_mapped(key.addr, q->saddr);
	key.dir = STEER_DST;
	if (steered_at(&key, sport))
		return redirect(ctx, port);
	// About a packet xvs sent a FULLNAT real server: the quote's source is a local endpoint (a
	// pool address at a port of its pool's range). The error is addressed to the pool address,
	// one of the box's own, so this comes before the `local_addrs` check; errors about the
	// box's own connections from a pool address (ports outside the range) stay the kernel's.
	struct addr_key pool = {};
	v4_mapped(pool.addr, q->saddr);
	struct port_range *range = bpf_map_lookup_elem(&local_pools, &pool);
	if (range) {
		__u16 port = (__u16)xvs_htons(sport); // ntohs: the same swap
		if (port >= range->first && port <= range->last)
			return redirect(ctx, port);
	}
	// About a packet xvs sent a NAT real server, unless the error is for the box itself (its
	// own connection to the real server, e.g. a health check).
	struct addr_key local = {};
	v4_mapped(local.addr, ip->daddr);
	if (bpf_map_lookup_elem(&local_addrs, &local))
		return XDP_PASS;
	v4_mapped(key.addr, q->daddr);
	key.dir = STEER_SRC;
	if (steered_at(&key, dport))
		return redirect(ctx, port);
	return XDP_PASS;
}

SEC("xdp")
int xvs_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;

	// Own frames only (see the header comment).
	__u32 ifindex = ctx->ingress_ifindex;
	struct port_info *info = bpf_map_lookup_elem(&ports, &ifindex);
	if (!info)
		return XDP_PASS;
	// Broadcast and multicast (the I/G bit), whatever the port's MAC.
	if (eth->h_dest[0] & 1)
		return XDP_PASS;
	if (!same_mac(eth->h_dest, info->mac))
		return XDP_PASS;
	struct mac_key src = {};
	__builtin_memcpy(src.mac, eth->h_source, 6);
	if (bpf_map_lookup_elem(&own_macs, &src))
		return XDP_PASS;
	__u32 port = info->index;

	__be16 ethertype = eth->h_proto;
	void *l3 = eth + 1;
	// VLAN-tagged frames are the kernel's until xvs knows which VLAN each port's traffic
	// belongs on (forwarding a tag from one segment onto another would be wrong).
	if (ethertype == xvs_htons(ETH_P_8021Q) || ethertype == xvs_htons(ETH_P_8021AD))
		return XDP_PASS;
	if (ethertype != xvs_htons(ETH_P_IP))
		return XDP_PASS;

	struct iphdr *ip = l3;
	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	if (ip->version != 4 || ip->ihl < 5)
		return XDP_PASS;
	if (ip->protocol == IPPROTO_ICMP)
		return icmp_error(ctx, ip, data_end, port);
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return XDP_PASS;

	struct steer_key key = {};
	key.proto = ip->protocol;

	// Later fragments carry no ports: steered by address alone (dir 2: to a VIP, to a FULLNAT
	// pool address; dir 3: from a NAT real server, not to the box itself).
	if (ip->frag_off & xvs_htons(0x1fff)) {
		v4_mapped(key.addr, ip->daddr);
		key.dir = STEER_DST_FRAGMENTS;
		if (!bpf_map_lookup_elem(&steer, &key)) {
			struct addr_key local = {};
			v4_mapped(local.addr, ip->daddr);
			if (bpf_map_lookup_elem(&local_pools, &local))
				return redirect(ctx, port);
			if (bpf_map_lookup_elem(&local_addrs, &local))
				return XDP_PASS;
			v4_mapped(key.addr, ip->saddr);
			key.dir = STEER_SRC_FRAGMENTS;
			if (!bpf_map_lookup_elem(&steer, &key))
				return XDP_PASS;
		}
		return redirect(ctx, port);
	}

	__u32 ihl = (__u32)ip->ihl * 4; // 20..60
	__be16 *l4 = (void *)ip + ihl;
	if ((void *)(l4 + 2) > data_end)
		return XDP_PASS;
	__be16 sport = l4[0];
	__be16 dport = l4[1];

	v4_mapped(key.addr, ip->daddr);
	key.port = dport;
	key.dir = STEER_DST;
	int steered = bpf_map_lookup_elem(&steer, &key) != 0;
	if (!steered) {
		// Port 0: an all-port service of the VIP.
		key.port = 0;
		steered = bpf_map_lookup_elem(&steer, &key) != 0;
	}
	if (!steered) {
		struct addr_key local = {};
		v4_mapped(local.addr, ip->daddr);
		// A FULLNAT reply: to a pool address, at a port of its pool's range.
		struct port_range *range = bpf_map_lookup_elem(&local_pools, &local);
		if (range) {
			__u16 port = (__u16)xvs_htons(dport); // ntohs: the same swap
			if (port >= range->first && port <= range->last)
				return redirect(ctx, port);
		}
		// A reply to the box's own connection (health check, operator) is the kernel's, even
		// when it comes from a real server's service port.
		if (bpf_map_lookup_elem(&local_addrs, &local))
			return XDP_PASS;
		v4_mapped(key.addr, ip->saddr);
		key.port = sport;
		key.dir = STEER_SRC;
		steered = bpf_map_lookup_elem(&steer, &key) != 0;
		if (!steered) {
			// Port 0: a real server of an all-port NAT service.
			key.port = 0;
			steered = bpf_map_lookup_elem(&steer, &key) != 0;
		}
		if (!steered)
			return XDP_PASS;
	}

	return redirect(ctx, port);
}

char _license[] SEC("license") = "Dual MIT/GPL";
