//! Direct routing (IPVS VS/DR): the packet goes to the real server unchanged except for its
//! Ethernet header.
//!
//! What changes: the destination MAC becomes the real server's (its next hop, which for DR must
//! be the server itself: the real server is on the load balancer's LAN) and the source MAC the
//! egress port's. A real server whose route has a gateway is refused (`dr_not_on_link`): the
//! gateway would route the packet, still addressed to the VIP, back to the load balancer. What
//! does not: every IP and transport byte, the TTL included. IPVS's DR transmitter
//! (`ip_vs_dr_xmit`) takes the packet from LOCAL_IN, where the kernel has not decremented the
//! TTL (that happens only on the forwarding path), and sends it on unchanged; xvs does the same,
//! so the checksums need no update.

use std::net::SocketAddr;

use super::{Processor, Route};
use crate::datapath::{DropReason, Verdict};

impl Processor {
    /// Sends the frame `buf[..*len]` to real server `real` by MAC only.
    pub(super) fn forward_dr(
        &self,
        buf: &mut [u8],
        len: &mut usize,
        real: SocketAddr,
    ) -> Result<Verdict, DropReason> {
        // The frame keeps the VIP as its destination: sent to a gateway, it would come back.
        let route = Route {
            on_link_only: true,
            ..Route::unrouted(real.ip())
        };
        self.route(buf, len, route, |_, _, _| Ok(()))
    }
}
