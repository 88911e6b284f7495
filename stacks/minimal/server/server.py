"""Counts hits in /data/hits (a named volume, so the count survives restarts) and serves it."""

import http.server
import os
import sys
import urllib.request

PATH = "/data/hits"
UNHEALTHY = "/tmp/unhealthy"


def read() -> int:
    try:
        with open(PATH) as f:
            return int(f.read() or 0)
    except FileNotFoundError:
        return 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            body = b"ok"
        else:
            hits = read() + 1
            tmp = PATH + ".tmp"
            with open(tmp, "w") as f:
                f.write(str(hits))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, PATH)
            # The rename is durable only once the directory is: without this a power cut
            # brings back an older count (up to the last journal commit, seconds earlier).
            fd = os.open(os.path.dirname(PATH), os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            body = str(hits).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        print("request:", fmt % args, flush=True)


if __name__ == "__main__":
    if "--check" in sys.argv:
        # The switch the fault scenarios flip; /tmp is a tmpfs, so a restart heals the service.
        if os.path.exists(UNHEALTHY):
            sys.exit(f"unhealthy: {UNHEALTHY} exists")
        urllib.request.urlopen("http://127.0.0.1:8000/health", timeout=5)
        sys.exit(0)
    print("server listening on :8000, hits so far:", read(), flush=True)
    http.server.ThreadingHTTPServer(("", 8000), Handler).serve_forever()
