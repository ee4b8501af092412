// SPDX-License-Identifier: (GPL-2.0 OR MIT)
//
// xvs XDP filter: steers load-balancer traffic into the AF_XDP sockets and passes everything else
// (ARP, neighbour discovery, ICMP and ICMPv6 echo and errors about the box's own traffic, SSH,
// VRRP, health-check replies) to the kernel stack. IPv4 and IPv6 follow the same rules; the maps
// hold 16-byte addresses, IPv4 ones v4-mapped (::ffff:a.b.c.d).
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
// A frame is steered when its destination (VIP, port, protocol) is a virtual service
// (dir 0), or its source is a NAT real server's address and port (dir 1, the replies) and
// its destination is not one of the box's own addresses (`local_addrs`: replies to the box's own
// connections, e.g. health checks, stay with the kernel). VLAN-tagged frames are passed.
// A FULLNAT reply is addressed to a local address of a `local_addresses` pool, at a port of the
// pool's range: `local_pools` maps each pool address to its range, and such a frame is steered
// before the `local_addrs` check (pool addresses are the box's own). Ports outside the range stay
// the kernel's (ARP, neighbour discovery and ICMP too), so the box's own connections from a pool
// address keep working as long as their ports are outside the pool's range.
// Port 0 in a key is a wildcard, looked up after the exact port misses: an all-port service's
// VIP (dir 0) or a real server of one (dir 1).
// Later fragments (no ports) are steered by address alone: to a VIP (dir 2) or a FULLNAT pool
// address, or from a NAT real server (dir 3) unless addressed to the box itself. A first
// fragment holds the transport header and is steered by its ports like a whole packet.
// ICMP destination unreachable and time exceeded messages (not fragments) are steered by the
// packet they quote: when its source is a service (VIP, port, protocol: an error about a reply
// the client got), or a FULLNAT pool address at a port of its range (`local_pools`: an error
// about a packet xvs sent a FULLNAT real server), or its destination is a NAT real server's
// address and port (an error about a packet xvs sent it) and the error is not addressed to the
// box itself; and a "fragmentation needed"
// quoting an IP-in-IP packet whose inner destination is a service (from inside a TUN tunnel).
// Every other ICMP message (echo to a VIP included) is the kernel's.
//
// IPv6 (EtherType 0x86DD): the extension headers are walked (hop-by-hop first only, routing with
// no segments left, destination options, one fragment header), at most IPV6_MAX_EXT of them and
// IPV6_MAX_EXT_LEN bytes together, the bounds of xvs's own parser (src/wire/ipv6.rs); any other
// chain (longer, cut short, AH/ESP, a routing header still routing) is the kernel's. TCP and
// UDP then follow the rules above; a later fragment's protocol is its fragment header's next
// header (anything but TCP/UDP there is the kernel's). ICMPv6 destination unreachable (1),
// packet too big (2) and time exceeded (3), unfragmented, are steered by the packet they quote
// (its extension headers walked the same way) exactly as ICMP errors are, and a packet too big
// quoting an IPv6-in-IPv6 packet whose inner destination is a service (from inside a TUN6
// tunnel) too. Every other ICMPv6 message is the kernel's: neighbour discovery (133-137), MLD,
// echo, parameter problems. A box that loses neighbour discovery loses IPv6.
//
// The socket is the one registered in `xsks` at `port_index * 64 + rx_queue_index`, where
// `port_index` is the interface's position in `datapath.interfaces` (map `ports`). An empty slot
// makes `bpf_redirect_map` fall back to XDP_PASS, so nothing is lost before sockets are bound.
//
// Self-contained on purpose: only the kernel UAPI headers are needed (no libbpf-dev).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/types.h>

// The UAPI headers define __always_inline as plain `inline`; BPF-to-BPF calls take at most five
// arguments, so the helpers below must really be inlined.
#undef __always_inline
#define __always_inline inline __attribute__((always_inline))

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

// Whether `addr` is one of the box's own addresses.
static __always_inline int is_local(const __u8 addr[16])
{
	struct addr_key local = {};
	__builtin_memcpy(local.addr, addr, 16);
	return bpf_map_lookup_elem(&local_addrs, &local) != 0;
}

// Whether `addr` is a FULLNAT pool address and `port` (network order) is in its pool's range.
static __always_inline int pool_port(const __u8 addr[16], __be16 port)
{
	struct addr_key pool = {};
	__builtin_memcpy(pool.addr, addr, 16);
	struct port_range *range = bpf_map_lookup_elem(&local_pools, &pool);
	if (!range)
		return 0;
	__u16 host_port = (__u16)xvs_htons(port); // ntohs: the same swap
	return host_port >= range->first && host_port <= range->last;
}

// A TCP or UDP packet (whole or first fragment) from `saddr`:`sport` to `daddr`:`dport`.
static __always_inline int steer_flow(struct xdp_md *ctx, __u32 port_index, const __u8 daddr[16],
				      const __u8 saddr[16], __u8 proto, __be16 sport, __be16 dport)
{
	struct steer_key key = {};
	key.proto = proto;
	__builtin_memcpy(key.addr, daddr, 16);
	key.dir = STEER_DST;
	// To a service (port 0: an all-port service of the VIP).
	if (steered_at(&key, dport))
		return redirect(ctx, port_index);
	// A FULLNAT reply: to a pool address, at a port of its pool's range.
	if (pool_port(daddr, dport))
		return redirect(ctx, port_index);
	// A reply to the box's own connection (health check, operator) is the kernel's, even
	// when it comes from a real server's service port.
	if (is_local(daddr))
		return XDP_PASS;
	// A NAT reply (port 0: a real server of an all-port NAT service).
	__builtin_memcpy(key.addr, saddr, 16);
	key.dir = STEER_SRC;
	if (steered_at(&key, sport))
		return redirect(ctx, port_index);
	return XDP_PASS;
}

// A later fragment carries no ports: steered by address alone (dir 2: to a VIP, to a FULLNAT
// pool address; dir 3: from a NAT real server, not to the box itself).
static __always_inline int steer_later_fragment(struct xdp_md *ctx, __u32 port_index,
						const __u8 daddr[16], const __u8 saddr[16],
						__u8 proto)
{
	struct steer_key key = {};
	key.proto = proto;
	__builtin_memcpy(key.addr, daddr, 16);
	key.dir = STEER_DST_FRAGMENTS;
	if (bpf_map_lookup_elem(&steer, &key))
		return redirect(ctx, port_index);
	struct addr_key local = {};
	__builtin_memcpy(local.addr, daddr, 16);
	if (bpf_map_lookup_elem(&local_pools, &local))
		return redirect(ctx, port_index);
	if (bpf_map_lookup_elem(&local_addrs, &local))
		return XDP_PASS;
	__builtin_memcpy(key.addr, saddr, 16);
	key.dir = STEER_SRC_FRAGMENTS;
	if (bpf_map_lookup_elem(&steer, &key))
		return redirect(ctx, port_index);
	return XDP_PASS;
}

// An ICMP or ICMPv6 error to `outer_daddr` quoting a TCP/UDP packet from `qsaddr`:`sport` to
// `qdaddr`:`dport`: steered if it is about a balanced flow (see the header comment).
static __always_inline int steer_quoted(struct xdp_md *ctx, __u32 port_index,
					const __u8 outer_daddr[16], const __u8 qsaddr[16],
					const __u8 qdaddr[16], __u8 proto, __be16 sport,
					__be16 dport)
{
	struct steer_key key = {};
	key.proto = proto;
	// About a reply the client got: the quote's source is a service.
	__builtin_memcpy(key.addr, qsaddr, 16);
	key.dir = STEER_DST;
	if (steered_at(&key, sport))
		return redirect(ctx, port_index);
	// About a packet xvs sent a FULLNAT real server: the quote's source is a local endpoint (a
	// pool address at a port of its pool's range). The error is addressed to the pool address,
	// one of the box's own, so this comes before the `local_addrs` check; errors about the
	// box's own connections from a pool address (ports outside the range) stay the kernel's.
	if (pool_port(qsaddr, sport))
		return redirect(ctx, port_index);
	// About a packet xvs sent a NAT real server, unless the error is for the box itself (its
	// own connection to the real server, e.g. a health check).
	if (is_local(outer_daddr))
		return XDP_PASS;
	__builtin_memcpy(key.addr, qdaddr, 16);
	key.dir = STEER_SRC;
	if (steered_at(&key, dport))
		return redirect(ctx, port_index);
	return XDP_PASS;
}

// A tunnelled packet quoted by an error about it: steered when `inner_daddr`:`dport` is a
// service (TUN: the client's packet inside the quoted outer header).
static __always_inline int steer_tunnelled(struct xdp_md *ctx, __u32 port_index,
					   const __u8 inner_daddr[16], __u8 proto, __be16 dport)
{
	struct steer_key key = {};
	key.proto = proto;
	__builtin_memcpy(key.addr, inner_daddr, 16);
	key.dir = STEER_DST;
	if (steered_at(&key, dport))
		return redirect(ctx, port_index);
	return XDP_PASS;
}

#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11

#define ICMP_FRAG_NEEDED 4

// A "fragmentation needed" about a packet xvs tunnelled (TUN): `inner` is the client's packet
// inside the quoted outer header; steered when its destination is a service.
static __always_inline int tunnel_frag_needed(struct xdp_md *ctx, struct iphdr *inner, void *data_end,
					      __u32 port_index)
{
	if ((void *)(inner + 1) > data_end)
		return XDP_PASS;
	if (inner->version != 4 || inner->ihl < 5 || (inner->frag_off & xvs_htons(0x1fff)))
		return XDP_PASS;
	if (inner->protocol != IPPROTO_TCP && inner->protocol != IPPROTO_UDP)
		return XDP_PASS;
	__u32 iihl = (__u32)inner->ihl * 4;
	__be16 *l4_ports = (void *)inner + iihl;
	if ((void *)(l4_ports + 2) > data_end)
		return XDP_PASS;
	__u8 daddr[16];
	v4_mapped(daddr, inner->daddr);
	return steer_tunnelled(ctx, port_index, daddr, inner->protocol, l4_ports[1]);
}

// An ICMP message: steered if it is an error about a balanced flow (see the header comment).
static __always_inline int icmp_error(struct xdp_md *ctx, struct iphdr *ip, void *data_end,
				      __u32 port_index)
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
		return tunnel_frag_needed(ctx, (void *)q + qihl, data_end, port_index);
	if (q->protocol != IPPROTO_TCP && q->protocol != IPPROTO_UDP)
		return XDP_PASS;
	__be16 *l4_ports = (void *)q + qihl;
	if ((void *)(l4_ports + 2) > data_end)
		return XDP_PASS;
	__u8 daddr[16], qsaddr[16], qdaddr[16];
	v4_mapped(daddr, ip->daddr);
	v4_mapped(qsaddr, q->saddr);
	v4_mapped(qdaddr, q->daddr);
	return steer_quoted(ctx, port_index, daddr, qsaddr, qdaddr, q->protocol, l4_ports[0],
			    l4_ports[1]);
}

// An IPv4 packet (see the header comment).
static __always_inline int ipv4_frame(struct xdp_md *ctx, struct iphdr *ip, void *data_end,
				      __u32 port_index)
{
	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	if (ip->version != 4 || ip->ihl < 5)
		return XDP_PASS;
	if (ip->protocol == IPPROTO_ICMP)
		return icmp_error(ctx, ip, data_end, port_index);
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return XDP_PASS;

	__u8 daddr[16], saddr[16];
	v4_mapped(daddr, ip->daddr);
	v4_mapped(saddr, ip->saddr);
	if (ip->frag_off & xvs_htons(0x1fff))
		return steer_later_fragment(ctx, port_index, daddr, saddr, ip->protocol);

	__u32 ihl = (__u32)ip->ihl * 4; // 20..60
	__be16 *l4 = (void *)ip + ihl;
	if ((void *)(l4 + 2) > data_end)
		return XDP_PASS;
	return steer_flow(ctx, port_index, daddr, saddr, ip->protocol, l4[0], l4[1]);
}

// IPv6 next header values (IANA).
#define NEXTHDR_HOP 0
#define NEXTHDR_IPV6 41
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_ICMPV6 58
#define NEXTHDR_DEST 60
// The extension-header walk's bounds: those of xvs's own parser (`MAX_EXT_HEADERS` and
// `MAX_EXT_LEN` in src/wire/ipv6.rs), so the filter hands xvs no chain its parser refuses for
// its length.
#define IPV6_MAX_EXT 5
#define IPV6_MAX_EXT_LEN 512

#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PKT_TOOBIG 2
#define ICMPV6_TIME_EXCEED 3

// What follows an IPv6 header's extension headers.
struct upper6 {
	__u32 off;     // from the start of the IPv6 header to the upper-layer header
	__u8 proto;    // upper-layer protocol (a later fragment: its fragment header's next header)
	__u8 fragment; // a fragment header was walked
	__u8 later;    // ... with an offset: no upper-layer header follows
};

static __always_inline int is_ext_header(__u8 next)
{
	return next == NEXTHDR_HOP || next == NEXTHDR_ROUTING || next == NEXTHDR_DEST ||
	       next == NEXTHDR_FRAGMENT;
}

// Walks `ip6`'s extension headers (see the header comment). 0 and `up` filled, or -1: the
// kernel's (a chain the walk does not follow).
static __always_inline int ipv6_upper(struct ipv6hdr *ip6, void *data_end, struct upper6 *up)
{
	__u8 next = ip6->nexthdr;
	__u32 off = 0; // bytes of extension headers walked, at most IPV6_MAX_EXT_LEN
	up->fragment = 0;
	up->later = 0;
	for (int i = 0; i < IPV6_MAX_EXT; i++) {
		if (!is_ext_header(next))
			break;
		__u8 *h = (__u8 *)(ip6 + 1) + off;
		if ((void *)(h + 8) > data_end)
			return -1;
		if (next == NEXTHDR_FRAGMENT) {
			if (up->fragment)
				return -1;
			up->fragment = 1;
			if (((__u32)h[2] << 8 | h[3]) & 0xfff8) {
				// A later fragment: its data is not headers.
				up->later = 1;
				up->proto = h[0];
				up->off = sizeof(*ip6) + off + 8;
				return 0;
			}
			off += 8;
		} else {
			if (next == NEXTHDR_HOP && i != 0)
				return -1;
			// A routing header with segments left: the box is not the final destination.
			if (next == NEXTHDR_ROUTING && h[3] != 0)
				return -1;
			off += ((__u32)h[1] + 1) * 8;
		}
		if (off > IPV6_MAX_EXT_LEN)
			return -1;
		next = h[0];
	}
	if (is_ext_header(next))
		return -1;
	up->proto = next;
	up->off = sizeof(*ip6) + off;
	return 0;
}

// A "packet too big" about a packet xvs tunnelled (TUN6): `inner` is the client's packet inside
// the quoted outer header; steered when its destination is a service.
static __always_inline int tunnel6_too_big(struct xdp_md *ctx, struct ipv6hdr *inner,
					   void *data_end, __u32 port_index)
{
	if ((void *)(inner + 1) > data_end)
		return XDP_PASS;
	if (inner->version != 6)
		return XDP_PASS;
	struct upper6 up;
	if (ipv6_upper(inner, data_end, &up) || up.later)
		return XDP_PASS;
	if (up.proto != IPPROTO_TCP && up.proto != IPPROTO_UDP)
		return XDP_PASS;
	__be16 *l4_ports = (void *)inner + up.off;
	if ((void *)(l4_ports + 2) > data_end)
		return XDP_PASS;
	__u8 daddr[16];
	__builtin_memcpy(daddr, &inner->daddr, 16);
	return steer_tunnelled(ctx, port_index, daddr, up.proto, l4_ports[1]);
}

// An ICMPv6 message at `icmp`: steered if it is an error about a balanced flow (see the header
// comment).
static __always_inline int icmp6_error(struct xdp_md *ctx, struct ipv6hdr *ip6, __u8 *icmp,
				       void *data_end, __u32 port_index)
{
	if ((void *)(icmp + 8) > data_end)
		return XDP_PASS;
	__u8 type = icmp[0];
	if (type != ICMPV6_DEST_UNREACH && type != ICMPV6_PKT_TOOBIG && type != ICMPV6_TIME_EXCEED)
		return XDP_PASS;
	struct ipv6hdr *q = (void *)(icmp + 8);
	if ((void *)(q + 1) > data_end)
		return XDP_PASS;
	if (q->version != 6)
		return XDP_PASS;
	struct upper6 up;
	if (ipv6_upper(q, data_end, &up) || up.later)
		return XDP_PASS;
	if (up.proto == NEXTHDR_IPV6 && type == ICMPV6_PKT_TOOBIG)
		return tunnel6_too_big(ctx, (void *)q + up.off, data_end, port_index);
	if (up.proto != IPPROTO_TCP && up.proto != IPPROTO_UDP)
		return XDP_PASS;
	__be16 *l4_ports = (void *)q + up.off;
	if ((void *)(l4_ports + 2) > data_end)
		return XDP_PASS;
	__u8 daddr[16], qsaddr[16], qdaddr[16];
	__builtin_memcpy(daddr, &ip6->daddr, 16);
	__builtin_memcpy(qsaddr, &q->saddr, 16);
	__builtin_memcpy(qdaddr, &q->daddr, 16);
	return steer_quoted(ctx, port_index, daddr, qsaddr, qdaddr, up.proto, l4_ports[0],
			    l4_ports[1]);
}

// An IPv6 packet (see the header comment).
static __always_inline int ipv6_frame(struct xdp_md *ctx, struct ipv6hdr *ip6, void *data_end,
				      __u32 port_index)
{
	if ((void *)(ip6 + 1) > data_end)
		return XDP_PASS;
	if (ip6->version != 6)
		return XDP_PASS;
	struct upper6 up;
	if (ipv6_upper(ip6, data_end, &up))
		return XDP_PASS;
	// ICMPv6 errors come whole: a fragmented one is the kernel's (as over IPv4).
	if (up.proto == NEXTHDR_ICMPV6 && !up.fragment)
		return icmp6_error(ctx, ip6, (void *)ip6 + up.off, data_end, port_index);
	if (up.proto != IPPROTO_TCP && up.proto != IPPROTO_UDP)
		return XDP_PASS;

	__u8 daddr[16], saddr[16];
	__builtin_memcpy(daddr, &ip6->daddr, 16);
	__builtin_memcpy(saddr, &ip6->saddr, 16);
	if (up.later)
		return steer_later_fragment(ctx, port_index, daddr, saddr, up.proto);

	__be16 *l4 = (void *)ip6 + up.off;
	if ((void *)(l4 + 2) > data_end)
		return XDP_PASS;
	return steer_flow(ctx, port_index, daddr, saddr, up.proto, l4[0], l4[1]);
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
	__u32 port_index = info->index;

	// VLAN-tagged frames are the kernel's until xvs knows which VLAN each port's traffic
	// belongs on (forwarding a tag from one segment onto another would be wrong).
	__be16 ethertype = eth->h_proto;
	if (ethertype == xvs_htons(ETH_P_IP))
		return ipv4_frame(ctx, (void *)(eth + 1), data_end, port_index);
	if (ethertype == xvs_htons(ETH_P_IPV6))
		return ipv6_frame(ctx, (void *)(eth + 1), data_end, port_index);
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual MIT/GPL";
