"""A tiny HTTP service that answers with the release baked into its image (/app/version)."""

import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VERSION = Path("/app/version").read_text().strip()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = VERSION.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


# PID 1 has no default SIGTERM action: exit at once so a stop does not wait out the grace period.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(f"api {VERSION} listening on :8000", flush=True)
ThreadingHTTPServer(("", 8000), Handler).serve_forever()
