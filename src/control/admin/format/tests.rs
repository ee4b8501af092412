//! The ipvsadm layouts, each line checked against ipvsadm's own.

use super::*;
use crate::control::admin::protocol::{ConnInfo, RateInfo, VrrpInstanceInfo, WorkerInfo};

pub(crate) fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn real(addr: &str, weight: u32, active: u64, inactive: u64) -> RealInfo {
    RealInfo {
        address: sa(addr),
        weight,
        up: true,
        active_connections: active,
        inactive_connections: inactive,
        connections_total: active + inactive,
        stats: StatsInfo::default(),
        rate: RateInfo::default(),
    }
}

/// A NAT service on 198.18.0.100 with quorum, no sorry server, no counters.
fn service(
    name: &str,
    protocol: &str,
    port: u16,
    scheduler: &str,
    reals: Vec<RealInfo>,
) -> ServiceInfo {
    ServiceInfo {
        name: name.into(),
        protocol: protocol.into(),
        vip: "198.18.0.100".parse().unwrap(),
        port,
        scheduler: scheduler.into(),
        forwarding: "nat".into(),
        reals,
        quorum: true,
        sorry_server: None,
        connections_total: 0,
        stats: StatsInfo::default(),
        rate: RateInfo::default(),
    }
}

pub(crate) fn lab_list() -> ListReply {
    ListReply {
        version: "0.1.0".into(),
        conntrack_max_entries: 1_000_000,
        services: vec![
            // Config order differs from ipvsadm's sort order on purpose.
            service(
                "dns",
                "udp",
                53,
                "rr",
                vec![
                    real("198.18.1.12:5353", 1, 0, 7),
                    real("198.18.1.11:5353", 1, 0, 8),
                ],
            ),
            service(
                "web",
                "tcp",
                80,
                "wrr",
                vec![
                    real("198.18.1.11:80", 3, 12, 3),
                    real("198.18.1.12:80", 1, 4, 1),
                ],
            ),
        ],
    }
}

#[test]
fn list_matches_ipvsadm_layout() {
    let want = "\
xvs version 0.1.0 (size=1000000)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.100:80 wrr
  -> 198.18.1.11:80               Masq    3      12         3         
  -> 198.18.1.12:80               Masq    1      4          1         
UDP  198.18.0.100:53 rr
  -> 198.18.1.11:5353             Masq    1      0          8         
  -> 198.18.1.12:5353             Masq    1      0          7         
";
    assert_eq!(format_list(&lab_list()), want);
}

#[test]
fn list_shows_down_servers_at_weight_0_and_the_sorry_server_while_quorum_is_lost() {
    let mut l = lab_list();
    let web = &mut l.services[1];
    web.reals[1].up = false;
    web.sorry_server = Some(real("198.18.1.11:8080", 1, 0, 2));
    let text = format_list(&l);
    assert!(
        text.contains("  -> 198.18.1.11:80               Masq    3 "),
        "{text}"
    );
    assert!(
        text.contains("  -> 198.18.1.12:80               Masq    0 "),
        "{text}"
    );
    assert!(
        !text.contains("8080"),
        "quorum kept: no sorry server line\n{text}"
    );
    let web = &mut l.services[1];
    web.reals[0].up = false;
    web.quorum = false;
    let text = format_list(&l);
    let want = "\
TCP  198.18.0.100:80 wrr
  -> 198.18.1.11:80               Masq    0      12         3         
  -> 198.18.1.11:8080             Masq    1      0          2         
  -> 198.18.1.12:80               Masq    0      4          1         
";
    assert!(text.contains(want), "{text}");
    // An older daemon's JSON without the new fields reads as up and with quorum.
    let old: RealInfo = serde_json::from_str(
        r#"{"address":"198.18.1.11:80","weight":1,"active_connections":0,"inactive_connections":0,"connections_total":0}"#,
    )
    .unwrap();
    assert!(old.up);
}

#[test]
fn list_columns_line_up_with_the_headers() {
    let text = format_list(&lab_list());
    let lines: Vec<&str> = text.lines().collect();
    let header = lines[2];
    let row = lines[4];
    for col in ["Forward", "Weight", "ActiveConn", "InActConn"] {
        let at = header.find(col).unwrap();
        assert_ne!(
            &row[at..at + 1],
            " ",
            "{col} column starts at {at} in {row:?}"
        );
        assert_eq!(&row[at - 1..at], " ", "{col} column at {at} in {row:?}");
    }
}

#[test]
fn list_without_services_prints_the_headers() {
    let r = ListReply {
        version: "0.1.0".into(),
        conntrack_max_entries: 10,
        services: vec![],
    };
    assert_eq!(
        format_list(&r),
        "xvs version 0.1.0 (size=10)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
    );
}

#[test]
fn conns_match_ipvsadm_layout() {
    let r = ConnsReply {
        connections: vec![
            ConnInfo {
                protocol: "tcp".into(),
                client: sa("198.18.0.2:40312"),
                vip: sa("198.18.0.100:80"),
                real: sa("198.18.1.11:80"),
                local: None,
                state: "ESTABLISHED".into(),
                expire_seconds: 899,
            },
            ConnInfo {
                protocol: "tcp".into(),
                client: sa("198.18.0.2:40314"),
                vip: sa("198.18.0.100:80"),
                real: sa("198.18.1.12:80"),
                local: None,
                state: "CLOSE".into(),
                expire_seconds: 9,
            },
            ConnInfo {
                protocol: "udp".into(),
                client: sa("198.18.0.2:51000"),
                vip: sa("198.18.0.100:53"),
                real: sa("198.18.1.12:5353"),
                local: None,
                state: "UDP".into(),
                expire_seconds: 299,
            },
        ],
    };
    let want = "\
IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:59  ESTABLISHED 198.18.0.2:40312   198.18.0.100:80    198.18.1.11:80
TCP 00:09  CLOSE       198.18.0.2:40314   198.18.0.100:80    198.18.1.12:80
UDP 04:59  UDP         198.18.0.2:51000   198.18.0.100:53    198.18.1.12:5353
";
    assert_eq!(format_conns(&r), want);
}

#[test]
fn fullnat_conns_get_a_local_column() {
    let conn = |client: &str, real: &str, local: Option<&str>| ConnInfo {
        protocol: "tcp".into(),
        client: sa(client),
        vip: sa("198.18.0.100:80"),
        real: sa(real),
        local: local.map(sa),
        state: "ESTABLISHED".into(),
        expire_seconds: 899,
    };
    let r = ConnsReply {
        connections: vec![
            conn(
                "198.18.0.2:40312",
                "198.18.1.11:80",
                Some("198.18.1.2:20000"),
            ),
            conn("198.18.0.2:40313", "198.18.1.12:80", None),
        ],
    };
    let want = "\
IPVS connection entries
pro expire state       source             virtual            local              destination
TCP 14:59  ESTABLISHED 198.18.0.2:40312   198.18.0.100:80    198.18.1.2:20000   198.18.1.11:80
TCP 14:59  ESTABLISHED 198.18.0.2:40313   198.18.0.100:80    -                  198.18.1.12:80
";
    assert_eq!(format_conns(&r), want);
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("\"local\":\"198.18.1.2:20000\""), "{json}");
    assert_eq!(
        json.matches("\"local\"").count(),
        1,
        "NAT rows have no local: {json}"
    );
}

#[test]
fn vrrp_without_instances() {
    assert_eq!(
        format_vrrp(&VrrpReply { instances: vec![] }),
        "no VRRP instances\n"
    );
}

#[test]
fn vrrp_lists_name_vrid_state_priority_master() {
    let r = VrrpReply {
        instances: vec![
            VrrpInstanceInfo {
                name: "VI_1".into(),
                vrid: 51,
                state: "MASTER".into(),
                priority: 200,
                master: Some("198.18.0.11".parse().unwrap()),
            },
            VrrpInstanceInfo {
                name: "VI_2".into(),
                vrid: 52,
                state: "FAULT".into(),
                priority: 100,
                master: None,
            },
        ],
    };
    assert_eq!(
        format_vrrp(&r),
        "instance         vrid  state    priority master\n\
         VI_1             51    MASTER   200      198.18.0.11\n\
         VI_2             52    FAULT    100      -\n"
    );
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("\"master\":\"198.18.0.11\""), "{json}");
    assert!(json.contains("\"master\":null"), "{json}");
}

/// `lab_list` with counters: web 200 connections, dns 100; big numbers on .11:80.
fn lab_list_with_stats() -> ListReply {
    let mut l = lab_list();
    let st = |ip: u64, op: u64, ib: u64, ob: u64| StatsInfo {
        in_packets: ip,
        out_packets: op,
        in_bytes: ib,
        out_bytes: ob,
    };
    let rate = |cps, in_pps, out_pps, in_bps, out_bps| RateInfo {
        cps,
        in_pps,
        out_pps,
        in_bps,
        out_bps,
    };
    let dns = &mut l.services[0];
    dns.connections_total = 100;
    dns.stats = st(100, 100, 3_800, 5_000);
    dns.reals[0].connections_total = 50;
    dns.reals[0].stats = st(50, 50, 1_900, 2_500);
    dns.reals[1].connections_total = 50;
    dns.reals[1].stats = st(50, 50, 1_900, 2_500);
    dns.rate = rate(5, 5, 5, 190, 250);
    // reals[1] is .11 (config order is not ipvsadm's order).
    dns.reals[1].rate = rate(3, 3, 3, 114, 150);
    let web = &mut l.services[1];
    web.connections_total = 200;
    web.stats = st(123_456_789, 1_400, 98_765_432_109, 250_000_000_000_000);
    web.reals[0].connections_total = 150;
    web.reals[0].stats = st(123_456_000, 1_050, 98_765_000_000, 249_999_999_999_999);
    web.reals[1].connections_total = 50;
    web.reals[1].stats = st(789, 350, 432_109, 1);
    web.rate = rate(1234, 123_456_789, 99_999_999, 1_000_000_000, 7);
    web.reals[0].rate = rate(1000, 123_456_789, 99_999_999, 1_000_000_000, 7);
    l
}

#[test]
fn largenum_matches_ipvsadm() {
    for (n, want) in [
        (0, "        0"),
        (99_999_999, " 99999999"),
        (100_000_000, "  100000K"),
        (999_999_999, "  999999K"),
        (1_000_000_000, "    1000M"),
        (99_999_999_999, "   99999M"),
        (100_000_000_000, "     100G"),
        (99_999_999_999_999, "   99999G"),
        (100_000_000_000_000, "     100T"),
        (u64::MAX, "18446744T"),
    ] {
        assert_eq!(largenum(n), want, "{n}");
    }
}

#[test]
fn list_stats_matches_ipvsadm_layout() {
    let want = "\
xvs version 0.1.0 (size=1000000)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  198.18.0.100:80                   200  123456K     1400   98765M     250T
  -> 198.18.1.11:80                    150  123456K     1050   98765M     249T
  -> 198.18.1.12:80                     50      789      350   432109        1
UDP  198.18.0.100:53                   100      100      100     3800     5000
  -> 198.18.1.11:5353                   50       50       50     1900     2500
  -> 198.18.1.12:5353                   50       50       50     1900     2500
";
    assert_eq!(format_list_stats(&lab_list_with_stats()), want);
}

#[test]
fn list_rate_matches_ipvsadm_layout() {
    // A real server's CPS, InPPS and OutPPS are plain `%8u` columns in ipvsadm.
    let want = "\
xvs version 0.1.0 (size=1000000)
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  198.18.0.100:80                  1234  123456K 99999999    1000M        7
  -> 198.18.1.11:80                   1000 123456789 99999999    1000M        7
  -> 198.18.1.12:80                      0        0        0        0        0
UDP  198.18.0.100:53                     5        5        5      190      250
  -> 198.18.1.11:5353                    3        3        3      114      150
  -> 198.18.1.12:5353                    0        0        0        0        0
";
    assert_eq!(format_list_rate(&lab_list_with_stats()), want);
}

#[test]
fn stats_columns_line_up_and_long_names_are_cut() {
    let text = format_list_stats(&lab_list_with_stats());
    let lines: Vec<&str> = text.lines().collect();
    // Every number ends under the last letter of its header, as ipvsadm's do.
    let header = lines[1];
    for row in &lines[3..] {
        assert_eq!(row.len(), header.len(), "{row:?}");
    }
    let mut l = lab_list_with_stats();
    l.services[1].sorry_server = Some(real("198.18.1.13:8080", 1, 0, 0));
    l.services[1].quorum = false;
    let text = format_list_stats(&l);
    assert!(
        text.contains("\n  -> 198.18.1.13:8080                    0        0        0"),
        "{text}"
    );
    // IPv6 names are not cut (ipvsadm cuts IPv4 names only).
    let mut l = lab_list_with_stats();
    l.services[0].vip = "2001:db8:ffff:ffff:ffff:ffff:ffff:1".parse().unwrap();
    let text = format_list_stats(&l);
    assert!(
        text.contains("UDP  [2001:db8:ffff:ffff:ffff:ffff:ffff:1]:53      100"),
        "{text}"
    );
}

/// `lab_list` with two IPv6 services listed first in the configuration: ipvsadm lists IPv4
/// services first (by address family), then IPv6 ones, each address in brackets.
fn dual_stack_list() -> ListReply {
    let mut l = lab_list();
    let mut dns6 = service(
        "dns6",
        "udp",
        53,
        "rr",
        vec![real("[2001:2:0:1::11]:53", 1, 0, 4)],
    );
    dns6.vip = "2001:2:0:2::100".parse().unwrap();
    dns6.forwarding = "dr".into();
    let mut web6 = service(
        "web6",
        "tcp",
        80,
        "wrr",
        vec![
            real("[2001:2:0:1:ffff:ffff:ffff:12]:80", 1, 0, 0),
            real("[2001:2:0:1::11]:80", 3, 2, 1),
        ],
    );
    web6.vip = "2001:2::100".parse().unwrap();
    l.services.insert(0, dns6);
    l.services.insert(0, web6);
    l
}

#[test]
fn ipv6_services_list_as_ipvsadm_prints_them() {
    // ipvsadm: `[%s]:%u` for an IPv6 address, the same `%-28s` column (a longer address pushes
    // the rest of its line right, as in ipvsadm).
    let want = "\
xvs version 0.1.0 (size=1000000)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.100:80 wrr
  -> 198.18.1.11:80               Masq    3      12         3         
  -> 198.18.1.12:80               Masq    1      4          1         
UDP  198.18.0.100:53 rr
  -> 198.18.1.11:5353             Masq    1      0          8         
  -> 198.18.1.12:5353             Masq    1      0          7         
TCP  [2001:2::100]:80 wrr
  -> [2001:2:0:1::11]:80          Masq    3      2          1         
  -> [2001:2:0:1:ffff:ffff:ffff:12]:80 Masq    1      0          0         
UDP  [2001:2:0:2::100]:53 rr
  -> [2001:2:0:1::11]:53          Route   1      0          4         
";
    assert_eq!(format_list(&dual_stack_list()), want);
}

#[test]
fn ipv6_connections_list_as_ipvsadm_prints_them() {
    let conn =
        |protocol: &str, client: &str, vip: &str, real: &str, state: &str, expire| ConnInfo {
            protocol: protocol.into(),
            client: sa(client),
            vip: sa(vip),
            real: sa(real),
            local: None,
            state: state.into(),
            expire_seconds: expire,
        };
    let r = ConnsReply {
        connections: vec![
            conn(
                "tcp",
                "[2001:2::2]:40312",
                "[2001:2::100]:80",
                "[2001:2:0:1::11]:80",
                "ESTABLISHED",
                899,
            ),
            conn(
                "udp",
                "[2001:2::2]:51000",
                "[2001:2:0:2::100]:53",
                "[2001:2:0:1::11]:53",
                "UDP",
                299,
            ),
        ],
    };
    let want = "\
IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:59  ESTABLISHED [2001:2::2]:40312  [2001:2::100]:80   [2001:2:0:1::11]:80
UDP 04:59  UDP         [2001:2::2]:51000  [2001:2:0:2::100]:53 [2001:2:0:1::11]:53
";
    assert_eq!(format_conns(&r), want);
}

#[test]
fn ipv6_services_in_stats_and_rate() {
    let text = format_list_stats(&dual_stack_list());
    assert!(
        text.contains("\nTCP  [2001:2::100]:80                    0        0"),
        "{text}"
    );
    assert!(
        text.contains("\n  -> [2001:2:0:1::11]:80                 3        0"),
        "{text}"
    );
    let text = format_list_rate(&dual_stack_list());
    assert!(
        text.contains("\nUDP  [2001:2:0:2::100]:53                0"),
        "{text}"
    );
}

fn worker(queue: u32, rx_pps: u64, busy_ratio: f64, frames_per_batch: f64) -> WorkerInfo {
    WorkerInfo {
        queue,
        rx_pps,
        tx_pps: rx_pps / 2,
        busy_ratio,
        frames_per_batch,
    }
}

#[test]
fn stats_lists_each_worker_in_rate_style_columns() {
    let r = StatsReply {
        version: "0.1.0".into(),
        interval_seconds: 2.0004,
        workers: vec![
            worker(0, 1_234_567, 0.9349, 61.24),
            worker(1, 0, 0.0, 0.0),
            worker(12, 123_456_789, 1.0, 64.0),
        ],
    };
    let want = "\
xvs version 0.1.0 (workers=3, interval=2.0 s)
Queue    RxPPS    TxPPS   Util% Frames/batch
0      1234567   617283    93.5         61.2
1            0        0     0.0          0.0
12     123456K 61728394   100.0         64.0
";
    assert_eq!(format_stats(&r), want);
    // Every line's columns end where the header's do.
    let text = format_stats(&r);
    let lines: Vec<&str> = text.lines().collect();
    for l in &lines[2..] {
        assert_eq!(l.len(), lines[1].len(), "{l:?}");
    }
    let json = serde_json::to_string(&r).unwrap();
    assert!(
        json.contains("\"busy_ratio\":0.9349") && json.contains("\"frames_per_batch\":61.24"),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<StatsReply>(&json).unwrap(), r);
}

#[test]
fn stats_before_the_first_interval_is_all_zero() {
    let r = StatsReply {
        version: "0.1.0".into(),
        interval_seconds: 0.0,
        workers: vec![worker(0, 0, 0.0, 0.0)],
    };
    assert_eq!(
        format_stats(&r),
        "xvs version 0.1.0 (workers=1, interval=0.0 s)\n\
         Queue    RxPPS    TxPPS   Util% Frames/batch\n\
         0            0        0     0.0          0.0\n"
    );
}

/// A unicast box with one peer in sync, one never heard, some drops and errors.
fn sync_reply() -> SyncReply {
    use crate::control::admin::protocol::SyncPeerInfo;
    let peer = |addr: &str, lag: Option<f64>, in_sync: bool, n: u64| SyncPeerInfo {
        address: addr.parse().unwrap(),
        group: false,
        sender_id: lag.map(|_| 0xc612_0302),
        messages_sent: n,
        messages_received: n / 2,
        records_sent: n * 40,
        records_received: n * 20,
        lag_seconds: lag,
        in_sync,
        dump_requests_sent: 1,
        dumps_sent: 1,
        send_errors: 0,
    };
    let map = |kv: &[(&str, u64)]| kv.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    SyncReply {
        configured: true,
        interface: Some("sync0".into()),
        port: Some(8848),
        multicast_group: None,
        sender_id: Some(0xc612_0301),
        peers: vec![
            peer("198.18.3.2", Some(0.02), true, 1200),
            peer("198.18.3.3", None, false, 0),
        ],
        dropped: map(&[("ring", 0), ("queue", 17), ("unencodable", 0)]),
        errors: map(&[("bad_tag", 2), ("replayed", 1), ("truncated", 0)]),
        installed: 24_000,
        install_refused: map(&[("unknown_service", 0)]),
        queued: 3,
    }
}

#[test]
fn sync_lists_peers_then_totals() {
    assert_eq!(
        format_sync(&sync_reply()),
        "sync on sync0 port 8848, unicast, sender id 0xc6120301\n\
         peer                       in-sync msgs-sent msgs-recv recs-sent recs-recv  lag\n\
         198.18.3.2                 yes          1200       600     48000     24000  0.020s\n\
         198.18.3.3                 no              0         0         0         0  -\n\
         dropped 0 (ring) 17 (queue) 0 (unencodable); installed 24000, refused 0; errors 3 (bad_tag 2, replayed 1); queued 3\n"
    );
}

#[test]
fn sync_json_names_every_field() {
    let r = sync_reply();
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(
        json,
        "{\"configured\":true,\"interface\":\"sync0\",\"port\":8848,\"sender_id\":3323069185,\
         \"peers\":[{\"address\":\"198.18.3.2\",\"group\":false,\"sender_id\":3323069186,\
         \"messages_sent\":1200,\"messages_received\":600,\"records_sent\":48000,\
         \"records_received\":24000,\"lag_seconds\":0.02,\"in_sync\":true,\
         \"dump_requests_sent\":1,\"dumps_sent\":1,\"send_errors\":0},\
         {\"address\":\"198.18.3.3\",\"group\":false,\"messages_sent\":0,\
         \"messages_received\":0,\"records_sent\":0,\"records_received\":0,\"in_sync\":false,\
         \"dump_requests_sent\":1,\"dumps_sent\":1,\"send_errors\":0}],\
         \"dropped\":{\"queue\":17,\"ring\":0,\"unencodable\":0},\
         \"errors\":{\"bad_tag\":2,\"replayed\":1,\"truncated\":0},\"installed\":24000,\
         \"install_refused\":{\"unknown_service\":0},\"queued\":3}"
    );
    assert_eq!(serde_json::from_str::<SyncReply>(&json).unwrap(), r);
}

#[test]
fn sync_not_configured_or_starting_and_multicast() {
    let off = SyncReply {
        configured: false,
        interface: None,
        port: None,
        multicast_group: None,
        sender_id: None,
        peers: vec![],
        dropped: Default::default(),
        errors: Default::default(),
        installed: 0,
        install_refused: Default::default(),
        queued: 0,
    };
    assert_eq!(
        format_sync(&off),
        "connection sync is not configured (no `sync:` section)\n"
    );
    assert_eq!(
        serde_json::to_string(&off).unwrap(),
        "{\"configured\":false,\"peers\":[],\"dropped\":{},\"errors\":{},\"installed\":0,\"install_refused\":{},\"queued\":0}"
    );
    let starting = SyncReply {
        configured: true,
        interface: Some("sync0".into()),
        port: Some(8848),
        ..off.clone()
    };
    assert_eq!(
        format_sync(&starting),
        "sync on sync0 port 8848: starting\n"
    );
    let mut m = sync_reply();
    m.multicast_group = Some("224.0.0.81".parse().unwrap());
    m.peers[1].group = true;
    m.peers[1].address = "224.0.0.81".parse().unwrap();
    let text = format_sync(&m);
    assert!(text.starts_with("sync on sync0 port 8848, multicast 224.0.0.81, sender id"));
    assert!(text.contains("\n224.0.0.81 (group)         no "), "{text}");
}

#[test]
fn announce_lists_each_vip_with_its_state_and_reason() {
    use crate::control::admin::protocol::{AnnounceReply, AnnounceVipInfo};
    let off = AnnounceReply {
        configured: false,
        table: None,
        device: None,
        drained: false,
        vips: vec![],
    };
    assert_eq!(
        format_announce(&off),
        "VIPs are not announced (no `announce:` section)\n"
    );
    let vip = |v: &str, state: &str, reason: Option<&str>| AnnounceVipInfo {
        vip: v.parse().unwrap(),
        state: state.into(),
        reason: reason.map(str::to_string),
    };
    let r = AnnounceReply {
        configured: true,
        table: Some(100),
        device: Some("xvs-announce".into()),
        drained: false,
        vips: vec![
            vip("198.18.0.100", "announced", None),
            vip("198.18.0.101", "withdrawn", Some("quorum")),
            vip("2001:2::100", "withdrawn", Some("drained")),
        ],
    };
    assert_eq!(
        format_announce(&r),
        format!(
            "table 100 via xvs-announce, not drained\n\
             {:<40} state\n\
             {:<40} announced\n\
             {:<40} withdrawn: quorum\n\
             {:<40} withdrawn: drained\n",
            "vip", "198.18.0.100", "198.18.0.101", "2001:2::100"
        )
    );
    let empty = AnnounceReply {
        drained: true,
        vips: vec![],
        ..r
    };
    assert_eq!(
        format_announce(&empty),
        "table 100 via xvs-announce, drained\nno VIPs\n"
    );
}
