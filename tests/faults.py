"""A fault-injecting proxy on 127.0.0.1 in front of the EC2 emulator, as a busy AWS region behaves.

Each request is, by a seeded draw: refused with EC2's throttling error (HTTP 503
RequestLimitExceeded) without reaching the emulator; served by the emulator with its response lost
(the connection closes before any byte of it: the caller cannot tell whether it happened); or passed
through. Counts are kept so a test can say what it survived.
"""

import http.client
import random
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

THROTTLED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code>'
    b"<Message>Request limit exceeded.</Message></Error></Errors><RequestID>faulty</RequestID></Response>"
)


@dataclass
class Counts:
    passed: int = 0
    throttled: int = 0
    dropped: int = 0
    dropped_actions: list[str] = field(default_factory=list)


class FaultyProxy:
    def __init__(self, upstream: str, throttle: float = 0.2, drop: float = 0.05, seed: int = 1, drop_first: tuple = ()):
        """drop_first: actions (e.g. RunInstances) whose first answer is lost, whatever the draw."""
        self.upstream = urlsplit(upstream)
        self.throttle, self.drop = throttle, drop
        self.drop_first = set(drop_first)
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.counts = Counts()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):  # EC2's query API is all POST
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy.lock:
                    draw = proxy.random.random()
                if draw < proxy.throttle:
                    proxy.counts.throttled += 1
                    self.send_response(503)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(THROTTLED)))
                    self.end_headers()
                    self.wfile.write(THROTTLED)
                    return
                status, headers, answer = proxy.forward(self.command, self.path, self.headers, body)
                action = dict(part.split("=", 1) for part in body.decode().split("&") if "=" in part).get("Action")
                with proxy.lock:
                    first = action in proxy.drop_first
                    proxy.drop_first.discard(action)
                if first or draw < proxy.throttle + proxy.drop:
                    proxy.counts.dropped += 1
                    proxy.counts.dropped_actions.append(action or "?")
                    self.close_connection = True
                    self.connection.close()
                    return
                proxy.counts.passed += 1
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def forward(self, method, path, headers, body):
        connection = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            connection.request(method, path, body, {k: v for k, v in headers.items() if k.lower() != "host"})
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
