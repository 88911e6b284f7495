"""The gateway: checks the bearer token from the secret, then forwards to the store."""

import http.server
import urllib.request

TOKEN = open("/run/secrets/api_token").read().strip()
CONF = dict(line.split("=", 1) for line in open("/etc/gateway.conf").read().splitlines() if "=" in line)
STORE = "http://store:9000/"


class Handler(http.server.BaseHTTPRequestHandler):
    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {TOKEN}":
            return True
        self.send_response(401)
        self.end_headers()
        return False

    def do_GET(self) -> None:
        if self.path == "/hello":
            body = CONF.get("greeting", "").encode()
        elif not self._authorised():
            return
        else:
            body = urllib.request.urlopen(STORE, timeout=5).read()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        if not self._authorised():
            return
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        urllib.request.urlopen(urllib.request.Request(STORE, data=data, method="POST"), timeout=5).read()
        self.send_response(201)
        self.end_headers()

    def log_message(self, fmt: str, *args: object) -> None:
        print("request:", fmt % args, flush=True)


if __name__ == "__main__":
    print("gateway listening on 8000", flush=True)
    http.server.ThreadingHTTPServer(("", 8000), Handler).serve_forever()
