"""Serves the stored readings: ``/`` an HTML page, ``/readings.json`` the same data, ``/health``."""

import contextlib
import html
import http.server
import json
import os
import sqlite3
import sys
import threading
import urllib.request
from typing import Any

from common import DATABASE, log, stop_on_sigterm, stopping

PORT = int(os.environ.get("PORT", "8080"))

LATEST = """
SELECT r.sensor, r.value, r.unit, r.ts FROM readings r
JOIN (SELECT sensor, MAX(id) AS id FROM readings GROUP BY sensor) last ON last.id = r.id
ORDER BY r.sensor
"""


def summary() -> dict[str, Any]:
    """Number of readings and the latest one per sensor; empty until the subscriber stores some."""
    if not os.path.exists(DATABASE):
        return {"count": 0, "latest": []}
    with contextlib.closing(sqlite3.connect(DATABASE, timeout=5)) as db:
        try:
            count = db.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
            rows = db.execute(LATEST).fetchall()
        except sqlite3.OperationalError:  # the subscriber has not created the table yet
            return {"count": 0, "latest": []}
    latest = [{"sensor": s, "value": v, "unit": u, "ts": ts} for s, v, u, ts in rows]
    return {"count": count, "latest": latest}


def page(data: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r['sensor'])}</td><td>{r['value']:.2f} {html.escape(r['unit'])}</td></tr>"
        for r in data["latest"]
    )
    return (
        "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=5><title>sensor-hub</title>"
        f"<h1>sensor-hub</h1><p>{data['count']} readings stored</p>"
        f"<table><tr><th>sensor</th><th>latest</th></tr>{rows}</table>"
    )


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        try:
            data = summary()
        except sqlite3.Error as e:
            self.reply(503, "text/plain", f"database unreadable: {e}")
            return
        if self.path == "/health":
            self.reply(200, "text/plain", "ok")
        elif self.path == "/readings.json":
            self.reply(200, "application/json", json.dumps(data))
        elif self.path == "/":
            self.reply(200, "text/html; charset=utf-8", page(data))
        else:
            self.reply(404, "text/plain", "not found")

    def reply(self, code: int, content_type: str, body: str) -> None:
        raw = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, fmt: str, *args: object) -> None:
        pass  # the healthcheck alone would fill the log


def main() -> None:
    if "--check" in sys.argv:  # the healthcheck: exit 0 only if /health answers 200
        urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=5)
        return
    stop_on_sigterm()
    server = http.server.ThreadingHTTPServer(("", PORT), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log(f"dashboard on :{PORT}, reading {DATABASE}")
    stopping.wait()
    server.shutdown()


if __name__ == "__main__":
    main()
