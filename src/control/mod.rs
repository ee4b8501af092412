//! The control plane: configuration, snapshot building, neighbour resolution, health checks, the
//! daemon.
//! Nothing here runs on the per-packet path.

pub mod admin;
pub mod announce;
pub mod config;
/// The former `control::ctl` module: now [`admin`]'s client, layouts and protocol.
pub use admin::ctl;
pub mod daemon;
pub mod health;
pub mod iflock;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod neighbours;
pub mod netlink;
pub mod signals;
pub mod snapshot;
pub mod stats;
pub mod sync_spec;
#[cfg(test)]
mod testing;
pub mod vrrp_spec;
