//! The packet path.
//!
//! [`Processor::process`] is a sans-IO function: it takes the current time and one Ethernet frame
//! (mutable, rewritten in place) and returns a [`Verdict`]. The worker loop (`worker`) feeds it
//! frames from AF_XDP rings (`xsk`) and moves frames to the TX ring the verdict names; the XDP
//! filter program (`filter`, source in `bpf/`) decides in the kernel which frames reach the sockets.
//!
//! Invariants kept by everything below the worker loop: no allocation, no syscalls, no clock reads,
//! no lock held longer than one connection-table operation. A bad packet is never a panic: it is a
//! [`DropReason`], counted per worker.

pub mod counters;
pub mod filter;
pub mod fragments;
pub mod fullnat;
pub mod install;
pub mod lookup;
pub mod nexthop;
pub mod placement;
pub mod process;
pub mod snapshot;
pub mod translation;
pub mod worker;
pub mod xsk;

/// The wire layer lives at the crate root ([`crate::wire`]) so that conntrack and vrrp can use it
/// without importing the datapath. This alias keeps `crate::datapath::wire::...` paths compiling
/// for code written before the move; new code imports `crate::wire`.
pub use crate::wire;

pub use counters::WorkerCounters;
pub use nexthop::{Mac, NextHopTable, Route};
pub use process::{Processor, Shared};
pub use snapshot::{Forwarding, Port, Service, ServiceKey, Snapshot};

/// Index of an attached interface in [`Snapshot::ports`] (the order of `datapath.interfaces`).
pub type PortId = u8;

/// What the worker does with a frame after [`Processor::process`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the (rewritten) frame on this port.
    Tx(PortId),
    /// Not load-balancer traffic: the kernel's business. The XDP filter passes such frames before
    /// they reach a socket; one that still arrives is counted as [`DropReason::NotLoadBalancerTraffic`].
    Pass,
    /// Drop the frame and count the reason.
    Drop(DropReason),
}

macro_rules! drop_reasons {
    ($( $(#[$doc:meta])* $variant:ident => $label:literal, )*) => {
        /// Why a frame was dropped. `Copy`, and doubles as an index into the per-worker counters.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $( $(#[$doc])* $variant, )*
        }

        impl DropReason {
            /// Every reason, in counter-index order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            /// Number of reasons (size of a counter array).
            pub const COUNT: usize = DropReason::ALL.len();

            /// The `reason` label of `xvs_drops_total`.
            pub const fn label(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $label,)*
                }
            }

            /// Index into a counter array.
            pub const fn index(self) -> usize {
                self as usize
            }
        }
    };
}

drop_reasons! {
    /// Shorter than an Ethernet header (or its VLAN tag).
    TruncatedEthernet => "truncated_ethernet",
    /// EtherType says IPv4 but the frame is shorter than a minimal IPv4 header.
    TruncatedIpv4 => "truncated_ipv4",
    /// EtherType says IPv4 but the version field is not 4, or IPv6 and it is not 6.
    BadIpVersion => "bad_ip_version",
    /// IHL below 5 or beyond the packet.
    BadIpv4HeaderLength => "bad_ipv4_header_length",
    /// Total length below the header length or beyond the frame.
    BadIpv4TotalLength => "bad_ipv4_total_length",
    /// The IPv4 header checksum does not verify.
    BadIpv4Checksum => "bad_ipv4_checksum",
    /// A later IPv4 fragment of a service's or real server's datagram whose first fragment was
    /// not forwarded (not seen yet, lost, or forgotten): xvs does not reassemble.
    Ipv4Fragment => "ipv4_fragment",
    /// TCP header cut short.
    TruncatedTcp => "truncated_tcp",
    /// TCP data offset below 5 or beyond the packet.
    BadTcpHeaderLength => "bad_tcp_header_length",
    /// TCP flags no TCP sends (no flag, SYN+FIN, SYN+RST, FIN without ACK, ...; see
    /// `TcpFlags::is_valid_combination`): scans and crafted packets.
    BadTcpFlags => "bad_tcp_flags",
    /// UDP header cut short.
    TruncatedUdp => "truncated_udp",
    /// UDP length field disagrees with the IP payload.
    BadUdpLength => "bad_udp_length",
    /// TTL would reach zero on forwarding.
    TtlExceeded => "ttl_exceeded",
    /// The service has no real server that can take a new flow.
    NoRealServer => "no_real_server",
    /// A non-SYN TCP segment to a service with no connection entry (and `sloppy_tcp` off).
    NoConnection => "no_connection",
    /// The connection table is full; the new flow was refused.
    ConntrackFull => "conntrack_full",
    /// A persistent service needed a new template and the template table is full.
    PersistenceFull => "persistence_full",
    /// FULLNAT: the service's `local_addresses` pool has no free local port (in the connection
    /// table shard of the flow's client endpoint); the new flow was refused.
    LocalPortsExhausted => "local_ports_exhausted",
    /// No route to the packet's new destination through an attached interface.
    NoRoute => "no_route",
    /// The next hop's MAC address is not known yet (resolution was requested).
    NoNeighbour => "no_neighbour",
    /// A frame the filter should not have steered (the kernel's traffic) reached a socket.
    NotLoadBalancerTraffic => "not_lb_traffic",
    /// The TX ring of the egress interface was full.
    TxRingFull => "tx_ring_full",
    /// DR: the real server is not on a directly connected network (its route has a gateway).
    DrNotOnLink => "dr_not_on_link",
    /// TUN: the packet would exceed the egress port's MTU once encapsulated. With DF set, an
    /// ICMP "fragmentation needed" (next-hop MTU = MTU - 20) went back to the client; over
    /// IPv6, an ICMPv6 Packet Too Big (MTU = MTU - 40, when that is at least 1280).
    TunnelMtu => "tunnel_mtu",
    /// TUN: the egress port has no address of the packet's family (IPv4, or for TUN6 a global
    /// IPv6 address) to use as the outer source.
    NoTunnelSource => "no_tunnel_source",
    /// TUN: the frame buffer has no room for the outer header (AF_XDP frames always have it;
    /// only a caller of `Processor::process` with an exact-size buffer sees this).
    NoFrameRoom => "no_frame_room",
    /// ICMP header cut short.
    TruncatedIcmp => "truncated_icmp",
    /// An ICMP error message (destination unreachable, time exceeded) whose ICMP checksum does
    /// not verify: never translated and passed on with a recomputed, valid checksum.
    BadIcmpChecksum => "bad_icmp_checksum",
    /// An ICMP error quoting a packet of a service or to a NAT real server that belongs to no
    /// tracked connection (gone, or never was).
    IcmpUntracked => "icmp_untracked",
    /// The frame's destination MAC is not the receiving port's own: another host's unicast
    /// frame (flooded by a hub, a bridge with ageing 0, an overflowed switch), a broadcast or a
    /// multicast. A Linux host drops such frames too (`PACKET_OTHERHOST`). The XDP filter passes
    /// them to the kernel; one that still reaches `process()` is dropped here.
    NotOurMac => "not_our_mac",
    /// The frame's source MAC is one of the box's own ports': a frame xvs itself sent, looped
    /// back (a hub, a bridge loop). Never balanced again.
    OwnFrame => "own_frame",
    /// A packet of a service whose VIP is managed by VRRP while no instance of this box holds it
    /// (BACKUP, FAULT, or not started yet): new flows, replies of existing connections
    /// (FULLNAT's included), their later fragments and ICMP errors about them. Only the MASTER
    /// forwards.
    VrrpBackup => "vrrp_backup",
    /// EtherType says IPv6 but the frame is shorter than the 40-byte IPv6 header.
    TruncatedIpv6 => "truncated_ipv6",
    /// The IPv6 payload length runs past the end of the frame.
    BadIpv6PayloadLength => "bad_ipv6_payload_length",
    /// An IPv6 header xvs would write with a flow label beyond 20 bits (never from a received
    /// packet: the field cannot hold one).
    BadIpv6FlowLabel => "bad_ipv6_flow_label",
    /// An IPv6 extension header (or its length byte) runs past the end of the payload: in a
    /// first fragment, the header chain does not reach the upper-layer header (RFC 7112).
    Ipv6ExtHeaderTruncated => "ipv6_ext_header_truncated",
    /// An IPv6 extension-header chain beyond xvs's bounds: more than 5 headers, or more than
    /// 512 bytes of them (a loop of destination options ends here).
    Ipv6ExtHeaderChain => "ipv6_ext_header_chain",
    /// IPv6 extension headers out of order: hop-by-hop options anywhere but first, or a second
    /// fragment header.
    Ipv6ExtHeaderOrder => "ipv6_ext_header_order",
    /// An IPv6 next header xvs does not walk: AH, ESP, mobility, HIP, shim6, experimental.
    Ipv6UnsupportedExtHeader => "ipv6_unsupported_ext_header",
    /// An IPv6 routing header with segments left: the destination is not the final one.
    Ipv6RoutingHeader => "ipv6_routing_header",
    /// An IPv6 fragment header breaking RFC 8200 §4.5: a non-last fragment whose data is not a
    /// multiple of 8 bytes, or one reaching past a 65535-byte reassembled payload.
    BadIpv6Fragment => "bad_ipv6_fragment",
    /// A UDP checksum that does not verify.
    BadUdpChecksum => "bad_udp_checksum",
    /// A UDP datagram over IPv6 with checksum 0 ("none"), which IPv6 forbids (RFC 8200 §8.1).
    UdpZeroChecksumIpv6 => "udp_zero_checksum_ipv6",
    /// ICMPv6 header cut short, or the packet an ICMPv6 error quotes cut before its fixed
    /// header, its extension headers or the 8 bytes of its TCP/UDP header end.
    TruncatedIcmpv6 => "truncated_icmpv6",
    /// An ICMPv6 error message (destination unreachable, packet too big, time exceeded) whose
    /// checksum does not verify: never translated.
    BadIcmpv6Checksum => "bad_icmpv6_checksum",
    /// A later IPv6 fragment of a service's, real server's or local address's datagram whose
    /// first fragment was not forwarded (not seen yet, lost, or forgotten): xvs does not
    /// reassemble.
    Ipv6Fragment => "ipv6_fragment",
}

impl From<crate::wire::Error> for DropReason {
    /// The drop reason (and so the `xvs_drops_total` label) of each malformation the wire layer
    /// finds: one reason per header field, whichever way the field is wrong. A header of another
    /// protocol than the `Repr` parsing it expects, and ARP, are not load-balancer traffic.
    fn from(e: crate::wire::Error) -> DropReason {
        use crate::wire::Error as E;
        match e {
            E::TruncatedEthernet => DropReason::TruncatedEthernet,
            E::TruncatedIpv4 => DropReason::TruncatedIpv4,
            E::BadIpVersion => DropReason::BadIpVersion,
            E::Ipv4HeaderLenTooSmall | E::Ipv4HeaderLenPastEnd => DropReason::BadIpv4HeaderLength,
            E::Ipv4TotalLenTooSmall | E::Ipv4TotalLenPastEnd => DropReason::BadIpv4TotalLength,
            E::BadIpv4Checksum => DropReason::BadIpv4Checksum,
            E::Ipv4Fragment => DropReason::Ipv4Fragment,
            E::UnexpectedProtocol => DropReason::NotLoadBalancerTraffic,
            E::TruncatedTcp => DropReason::TruncatedTcp,
            E::TcpHeaderLenTooSmall | E::TcpHeaderLenPastEnd => DropReason::BadTcpHeaderLength,
            E::TruncatedUdp => DropReason::TruncatedUdp,
            E::UdpLenTooSmall | E::UdpLenPastEnd => DropReason::BadUdpLength,
            E::TruncatedIcmp => DropReason::TruncatedIcmp,
            E::BadIcmpChecksum => DropReason::BadIcmpChecksum,
            E::TruncatedArp | E::UnsupportedArp => DropReason::NotLoadBalancerTraffic,
            E::TruncatedIpv6 => DropReason::TruncatedIpv6,
            E::Ipv6PayloadLenPastEnd => DropReason::BadIpv6PayloadLength,
            E::Ipv6FlowLabelTooBig => DropReason::BadIpv6FlowLabel,
            E::Ipv6ExtHeaderTruncated => DropReason::Ipv6ExtHeaderTruncated,
            E::Ipv6TooManyExtHeaders | E::Ipv6ExtHeadersTooLong => DropReason::Ipv6ExtHeaderChain,
            E::Ipv6HopByHopNotFirst | E::Ipv6RepeatedFragmentHeader => {
                DropReason::Ipv6ExtHeaderOrder
            }
            E::Ipv6UnsupportedNextHeader => DropReason::Ipv6UnsupportedExtHeader,
            E::Ipv6RoutingSegmentsLeft => DropReason::Ipv6RoutingHeader,
            E::Ipv6FragmentLenNotMultipleOf8 | E::Ipv6FragmentPastMaxLen => {
                DropReason::BadIpv6Fragment
            }
            E::BadUdpChecksum => DropReason::BadUdpChecksum,
            E::UdpZeroChecksumIpv6 => DropReason::UdpZeroChecksumIpv6,
            E::TruncatedIcmpv6 => DropReason::TruncatedIcmpv6,
            E::BadIcmpv6Checksum => DropReason::BadIcmpv6Checksum,
            // Neighbour discovery, MLD: the kernel's, like ARP.
            E::UnsupportedIcmpv6 => DropReason::NotLoadBalancerTraffic,
        }
    }
}
