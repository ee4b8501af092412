//! What the announcer publishes for the metrics exporter and `xvs ctl announce`: the table, the
//! device, whether the box is drained, and each VIP's state. Written by the main loop after
//! every evaluation, read by the metrics and admin threads (one short lock; never on the packet
//! path).

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_each_vip_and_the_drained_flag() {
        let s = AnnounceStatus::new(100, "xvs-announce");
        let p = s.read();
        assert!(!p.drained && p.vips.is_empty());
        let published = Published {
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
        };
        s.publish(published.clone());
        assert_eq!(s.read(), published);
    }
}
