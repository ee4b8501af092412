#!/usr/bin/env python3
"""Lab real-server helper: reads the TOA option (TCP option 254, DPVS's format) off the wire.

  lab-toa-sniffer.py --iface eth0 --port 80 --out FILE [--ready FILE] [--duration 120]

Captures the IPv4 and IPv6 TCP segments arriving on IFACE for local PORT (AF_PACKET, incoming
only) and, on SIGTERM/SIGINT or after --duration seconds, writes one JSON object per SYN or
handshake-completing ACK to FILE:

  {"src": "ADDR:PORT", "flags": "S" | "A", "toa": "ADDR:PORT" | null}

src is the segment's source as the real server sees it (a FULLNAT pool address:port); toa is
the client endpoint the option carries (DPVS's TOA, kind 254): length 8 for an IPv4 client,
port (2 bytes, big-endian) then IPv4 address (4 bytes); length 20 for an IPv6 client, port
(2 bytes, big-endian) then IPv6 address (16 bytes). An IPv6 endpoint is written [ADDR]:PORT
(src as well, for an IPv6 segment). An IPv6 segment is read only when TCP follows the fixed
header directly (no extension headers). Only a segment with SYN, or with ACK and no payload, is
recorded (the first ACK of a connection is the one without data right after the handshake).
--ready FILE is created once the socket is open. Standard library only.

  lab-toa-sniffer.py --parse-hex FRAME_HEX

prints the record of one Ethernet frame given in hex (or nothing when it is not one to record),
for checking the parser without a capture.
"""
import argparse
import json
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def toa_of(options: bytes):
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            return None
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(options):
            return None
        length = options[i + 1]
        if length < 2 or i + length > len(options):
            return None
        if kind == 254 and length in (8, 20):
            port = struct.unpack("!H", options[i + 2:i + 4])[0]
            return endpoint(options[i + 4:i + length], port)
        i += length
    return None


def endpoint(addr: bytes, port: int) -> str:
    """A.B.C.D:PORT for 4 address bytes, [IPV6]:PORT for 16."""
    if len(addr) == 4:
        return "%s:%d" % (socket.inet_ntoa(addr), port)
    return "[%s]:%d" % (socket.inet_ntop(socket.AF_INET6, addr), port)


def tcp_of(frame: bytes):
    """(source address bytes, TCP segment) of an IPv4 or IPv6 TCP frame, else None."""
    if len(frame) < 14 + 20 + 20:
        return None
    ip = frame[14:]
    if frame[12:14] == b"\x08\x00":
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        if ip[9] != 6 or len(ip) < ihl + 20:
            return None
        return ip[12:16], ip[ihl:total]
    if frame[12:14] == b"\x86\xdd":
        payload = struct.unpack("!H", ip[4:6])[0]
        if ip[6] != 6 or len(ip) < 40 + 20:
            return None
        return ip[8:24], ip[40:40 + payload]
    return None


def record_of(frame: bytes, port: int):
    """The JSON record of a SYN or handshake-completing ACK to PORT in FRAME, else None."""
    got = tcp_of(frame)
    if got is None:
        return None
    src, tcp = got
    if len(tcp) < 20:
        return None
    sport, dport = struct.unpack("!HH", tcp[0:4])
    if dport != port:
        return None
    doff = (tcp[12] >> 4) * 4
    flags = tcp[13]
    syn, ack, rst = flags & 0x02, flags & 0x10, flags & 0x04
    payload = len(tcp) - doff
    if syn and not ack:
        kind = "S"
    elif ack and not syn and not rst and payload == 0 and (flags & 0x01) == 0:
        kind = "A"
    else:
        return None
    return {"src": endpoint(src, sport), "flags": kind, "toa": toa_of(tcp[20:doff])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iface", default="eth0")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--out")
    ap.add_argument("--parse-hex", help="print the record of this one frame (hex) and exit")
    ap.add_argument("--ready")
    ap.add_argument("--duration", type=float, default=120.0)
    args = ap.parse_args()
    if args.parse_hex is not None:
        r = record_of(bytes.fromhex(args.parse_hex), args.port)
        if r is not None:
            print(json.dumps(r))
        return 0
    if not args.out:
        ap.error("--out is required")

    running = True

    def stop(_sig, _frm):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    # A large buffer: a loaded machine may schedule this reader late, and every SYN counts.
    s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 8 << 20)
    s.bind((args.iface, 0))
    s.settimeout(0.2)
    if args.ready:
        open(args.ready, "w").close()
    records = []
    deadline = time.monotonic() + args.duration
    while running and time.monotonic() < deadline:
        try:
            frame, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        except InterruptedError:
            continue
        if addr[2] == PACKET_OUTGOING:
            continue
        r = record_of(frame, args.port)
        if r is not None:
            records.append(r)
    with open(args.out, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
