//! What the announcer publishes for the metrics exporter and `xvs ctl announce`: the table, the
//! device, whether the box is drained, and each VIP's state. Written by the main loop after
//! every evaluation, read by the metrics and admin threads (one short lock; never on the packet
//! path).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use super::core::Reason;

/// One VIP of the configuration as last evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VipState {
    pub vip: IpAddr,
    /// Its route is in the table.
    pub announced: bool,
    /// Why not, when it is not.
    pub reason: Option<Reason>,
}

/// The last evaluation's outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    pub drained: bool,
    /// Every VIP of the configuration, in address order.
    pub vips: Vec<VipState>,
}

/// The announcer's settings and its last published state.
#[derive(Debug)]
pub struct AnnounceStatus {
    pub table: u32,
    pub device: String,
    inner: Mutex<Published>,
}

impl AnnounceStatus {
    pub fn new(table: u32, device: &str) -> AnnounceStatus {
        AnnounceStatus {
            table,
            device: device.to_string(),
            inner: Mutex::new(Published::default()),
        }
    }

    pub fn publish(&self, p: Published) {
        *self.inner.lock().unwrap_or_else(PoisonError::into_inner) = p;
    }

    pub fn read(&self) -> Published {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `xvs_announced{vip}` (1 while the VIP's route is in the table) for every VIP of the
    /// configuration, and `xvs_drained`, in the Prometheus text format.
    pub fn render(&self, o: &mut String) {
        let p = self.read();
        let _ = writeln!(
            o,
            "# HELP xvs_announced 1 while the VIP's route is in the announce table (announce.table), 0 while it is withdrawn.\n# TYPE xvs_announced gauge"
        );
        for v in &p.vips {
            let _ = writeln!(
                o,
                "xvs_announced{{vip=\"{}\"}} {}",
                v.vip,
                u8::from(v.announced)
            );
        }
        let _ = writeln!(
            o,
            "# HELP xvs_drained 1 while the box is drained (xvs ctl drain): every VIP withdrawn, existing flows continue.\n# TYPE xvs_drained gauge\nxvs_drained {}",
            u8::from(p.drained)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_gauge_per_vip_and_the_drained_flag() {
        let s = AnnounceStatus::new(100, "xvs-announce");
        let mut o = String::new();
        s.render(&mut o);
        assert!(o.ends_with("xvs_drained 0\n"), "{o}");
        assert!(!o.contains("xvs_announced{"));
        s.publish(Published {
            drained: true,
            vips: vec![
                VipState {
                    vip: "198.18.0.100".parse().unwrap(),
                    announced: true,
                    reason: None,
                },
                VipState {
                    vip: "2001:2::100".parse().unwrap(),
                    announced: false,
                    reason: Some(Reason::Drained),
                },
            ],
        });
        let mut o = String::new();
        s.render(&mut o);
        for want in [
            "# TYPE xvs_announced gauge\n",
            "xvs_announced{vip=\"198.18.0.100\"} 1\n",
            "xvs_announced{vip=\"2001:2::100\"} 0\n",
            "# TYPE xvs_drained gauge\nxvs_drained 1\n",
        ] {
            assert!(o.contains(want), "missing {want:?} in\n{o}");
        }
        prometheus_parse::Scrape::parse(o.lines().map(|l| Ok(l.to_string()))).unwrap();
    }
}
