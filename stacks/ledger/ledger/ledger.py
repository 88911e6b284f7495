"""An append-only ledger of checksummed records: acknowledged only once the record is on the card.

``POST /append`` with a body ``<seq> <payload>`` appends the line ``<seq> <payload> <sha256[:16]>``
to /data/ledger.log, fsyncs it (and the directory when the file is new) and only then answers
``200 ok <seq>``. Whoever counts a record as stored on that answer may hold the ledger to it
after any fault: a record acknowledged here must be in the file, whole, after a power cut.

At start the ledger drops a torn tail (a line without its newline, or NUL bytes a lost write
left behind), the way a database replays its log, so appends after a power cut stay readable.
``GET /records`` returns the file; ``GET /health`` answers while the ledger can write.
"""

import hashlib
import http.server
import os
import threading

PATH = "/data/ledger.log"
LOCK = threading.Lock()


def checksum(seq: str, payload: str) -> str:
    return hashlib.sha256(f"{seq} {payload}".encode()).hexdigest()[:16]


def fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover() -> int:
    """Cut the file back to its last whole, valid line; returns how many bytes were dropped."""
    try:
        with open(PATH, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return 0
    keep = 0
    for line in data.splitlines(keepends=True):
        parts = line.rstrip(b"\n").decode(errors="replace").split(" ")
        if not line.endswith(b"\n") or len(parts) != 3 or checksum(parts[0], parts[1]) != parts[2]:
            break
        keep += len(line)
    if keep < len(data):
        with open(PATH, "r+b") as f:
            f.truncate(keep)
            os.fsync(f.fileno())
    return len(data) - keep


def append(seq: str, payload: str) -> None:
    line = f"{seq} {payload} {checksum(seq, payload)}\n".encode()
    with LOCK:
        new = not os.path.exists(PATH)
        fd = os.open(PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            fsync_dir(PATH)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        parts = body.split(" ")
        if self.path != "/append" or len(parts) != 2 or not parts[0].isdigit() or not parts[1].isalnum():
            self._answer(400, b"want POST /append with '<seq> <alnum payload>'")
            return
        try:
            append(parts[0], parts[1])
        except OSError as e:
            self._answer(503, f"not stored: {e.strerror}".encode())
            return
        self._answer(200, f"ok {parts[0]}".encode())

    def do_GET(self) -> None:
        if self.path == "/health":
            self._answer(200, b"ok")
        elif self.path == "/records":
            try:
                with open(PATH, "rb") as f:
                    self._answer(200, f.read())
            except FileNotFoundError:
                self._answer(200, b"")
        else:
            self._answer(404, b"not found")

    def _answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        pass   # one line per record would drown the log; the watcher reports progress


if __name__ == "__main__":
    print(f"ledger: dropped {recover()} torn bytes; listening on :8000", flush=True)
    http.server.ThreadingHTTPServer(("", 8000), Handler).serve_forever()
