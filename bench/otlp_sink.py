"""A local OTLP/HTTP receiver for the benches: accepts and discards every post, keeping connections
alive as an OpenTelemetry collector does. Run as a process of its own (its CPU is neither the
gateway's nor the bench client's); prints the port it listens on.

    python bench/otlp_sink.py
"""

from __future__ import annotations

import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive (HTTP/1.0 closed the connection after every post)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def start_sink() -> tuple[subprocess.Popen[str], str]:
    """The sink in a process of its own, and its base URL."""
    sink = subprocess.Popen([sys.executable, __file__], stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    return sink, f"http://127.0.0.1:{int(sink.stdout.readline())}"


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    print(server.server_address[1], flush=True)
    server.serve_forever()
