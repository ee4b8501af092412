//! Golden packet table for NAT forwarding.
//!
//! `tests/golden/nat.golden` holds, in order, cases of {description, input frame, expected
//! verdict, expected output frame}. They are replayed through one `Processor` (the order matters:
//! replies need the connections earlier cases created) with a fixed snapshot and next-hop table
//! matching the test lab.
//!
//! The expected frames are built independently of xvs's rewrite code: etherparse builds every
//! frame from field values and computes all checksums from scratch, so a wrong incremental
//! checksum update shows up as a byte mismatch. `golden_file_matches_its_builder` keeps the file
//! and this builder in step; run with `XVS_BLESS=1` to rewrite the file after a deliberate change,
//! and review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

use etherparse::{IpHeaders, Ipv4Header, Ipv4Options, PacketBuilder, VlanId};

#[path = "fixtures/golden.rs"]
mod golden;
#[path = "fixtures/nat_lab.rs"]
mod nat_lab;

use golden::{case, Case};

use nat_lab::*;

// ---------------------------------------------------------------------------------------------
// Frame builder (etherparse; independent of xvs's wire code)

#[derive(Clone, Copy)]
enum L4 {
    Tcp { flags: &'static str, seq: u32 },
    Udp,
}

#[derive(Clone, Copy)]
struct Pkt {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    vlan: Option<u16>,
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    ip_options: bool,
    sport: u16,
    dport: u16,
    l4: L4,
    payload: &'static [u8],
}

impl Pkt {
    fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: &'static str) -> Pkt {
        Pkt {
            src_mac: CLIENT_MAC,
            dst_mac: WAN_MAC,
            vlan: None,
            src,
            dst,
            ttl: 64,
            ip_options: false,
            sport,
            dport,
            l4: L4::Tcp { flags, seq: 1000 },
            payload: b"",
        }
    }

    fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &'static [u8]) -> Pkt {
        Pkt {
            l4: L4::Udp,
            payload,
            ..Pkt::tcp(src, sport, dst, dport, "")
        }
    }

    fn sent_on_lan(mut self) -> Pkt {
        self.src_mac = if self.src == R2 { R2_MAC } else { R1_MAC };
        self.dst_mac = LAN_MAC;
        self
    }

    fn build(&self) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2(self.src_mac, self.dst_mac);
        let mut ip =
            Ipv4Header::new(0, self.ttl, etherparse::IpNumber::TCP, self.src, self.dst).unwrap();
        ip.identification = 0x1234;
        ip.dont_fragment = true;
        if self.ip_options {
            // Router Alert (RFC 2113) padded to 4 bytes: IHL 6.
            ip.options = Ipv4Options::try_from(&[0x94, 0x04, 0x00, 0x00][..]).unwrap();
        }
        let ip = IpHeaders::Ipv4(ip, Default::default());
        let step = match self.vlan {
            Some(v) => eth.single_vlan(VlanId::try_new(v).unwrap()).ip(ip),
            None => eth.ip(ip),
        };
        let mut out = Vec::new();
        match self.l4 {
            L4::Tcp { flags, seq } => {
                let mut t = step.tcp(self.sport, self.dport, seq, 64240);
                for f in flags.chars() {
                    t = match f {
                        'S' => t.syn(),
                        'A' => t.ack(1),
                        'F' => t.fin(),
                        'R' => t.rst(),
                        'P' => t.psh(),
                        _ => panic!("flag {f}"),
                    };
                }
                t.write(&mut out, self.payload).unwrap();
            }
            L4::Udp => step
                .udp(self.sport, self.dport)
                .write(&mut out, self.payload)
                .unwrap(),
        }
        out
    }
}

/// What a NAT director should emit for `p`: `rewrite` applied, TTL decremented, MACs of the
/// egress hop.
fn nat(p: Pkt, rewrite: impl FnOnce(&mut Pkt), src_mac: [u8; 6], dst_mac: [u8; 6]) -> Vec<u8> {
    let mut o = p;
    rewrite(&mut o);
    o.ttl -= 1;
    o.src_mac = src_mac;
    o.dst_mac = dst_mac;
    o.build()
}

fn to_r1(p: &mut Pkt) {
    p.dst = R1;
}

fn to_r2(p: &mut Pkt) {
    p.dst = R2;
}

fn from_vip(port: u16) -> impl FnOnce(&mut Pkt) {
    move |p: &mut Pkt| {
        p.src = VIP;
        p.sport = port;
    }
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    let syn = Pkt::tcp(CLIENT, 40000, VIP, 80, "S");
    v.push(case(
        "TCP SYN to VIP:80, first wrr pick (3:1) is r1: destination NATed, TTL 63, LAN MACs",
        syn.build(),
        "tx 1",
        Some(nat(syn, to_r1, LAN_MAC, R1_MAC)),
    ));
    let synack = Pkt::tcp(R1, 80, CLIENT, 40000, "SA").sent_on_lan();
    v.push(case(
        "TCP SYN-ACK from r1: source rewritten to VIP:80, out on WAN to the client",
        synack.build(),
        "tx 0",
        Some(nat(synack, from_vip(80), WAN_MAC, CLIENT_MAC)),
    ));
    let ack = Pkt {
        payload: b"GET / HTTP/1.0\r\n\r\n",
        ..Pkt::tcp(CLIENT, 40000, VIP, 80, "PA")
    };
    v.push(case(
        "TCP ACK with data on the established flow follows the connection to r1",
        ack.build(),
        "tx 1",
        Some(nat(ack, to_r1, LAN_MAC, R1_MAC)),
    ));
    let resp = Pkt {
        payload: b"HTTP/1.0 200 OK\r\n\r\nr1\n",
        ..Pkt::tcp(R1, 80, CLIENT, 40000, "PA").sent_on_lan()
    };
    v.push(case(
        "TCP data reply from r1",
        resp.build(),
        "tx 0",
        Some(nat(resp, from_vip(80), WAN_MAC, CLIENT_MAC)),
    ));
    for port in [40001u16, 40002] {
        let s = Pkt::tcp(CLIENT, port, VIP, 80, "S");
        v.push(case(
            &format!("TCP SYN from port {port}: wrr picks r1 again (weight 3)"),
            s.build(),
            "tx 1",
            Some(nat(s, to_r1, LAN_MAC, R1_MAC)),
        ));
    }
    let s = Pkt::tcp(CLIENT, 40003, VIP, 80, "S");
    v.push(case(
        "TCP SYN from port 40003: fourth new flow goes to r2 (weight 1)",
        s.build(),
        "tx 1",
        Some(nat(s, to_r2, LAN_MAC, R2_MAC)),
    ));
    let r = Pkt::tcp(R2, 80, CLIENT, 40003, "SA").sent_on_lan();
    v.push(case(
        "TCP SYN-ACK from r2",
        r.build(),
        "tx 0",
        Some(nat(r, from_vip(80), WAN_MAC, CLIENT_MAC)),
    ));
    let vl = Pkt {
        vlan: Some(42),
        ..Pkt::tcp(CLIENT, 40004, VIP, 80, "S")
    };
    v.push(case(
        "802.1Q-tagged SYN to VIP:80: pass (VLAN-tagged traffic is not balanced yet)",
        vl.build(),
        "pass",
        None,
    ));
    let opt = Pkt {
        ip_options: true,
        ..Pkt::tcp(CLIENT, 40005, VIP, 80, "S")
    };
    v.push(case(
        "SYN with IPv4 options (IHL 6): transport header found after the options (r1)",
        opt.build(),
        "tx 1",
        Some(nat(opt, to_r1, LAN_MAC, R1_MAC)),
    ));
    let fin = Pkt::tcp(CLIENT, 40000, VIP, 80, "FA");
    v.push(case(
        "TCP FIN on the first flow still forwards to r1",
        fin.build(),
        "tx 1",
        Some(nat(fin, to_r1, LAN_MAC, R1_MAC)),
    ));
    let u = Pkt::udp(CLIENT, 50000, VIP, 53, b"query-1");
    v.push(case(
        "UDP to VIP:53 (rr, first pick r1): destination and port rewritten to 198.18.1.11:5353",
        u.build(),
        "tx 1",
        Some(nat(
            u,
            |p| {
                p.dst = R1;
                p.dport = 5353
            },
            LAN_MAC,
            R1_MAC,
        )),
    ));
    let ur = Pkt::udp(R1, 5353, CLIENT, 50000, b"r1:query-1").sent_on_lan();
    v.push(case(
        "UDP reply from r1:5353: source rewritten to VIP:53",
        ur.build(),
        "tx 0",
        Some(nat(ur, from_vip(53), WAN_MAC, CLIENT_MAC)),
    ));
    let u2 = Pkt::udp(CLIENT, 50001, VIP, 53, b"query-2");
    v.push(case(
        "UDP from another client port: rr picks r2",
        u2.build(),
        "tx 1",
        Some(nat(
            u2,
            |p| {
                p.dst = R2;
                p.dport = 5353
            },
            LAN_MAC,
            R2_MAC,
        )),
    ));
    let mut u0 = Pkt::udp(CLIENT, 50000, VIP, 53, b"query-3").build();
    u0[14 + 20 + 6] = 0;
    u0[14 + 20 + 7] = 0;
    let mut u0_out = nat(
        Pkt::udp(CLIENT, 50000, VIP, 53, b"query-3"),
        |p| {
            p.dst = R1;
            p.dport = 5353
        },
        LAN_MAC,
        R1_MAC,
    );
    u0_out[14 + 20 + 6] = 0;
    u0_out[14 + 20 + 7] = 0;
    v.push(case(
        "UDP without checksum (0) on the tracked flow: checksum stays 0",
        u0,
        "tx 1",
        Some(u0_out),
    ));
    // Not load-balancer traffic.
    v.push(case(
        "TCP to the box's own address (SSH): pass to the kernel",
        Pkt::tcp(CLIENT, 40100, LB_WAN, 22, "S").build(),
        "pass",
        None,
    ));
    v.push(case(
        "TCP to the VIP on a port with no service: pass",
        Pkt::tcp(CLIENT, 40101, VIP, 443, "S").build(),
        "pass",
        None,
    ));
    let mut icmp = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, WAN_MAC)
        .ipv4(CLIENT, VIP, 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut icmp, b"ping")
        .unwrap();
    v.push(case(
        "ICMP echo to the VIP: pass (the kernel answers)",
        icmp,
        "pass",
        None,
    ));
    // Unicast, as a neighbour refreshing its entry sends it: a broadcast one is another host's
    // business until the kernel says otherwise (see the cases at the end).
    let mut arp = WAN_MAC.to_vec();
    arp.extend_from_slice(&CLIENT_MAC);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&CLIENT_MAC);
    arp.extend_from_slice(&CLIENT);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&VIP);
    v.push(case(
        "ARP request for the VIP (unicast to wan0): pass",
        arp.clone(),
        "pass",
        None,
    ));
    v.push(case(
        "reply from a real server with no connection: pass",
        Pkt::tcp(R1, 80, CLIENT, 41000, "A").sent_on_lan().build(),
        "pass",
        None,
    ));
    // Drops.
    v.push(case(
        "TCP ACK to VIP:80 with no connection: drop",
        Pkt::tcp(CLIENT, 41001, VIP, 80, "A").build(),
        "drop no_connection",
        None,
    ));
    v.push(case(
        "new flow to a service whose only real has weight 0: drop",
        Pkt::tcp(CLIENT, 41002, VIP, 9090, "S").build(),
        "drop no_real_server",
        None,
    ));
    v.push(case(
        "new flow whose real server has no known MAC: drop, resolution requested",
        Pkt::tcp(CLIENT, 41003, VIP, 8080, "S").build(),
        "drop no_neighbour",
        None,
    ));
    let ttl1 = Pkt {
        ttl: 1,
        ..Pkt::tcp(CLIENT, 41004, VIP, 80, "S")
    };
    v.push(case(
        "TTL 1 to the VIP: drop",
        ttl1.build(),
        "drop ttl_exceeded",
        None,
    ));
    let good = Pkt::tcp(CLIENT, 41005, VIP, 80, "S").build();
    v.push(case(
        "10-byte frame: drop",
        good[..10].to_vec(),
        "drop truncated_ethernet",
        None,
    ));
    v.push(case(
        "IPv4 EtherType, 19 bytes of IP: drop",
        good[..14 + 19].to_vec(),
        "drop truncated_ipv4",
        None,
    ));
    let mut bad = good.clone();
    bad[14] = 0x65;
    v.push(case(
        "IP version 6 under the IPv4 EtherType: drop",
        bad,
        "drop bad_ip_version",
        None,
    ));
    let mut bad = good.clone();
    bad[14] = 0x44;
    v.push(case(
        "IHL 4: drop",
        bad,
        "drop bad_ipv4_header_length",
        None,
    ));
    let mut bad = good.clone();
    bad[14] = 0x4f;
    v.push(case(
        "IHL 15 beyond the packet: drop",
        bad,
        "drop bad_ipv4_header_length",
        None,
    ));
    let mut bad = good.clone();
    bad[14 + 3] = bad[14 + 3].wrapping_add(1);
    v.push(case(
        "total length one past the frame: drop",
        bad,
        "drop bad_ipv4_total_length",
        None,
    ));
    let mut bad = good.clone();
    bad[14 + 10] ^= 0xff;
    v.push(case(
        "corrupt IPv4 header checksum: drop",
        bad,
        "drop bad_ipv4_checksum",
        None,
    ));
    let trunc_tcp = PacketBuilder::ethernet2(CLIENT_MAC, WAN_MAC).ipv4(CLIENT, VIP, 64);
    let mut t = Vec::new();
    trunc_tcp.udp(1, 2).write(&mut t, &[0; 12]).unwrap();
    // Re-label the 20-byte transport as TCP with only 19 bytes: protocol 6, total length -1.
    t.truncate(14 + 20 + 19);
    t[14 + 9] = 6;
    t[14 + 3] -= 1;
    fix_ip_checksum(&mut t);
    v.push(case(
        "TCP header cut at 19 bytes: drop",
        t,
        "drop truncated_tcp",
        None,
    ));
    let mut t = good.clone();
    t[14 + 20 + 12] = 0x40;
    v.push(case(
        "TCP data offset 4: drop",
        t,
        "drop bad_tcp_header_length",
        None,
    ));
    let mut u = Pkt::udp(CLIENT, 50002, VIP, 53, b"x").build();
    u[14 + 20 + 5] += 1;
    v.push(case(
        "UDP length one past the IP payload: drop",
        u,
        "drop bad_udp_length",
        None,
    ));
    // Fragments: a UDP datagram split after 16 bytes of IP payload (UDP header + 8 bytes).
    // The expected fragments are the NATed whole datagram (built and checksummed by
    // etherparse) split the same way, so the first fragment's UDP checksum must cover the
    // whole datagram.
    let q = Pkt::udp(CLIENT, 50100, VIP, 53, b"fragmented-query");
    let (first, later) = fragments(q.build(), 16, 0x4242);
    let to_r1_5353 = |p: &mut Pkt| {
        p.dst = R1;
        p.dport = 5353;
    };
    let (first_out, later_out) = fragments(nat(q, to_r1_5353, LAN_MAC, R1_MAC), 16, 0x4242);
    v.push(case(
        "first fragment of a UDP datagram to VIP:53 (rr: r1): NATed, checksum of the whole datagram",
        first,
        "tx 1",
        Some(first_out),
    ));
    v.push(case(
        "later fragment of that datagram: follows the first fragment's translation",
        later.clone(),
        "tx 1",
        Some(later_out),
    ));
    let mut unknown = later;
    unknown[14 + 4..14 + 6].copy_from_slice(&0x4343u16.to_be_bytes());
    fix_ip_checksum(&mut unknown);
    v.push(case(
        "later fragment to the VIP whose first fragment was never seen: drop",
        unknown,
        "drop ipv4_fragment",
        None,
    ));
    let (_, not_ours) = fragments(
        Pkt::udp(CLIENT, 50101, LB_WAN, 53, b"fragmented-query").build(),
        16,
        7,
    );
    v.push(case(
        "later fragment to the box's own address: pass to the kernel",
        not_ours,
        "pass",
        None,
    ));
    let r = Pkt::udp(R1, 5353, CLIENT, 50100, b"r1:fragmented-answer").sent_on_lan();
    let (first, later) = fragments(r.build(), 16, 0x5151);
    let (first_out, later_out) = fragments(nat(r, from_vip(53), WAN_MAC, CLIENT_MAC), 16, 0x5151);
    v.push(case(
        "first fragment of r1's reply: source rewritten to VIP:53",
        first,
        "tx 0",
        Some(first_out),
    ));
    v.push(case(
        "later fragment of r1's reply: source rewritten to the VIP",
        later,
        "tx 0",
        Some(later_out),
    ));
    not_addressed_to_the_box(&mut v, arp);
    v
}

/// Frames the box must never balance (a hub, a bridge with ageing 0 or an overflowed switch
/// floods them to it, or they are its own, looped back): SYNs to VIP:80 that a new flow would
/// take, each dropped with its reason and never transmitted.
fn not_addressed_to_the_box(v: &mut Vec<Case>, unicast_arp: Vec<u8>) {
    // The other box of a VRRP pair.
    const OTHER_LB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];
    const NOT_OURS: &str = "drop, not addressed to the box";
    const OWN: &str = "drop, never balanced again";
    // (the frame's MACs, what they are, the verdict)
    let syns = [
        (
            OTHER_LB_MAC,
            CLIENT_MAC,
            "sent to another host's MAC (the other load balancer's)",
            NOT_OURS,
            "drop not_our_mac",
        ),
        (
            R1_MAC,
            CLIENT_MAC,
            "sent to a real server's MAC",
            NOT_OURS,
            "drop not_our_mac",
        ),
        (
            [0xff; 6],
            CLIENT_MAC,
            "sent to the broadcast MAC",
            NOT_OURS,
            "drop not_our_mac",
        ),
        (
            [0x01, 0, 0x5e, 0, 0, 0x12],
            CLIENT_MAC,
            "sent to an IPv4 multicast MAC (01:00:5e:00:00:12)",
            NOT_OURS,
            "drop not_our_mac",
        ),
        (
            [0x33, 0x33, 0, 0, 0, 1],
            CLIENT_MAC,
            "sent to an IPv6 multicast MAC (33:33:00:00:00:01)",
            NOT_OURS,
            "drop not_our_mac",
        ),
        (
            WAN_MAC,
            LAN_MAC,
            "on wan0 from lan0's MAC (sent by xvs on lan0, looped to wan0)",
            OWN,
            "drop own_frame",
        ),
        (
            WAN_MAC,
            WAN_MAC,
            "on wan0 from wan0's MAC (sent by xvs on wan0, back through a hub)",
            OWN,
            "drop own_frame",
        ),
    ];
    for (dst_mac, src_mac, what, why, verdict) in syns {
        let syn = Pkt {
            dst_mac,
            src_mac,
            ..Pkt::tcp(CLIENT, 42000, VIP, 80, "S")
        };
        v.push(case(
            &format!("TCP SYN to VIP:80 {what}: {why}"),
            syn.build(),
            verdict,
            None,
        ));
    }
    let udp = Pkt {
        dst_mac: [0xff; 6],
        ..Pkt::udp(CLIENT, 52000, VIP, 53, b"query")
    };
    v.push(case(
        "UDP to VIP:53 sent to the broadcast MAC: drop",
        udp.build(),
        "drop not_our_mac",
        None,
    ));
    let mut arp = unicast_arp;
    arp[..6].fill(0xff);
    v.push(case(
        "broadcast ARP request for the VIP: drop (the filter gives it to the kernel first)",
        arp,
        "drop not_our_mac",
        None,
    ));
    let reply = Pkt {
        src_mac: LAN_MAC,
        ..Pkt::tcp(R1, 80, CLIENT, 40000, "PA").sent_on_lan()
    };
    v.push(case(
        "reply of the tracked flow from r1 to lan0 but with lan0's own source MAC: drop (own_frame)",
        reply.build(),
        "drop own_frame",
        None,
    ));
}

/// Splits an Ethernet/IPv4 frame (no IP options) into two fragments after `at` bytes of IP
/// payload (a multiple of 8), with IP identification `id` and fresh header checksums.
fn fragments(frame: Vec<u8>, at: usize, id: u16) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(at % 8, 0);
    let (head, payload) = frame.split_at(14 + 20);
    let piece = |data: &[u8], offset: usize, more: bool| {
        let mut f = head.to_vec();
        f.extend_from_slice(data);
        f[14 + 2..14 + 4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
        f[14 + 4..14 + 6].copy_from_slice(&id.to_be_bytes());
        let flags = if more { 0x2000 } else { 0 } | (offset / 8) as u16;
        f[14 + 6..14 + 8].copy_from_slice(&flags.to_be_bytes());
        fix_ip_checksum(&mut f);
        f
    };
    (
        piece(&payload[..at], 0, true),
        piece(&payload[at..], at, false),
    )
}

fn fix_ip_checksum(f: &mut [u8]) {
    f[14 + 10] = 0;
    f[14 + 11] = 0;
    let h = Ipv4Header::from_slice(&f[14..]).unwrap().0;
    f[14 + 10..14 + 12].copy_from_slice(&h.calc_header_checksum().to_be_bytes());
}

// ---------------------------------------------------------------------------------------------
// File format

const GOLDEN: &str = "nat.golden";
const HEADER: &str =
    "# Golden NAT cases, replayed in order through one Processor (see tests/golden_nat.rs).\n\
     # Lab: client 198.18.0.2, VIP 198.18.0.100 (tcp/80 wrr r1:3 r2:1; udp/53 rr -> :5353),\n\
     # r1 198.18.1.11, r2 198.18.1.12; port 0 = wan0, port 1 = lan0.\n";

#[test]
fn golden_file_matches_its_builder() {
    golden::file_matches_builder(GOLDEN, HEADER, &cases());
}

#[test]
fn golden_nat_table() {
    let cases = golden::load(GOLDEN, 30);
    let mut p = processor(1000);
    let failures = golden::replay(&mut p, &cases, 0);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The unresolved next hop was handed to the control plane.
    assert_eq!(
        p.shared().neighbour_misses.pop(),
        Some("198.18.1.13".parse().unwrap())
    );
}

#[test]
fn outputs_verify_with_an_independent_parser() {
    for c in golden::load(GOLDEN, 30) {
        if let Some(o) = c.output {
            golden::check_routed_output(&o, &c.what);
        }
    }
}
