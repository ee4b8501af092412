//! VRRP failover (RFC 5798 as revised by RFC 9568, and RFC 3768), interoperable with keepalived.
//!
//! Not built yet: a later issue adds the sans-IO state machine (`handle_advert(now, ..)`,
//! `handle_timeout(now)`, `poll_timeout()`, `poll_transmit()`) and its socket/netlink driver.
//! Until then a configuration with `vrrp.instances` is refused by `xvs check`/`xvs run` with
//! "is not supported yet", never silently ignored.
