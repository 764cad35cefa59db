"""The demo's ticket service: answers only with the brokered credential Warden injects (the agent never holds it).

    python tickets.py PORT
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TICKETS = {"42": {"id": 42, "status": "open", "title": "Printer on fire"}, "7": {"id": 7, "status": "closed"}}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.headers.get("Authorization") != "Bearer tk-demo-upstream-key":
            self._send(401, {"error": "the ticket service wants its own key"})
            return
        ticket = TICKETS.get(self.path.rstrip("/").rsplit("/", 1)[-1])
        answer = {"ticket": ticket, "for": self.headers.get("X-Warden-Agent")}
        self._send(200 if ticket else 404, answer)

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
