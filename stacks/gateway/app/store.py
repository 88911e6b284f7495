"""A tiny note store on the internal network: POST / appends a line, GET / returns them all."""

import http.server
import os
import sys
import urllib.request

PATH = "/data/notes.txt"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok" if self.path == "/health" else _read()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        line = self.rfile.read(int(self.headers.get("Content-Length") or 0)).strip() + b"\n"
        with open(PATH, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.send_response(201)
        self.end_headers()

    def log_message(self, fmt: str, *args: object) -> None:
        print("request:", fmt % args, flush=True)


def _read() -> bytes:
    try:
        with open(PATH, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        urllib.request.urlopen("http://127.0.0.1:9000/health", timeout=5).read()
        sys.exit(0)
    print("store listening on 9000", flush=True)
    http.server.ThreadingHTTPServer(("", 9000), Handler).serve_forever()
