#!/usr/bin/env python3
"""Lab real server: answers every UDP datagram with b"NAME:" + payload. Stops on SIGTERM/SIGINT.

With --peer-log FILE, appends each datagram's peer ("ADDR:PORT") to FILE."""
import argparse
import signal
import socket
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, default=5353)
    ap.add_argument("--bind", default="0.0.0.0")
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

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((args.bind, args.port))
    s.settimeout(0.2)
    while running:
        try:
            data, peer = s.recvfrom(65535)
        except socket.timeout:
            continue
        except InterruptedError:
            continue
        if peer_log is not None:
            peer_log.write("%s:%d\n" % (peer[0], peer[1]))
        try:
            s.sendto(prefix + data, peer)
        except OSError as e:
            sys.stderr.write("%s: send to %s: %s\n" % (args.name, peer, e))
    s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
