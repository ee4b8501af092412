#!/usr/bin/env python3
"""Lab helper: crafted packets for checking the lab itself (tests/e2e_ipv6.rs). Standard library
only; IPv4 or IPv6 is told by the address (an IPv6 endpoint is written [ADDR]:PORT).

  lab-craft.py ns --iface DEV --dmac MAC --src ADDR --target ADDR [--wait S]
      Sends one neighbour solicitation for TARGET out of DEV (AF_PACKET), to Ethernet DMAC and
      IPv6 destination TARGET (a unicast NS, as a neighbour's reachability probe), from SRC with
      DEV's MAC as source link-layer address; prints "NA MAC" for every neighbour advertisement
      for TARGET that DEV receives within --wait seconds (default 1), then "done".
  lab-craft.py tunnel --real ADDR --src ADDR:PORT --dst ADDR:PORT --payload TEXT
      Sends a UDP datagram SRC -> DST (its checksum over the pseudo-header) wrapped in an outer
      header to REAL: IPv6-in-IPv6 (next header 41) for IPv6 addresses, IP-in-IP (protocol 4) for
      IPv4 ones, through a raw socket of that protocol (the kernel builds the outer header and
      routes it to REAL as any packet).
  lab-craft.py syn --iface DEV --dmac MAC --src ADDR:PORT --dst ADDR:PORT [--toa ADDR:PORT] [--ack]
      Sends one TCP SYN (with --ack: a bare ACK, as the one that completes a handshake) out of
      DEV (AF_PACKET, to Ethernet DMAC) carrying an MSS option and, with --toa, DPVS's TOA option
      (kind 254: length 8 with an IPv4 endpoint, 20 with an IPv6 one; port, then address).
  lab-craft.py listen-udp --bind ADDR --port PORT [--timeout S]
      Binds a UDP socket, prints "ready", then the first datagram as "got TEXT from ADDR", or
      "nothing" after --timeout seconds (default 3).
"""
import argparse
import socket
import struct
import sys
import time


def csum(b: bytes) -> int:
    b = b + b"\0" * (len(b) % 2)
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def endpoint(text: str):
    """ADDR:PORT or [IPV6]:PORT -> (family, packed address, port)."""
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        return socket.AF_INET6, socket.inet_pton(socket.AF_INET6, host[1:-1]), int(port)
    return socket.AF_INET, socket.inet_aton(host), int(port)


def mac_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def pseudo(family: int, src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    if family == socket.AF_INET6:
        return src + dst + struct.pack("!IxxxB", length, proto)
    return src + dst + struct.pack("!BBH", 0, proto, length)


def ip_header(family: int, src: bytes, dst: bytes, proto: int, payload: int, hops: int = 64) -> bytes:
    if family == socket.AF_INET6:
        return struct.pack("!IHBB", 6 << 28, payload, proto, hops) + src + dst
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload, 1, 0, hops, proto, 0, src, dst)
    return h[:10] + struct.pack("!H", csum(h)) + h[12:]


def if_mac(iface: str) -> bytes:
    with open("/sys/class/net/%s/address" % iface) as f:
        return mac_bytes(f.read().strip())


def cmd_ns(args) -> int:
    target = socket.inet_pton(socket.AF_INET6, args.target)
    src = socket.inet_pton(socket.AF_INET6, args.src)
    smac = if_mac(args.iface)
    icmp = struct.pack("!BBHI", 135, 0, 0, 0) + target + struct.pack("!BB", 1, 1) + smac
    icmp = icmp[:2] + struct.pack("!H", csum(pseudo(socket.AF_INET6, src, target, 58, len(icmp)) + icmp)) + icmp[4:]
    frame = mac_bytes(args.dmac) + smac + b"\x86\xdd" + ip_header(socket.AF_INET6, src, target, 58, len(icmp), 255) + icmp
    p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86DD))
    p.bind((args.iface, 0))
    p.settimeout(0.1)
    p.send(frame)
    end = time.monotonic() + args.wait
    while time.monotonic() < end:
        try:
            f, addr = p.recvfrom(2048)
        except socket.timeout:
            continue
        # Ethernet 14 + IPv6 40: ICMPv6 type 136 whose target (after 8 bytes) is ours.
        if addr[2] != 4 and len(f) >= 78 and f[20] == 58 and f[54] == 136 and f[62:78] == target:
            print("NA", f[6:12].hex(":"), flush=True)
    print("done")
    return 0


def src_dst(args):
    """--src and --dst, of one family -> (family, src, sport, dst, dport)."""
    fam, src, sport = endpoint(args.src)
    fam2, dst, dport = endpoint(args.dst)
    if fam != fam2:
        raise SystemExit("lab-craft: --src and --dst must be of one family")
    return fam, src, sport, dst, dport


def cmd_tunnel(args) -> int:
    fam, src, sport, dst, dport = src_dst(args)
    data = args.payload.encode()
    udp = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    c = csum(pseudo(fam, src, dst, 17, len(udp)) + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    inner = ip_header(fam, src, dst, 17, len(udp)) + udp
    proto = 41 if fam == socket.AF_INET6 else 4
    socket.socket(fam, socket.SOCK_RAW, proto).sendto(inner, (args.real, 0))
    return 0


def cmd_syn(args) -> int:
    fam, src, sport, dst, dport = src_dst(args)
    opts = b"" if args.ack else struct.pack("!BBH", 2, 4, 1400)
    if args.toa:
        _, toa, toa_port = endpoint(args.toa)
        opts += struct.pack("!BBH", 254, 4 + len(toa), toa_port) + toa
    opts += b"\x01" * (-len(opts) % 4)
    flags = 0x10 if args.ack else 0x02
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1000, 2000 if args.ack else 0, (20 + len(opts)) // 4 << 4, flags, 65535, 0, 0) + opts
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo(fam, src, dst, 6, len(tcp)) + tcp)) + tcp[18:]
    ethertype = b"\x86\xdd" if fam == socket.AF_INET6 else b"\x08\x00"
    frame = mac_bytes(args.dmac) + if_mac(args.iface) + ethertype + ip_header(fam, src, dst, 6, len(tcp)) + tcp
    p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    p.bind((args.iface, 0))
    p.send(frame)
    return 0


def cmd_listen_udp(args) -> int:
    fam = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((args.bind, args.port))
    s.settimeout(args.timeout)
    print("ready", flush=True)
    try:
        data, peer = s.recvfrom(2048)
        print("got %s from %s" % (data.decode(errors="replace"), peer[0]))
    except socket.timeout:
        print("nothing")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    ns = sub.add_parser("ns")
    ns.add_argument("--iface", required=True)
    ns.add_argument("--dmac", required=True)
    ns.add_argument("--src", required=True)
    ns.add_argument("--target", required=True)
    ns.add_argument("--wait", type=float, default=1.0)
    tu = sub.add_parser("tunnel")
    tu.add_argument("--real", required=True)
    tu.add_argument("--src", required=True)
    tu.add_argument("--dst", required=True)
    tu.add_argument("--payload", default="probe")
    sy = sub.add_parser("syn")
    sy.add_argument("--iface", required=True)
    sy.add_argument("--dmac", required=True)
    sy.add_argument("--src", required=True)
    sy.add_argument("--dst", required=True)
    sy.add_argument("--toa")
    sy.add_argument("--ack", action="store_true")
    li = sub.add_parser("listen-udp")
    li.add_argument("--bind", required=True)
    li.add_argument("--port", type=int, required=True)
    li.add_argument("--timeout", type=float, default=3.0)
    args = ap.parse_args()
    return {"ns": cmd_ns, "tunnel": cmd_tunnel, "syn": cmd_syn, "listen-udp": cmd_listen_udp}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
