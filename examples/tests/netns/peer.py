"""The other programs of the network-namespace test (tests/sidecar_netns.rs).

  peer.py serve SPEC...   serves each SPEC, prints "ready" once all are bound, runs until
                          killed. SPEC is one of
                            http:IP:PORT:NAME  HTTP/1.1: answers every GET with NAME and the
                                               request's end-user header
                            echo:IP:PORT       lines back upper-cased; "bye" at the client's EOF
                            whoami:IP:PORT     HTTP/1.1: answers with the peer's address
  peer.py send IP PORT TEXT
                          connects, sends TEXT, half-closes, prints what comes back until EOF
                          (or "closed" when the peer reset or closed it first)
"""
import http.server
import socket
import socketserver
import sys
import threading


def http_server(ip, port, answer):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = answer(self).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((ip, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.upper())
        self.wfile.write(b"bye\n")


class EchoServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve(specs):
    for spec in specs:
        kind, ip, port, *rest = spec.split(":")
        port = int(port)
        if kind == "http":
            name = rest[0]
            http_server(ip, port, lambda h, n=name: f"{n} {h.headers.get('end-user', '-')}")
        elif kind == "whoami":
            http_server(ip, port, lambda h: f"{h.client_address[0]}")
        elif kind == "echo":
            s = EchoServer((ip, port), Echo)
            threading.Thread(target=s.serve_forever, daemon=True).start()
        else:
            sys.exit(f"unknown spec {spec}")
    print("ready", flush=True)
    threading.Event().wait()


def send(ip, port, text):
    s = socket.create_connection((ip, int(port)), timeout=30)
    try:
        s.sendall(text.encode())
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        sys.stdout.write(out.decode())
    except OSError:
        # Reset, or closed before the half-close (ENOTCONN): the proxy closed it.
        sys.stdout.write("closed")


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2:])
    elif sys.argv[1] == "send":
        send(*sys.argv[2:5])
