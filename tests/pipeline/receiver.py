"""A local HTTP(S) server for the tests of what healthscore sends out (webhooks, CRMs)."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from collections.abc import Callable, Mapping

import trustme

Answer = Callable[[str, dict, Mapping[str, str]], tuple[int, object]]


class Receiver:
    """Answers each POST (or PATCH) with ``answer(path, body, headers)`` → (status, JSON or
    text), after ``fail_first`` answers of ``fail_status``; records the bodies it accepted.

    With ``tls`` (a trustme CA) it speaks HTTPS with a certificate for 127.0.0.1 from it.
    """

    def __init__(
        self, answer: Answer, fail_first: int = 0, fail_status: int = 503,
        tls: trustme.CA | None = None,
    ) -> None:  # fmt: skip
        self.bodies: list[dict] = []
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.requests += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if outer.requests <= fail_first:
                    status, reply = fail_status, {"message": "busy"}
                else:
                    status, reply = answer(self.path, body, self.headers)
                    if status < 300:
                        outer.bodies.append(body)
                data = reply.encode() if isinstance(reply, str) else json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_PATCH = do_POST  # Salesforce updates a record with PATCH

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.issue_cert("127.0.0.1").configure_cert(context)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
