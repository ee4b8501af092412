#!/usr/bin/env python3
"""Lab client: sequential requests, one fresh connection (or UDP socket) each; prints a JSON summary.

  lab-client.py http --url http://198.18.0.100/ --count 500 [--timeout 2]
  lab-client.py udp  --addr 198.18.0.100:53 --count 100 [--timeout 2] [--size BYTES]
  lab-client.py hold --addr 198.18.0.100:80 --count 20 --trigger FILE [--timeout 2] [--wait 60]

IPv6 targets are written in brackets: --url http://[2001:2::100]/, --addr [2001:2::100]:53.

hold: opens COUNT TCP connections and sends nothing; prints {"opened": N} once they are all
connected; waits (at most --wait seconds) until FILE exists; then sends one HTTP GET on each
held connection and tallies the answers as the http mode does (a connection reset or closed
while held is a failure).
  lab-client.py http --url http://198.18.0.100/ --duration 8 --interval 0.02 --trace

Summary on stdout: {"ok": N, "failed": M, "by_server": {"r1": x, ...}, "errors": [first few],
"elapsed_s": T}; with --trace also "trace": [[start time (Unix seconds), server or null], ...],
one entry per request. --duration S sends requests until S seconds have passed (instead of
--count). Exit status 0 when every request succeeded, 1 when some failed, 2 on bad usage.
"""
import argparse
import http.client
import json
import os
import socket
import sys
import time
import urllib.parse
from collections import Counter

MAX_ERRORS = 5


class Tally:
    def __init__(self, trace: bool) -> None:
        self.ok = 0
        self.failed = 0
        self.by_server: Counter = Counter()
        self.errors: list = []
        self.trace = [] if trace else None
        self.started = 0.0

    def start(self) -> None:
        self.started = time.time()

    def success(self, server: str) -> None:
        self.ok += 1
        self.by_server[server] += 1
        if self.trace is not None:
            self.trace.append([round(self.started, 4), server])

    def failure(self, i: int, msg: str) -> None:
        self.failed += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append("request %d: %s" % (i, msg))
        if self.trace is not None:
            self.trace.append([round(self.started, 4), None])


def requests(args):
    """Request numbers: --count of them, or as many as fit in --duration seconds."""
    if args.duration is None:
        yield from range(args.count)
        return
    end = time.monotonic() + args.duration
    i = 0
    while time.monotonic() < end:
        yield i
        i += 1


def run_http(args, t: Tally) -> None:
    u = urllib.parse.urlsplit(args.url)
    if u.scheme != "http" or not u.hostname:
        raise SystemExit("lab-client: --url must be http://HOST[:PORT]/PATH")
    port = u.port or 80
    path = (u.path or "/") + ("?" + u.query if u.query else "")
    for i in requests(args):
        t.start()
        conn = http.client.HTTPConnection(u.hostname, port, timeout=args.timeout)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                t.failure(i, "HTTP status %d" % resp.status)
            else:
                t.success(body.decode(errors="replace").strip() or "?")
        except (OSError, http.client.HTTPException) as e:
            t.failure(i, "%s: %s" % (type(e).__name__, e))
        finally:
            conn.close()
        if args.interval:
            time.sleep(args.interval)


def host_port(addr: str):
    """HOST:PORT or [IPV6]:PORT -> (HOST, PORT)."""
    host, _, port = addr.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port.isdigit():
        raise SystemExit("lab-client: --addr must be HOST:PORT or [IPV6]:PORT")
    return host, int(port)


def run_udp(args, t: Tally) -> None:
    host, port = host_port(args.addr)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for i in requests(args):
        t.start()
        payload = b"xvs-lab-%d" % i
        if args.size > len(payload):
            payload += b"." * (args.size - len(payload))
        s = socket.socket(family, socket.SOCK_DGRAM)  # fresh source port: a new flow each time
        s.settimeout(args.timeout)
        try:
            s.sendto(payload, (host, port))
            data, _ = s.recvfrom(65535)
            name, sep, echoed = data.partition(b":")
            if not sep or echoed != payload:
                t.failure(i, "unexpected answer %r" % data[:64])
            else:
                t.success(name.decode(errors="replace"))
        except OSError as e:
            t.failure(i, "%s: %s" % (type(e).__name__, e))
        finally:
            s.close()
        if args.interval:
            time.sleep(args.interval)


def run_hold(args, t: Tally) -> None:
    host, port = host_port(args.addr)
    held = []
    for i in range(args.count):
        try:
            held.append((i, socket.create_connection((host, port), timeout=args.timeout)))
        except OSError as e:
            t.failure(i, "connect: %s: %s" % (type(e).__name__, e))
    print(json.dumps({"opened": len(held)}), flush=True)
    deadline = time.monotonic() + args.wait
    while not os.path.exists(args.trigger) and time.monotonic() < deadline:
        time.sleep(0.05)
    for i, s in held:
        try:
            s.sendall(b"GET / HTTP/1.0\r\nHost: %s\r\n\r\n" % (("[%s]" if ":" in host else "%s") % host).encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            status = head.split(b" ", 2)[1:2]
            if status != [b"200"]:
                t.failure(i, "unexpected answer %r" % data[:64])
            else:
                t.success(body.decode(errors="replace").strip() or "?")
        except OSError as e:
            t.failure(i, "%s: %s" % (type(e).__name__, e))
        finally:
            s.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    h = sub.add_parser("http")
    h.add_argument("--url", required=True)
    u = sub.add_parser("udp")
    u.add_argument("--addr", required=True)
    u.add_argument("--size", type=int, default=0, help="pad each datagram to SIZE bytes (above the MTU: fragmented)")
    hd = sub.add_parser("hold")
    hd.add_argument("--addr", required=True)
    hd.add_argument("--trigger", required=True, help="file whose existence releases the held connections")
    hd.add_argument("--wait", type=float, default=60.0, help="longest wait for the trigger, seconds")
    for p in (h, u, hd):
        p.add_argument("--count", type=int, default=100)
        p.add_argument("--timeout", type=float, default=2.0)
        p.add_argument("--interval", type=float, default=0.0, help="seconds between requests")
        p.add_argument("--duration", type=float, default=None, help="send for this many seconds")
        p.add_argument("--trace", action="store_true", help="list every request in the summary")
    hd.set_defaults(interval=0.0)
    args = ap.parse_args()
    if args.count < 0:
        ap.error("--count must be >= 0")

    t = Tally(args.trace)
    start = time.monotonic()
    {"http": run_http, "udp": run_udp, "hold": run_hold}[args.mode](args, t)
    summary = {
        "ok": t.ok,
        "failed": t.failed,
        "by_server": dict(sorted(t.by_server.items())),
        "errors": t.errors,
        "elapsed_s": round(time.monotonic() - start, 3),
    }
    if t.trace is not None:
        summary["trace"] = t.trace
    print(json.dumps(summary))
    return 0 if t.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
