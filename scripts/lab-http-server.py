#!/usr/bin/env python3
"""Lab real server: answers every HTTP GET (and HEAD) with the body "NAME\\n" and the header
"X-Peer: PEER", the client as this server sees it.

HTTP/1.0, one request per connection, a thread per connection. Prints nothing except errors.
Listens dual-stack by default (--bind ::, IPV6_V6ONLY off: IPv4 clients arrive too); --bind
A.B.C.D listens on IPv4 only, --bind of another IPv6 address on IPv6 only. A peer is written
"A.B.C.D:PORT" for an IPv4 client (never as an IPv4-mapped IPv6 address) and "[IPV6]:PORT" for
an IPv6 one. With --peer-log FILE, appends the peer of each request to FILE. Stops on
SIGTERM/SIGINT.
"""
import argparse
import signal
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def peer_text(peer) -> str:
    """A.B.C.D:PORT (an IPv4-mapped IPv6 address unmapped) or [IPV6]:PORT."""
    host, port = peer[0], peer[1]
    if host.startswith("::ffff:") and "." in host:
        host = host[len("::ffff:"):]
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", required=True, help="server name, returned as the body")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--bind", default="::")
    ap.add_argument("--peer-log", help="append each request's peer ADDR:PORT to this file")
    args = ap.parse_args()
    body = (args.name + "\n").encode()
    peer_lock = threading.Lock()
    peer_log = open(args.peer_log, "a", buffering=1) if args.peer_log else None

    def log_peer(peer) -> None:
        if peer_log is not None:
            with peer_lock:
                peer_log.write(peer_text(peer) + "\n")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        server_version = "xvs-lab"
        sys_version = ""

        def _answer(self, with_body: bool) -> None:
            log_peer(self.client_address)
            self.send_response(200)
            self.send_header("X-Peer", peer_text(self.client_address))
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Server", args.name)
            self.send_header("Connection", "close")
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            self._answer(True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(False)

        def log_message(self, format, *a) -> None:  # noqa: A002 - silence access logs
            pass

        def log_error(self, format, *a) -> None:  # noqa: A002
            sys.stderr.write("%s: %s\n" % (args.name, format % a))

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128

        def server_bind(self) -> None:
            if self.address_family == socket.AF_INET6:
                # `::` takes IPv4 too; a specific IPv6 address only IPv6.
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(args.bind != "::"))
            # TCPServer's bind, without HTTPServer's reverse lookup of the bound address.
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = args.bind, self.server_address[1]

        def handle_error(self, request, client_address) -> None:
            # A client resetting mid-request is normal under load tests; report it in one line.
            err = sys.exc_info()[1]
            if isinstance(err, (ConnectionError, socket.timeout)):
                return
            sys.stderr.write("%s: error from %s: %r\n" % (args.name, client_address, err))

    srv = Server((args.bind, args.port), Handler)

    def stop(_sig, _frm):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
