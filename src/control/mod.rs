//! The control plane: configuration, snapshot building, neighbour resolution, the daemon.
//! Nothing here runs on the per-packet path.

pub mod config;
pub mod neighbours;
pub mod netlink;
