#!/usr/bin/env python3
"""Lab real server: answers every UDP datagram with b"NAME:" + payload. Stops on SIGTERM/SIGINT.

Listens dual-stack by default (--bind ::, IPV6_V6ONLY off: IPv4 datagrams arrive too). --bind
takes a comma-separated list of addresses, one socket each (an IPv4 address: IPv4 only; an IPv6
address other than `::`: IPv6 only), e.g. a DR/TUN real server's VIP and VIP6, so that each
answer leaves from the address the datagram was sent to. With --peer-log FILE, appends each
datagram's peer to FILE: "A.B.C.D:PORT" for an IPv4 client (never IPv4-mapped), "[IPV6]:PORT"
for an IPv6 one."""
import argparse
import selectors
import signal
import socket
import sys


def peer_text(peer) -> str:
    """A.B.C.D:PORT (an IPv4-mapped IPv6 address unmapped) or [IPV6]:PORT."""
    host, port = peer[0], peer[1]
    if host.startswith("::ffff:") and "." in host:
        host = host[len("::ffff:"):]
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


def open_socket(addr: str, port: int) -> socket.socket:
    if ":" in addr:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(addr != "::"))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.setblocking(False)
    return s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, default=5353)
    ap.add_argument("--bind", default="::", help="comma-separated addresses, one socket each")
    ap.add_argument("--peer-log", help="append each datagram's peer ADDR:PORT to this file")
    args = ap.parse_args()
    peer_log = open(args.peer_log, "a", buffering=1) if args.peer_log else None
    prefix = args.name.encode() + b":"

    running = True

    def stop(_sig, _frm):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    sel = selectors.DefaultSelector()
    socks = [open_socket(a.strip(), args.port) for a in args.bind.split(",") if a.strip()]
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    while running:
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            try:
                data, peer = s.recvfrom(65535)
            except OSError:  # nothing left to read (or an ICMP error queued)
                continue
            if peer_log is not None:
                peer_log.write(peer_text(peer) + "\n")
            try:
                s.sendto(prefix + data, peer)
            except OSError as e:
                sys.stderr.write("%s: send to %s: %s\n" % (args.name, peer, e))
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
