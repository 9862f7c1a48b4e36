"""A real HTTP receiver on 127.0.0.1 for the notification tests: it records every request
and answers from a script (a status per request, or ``"hang"``: no answer until closed)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    #: what to answer, in order; the last one repeats
    script: list[int | str] = field(default_factory=lambda: [200])
    requests: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def answer(self, index: int) -> int | str:
        return self.script[min(index, len(self.script) - 1)]


@contextmanager
def receiver(script: list[int | str] | None = None) -> Iterator[Receiver]:
    state = Receiver(url="", script=script or [200])
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                index = len(state.requests)
                state.requests.append(Received(self.path, dict(self.headers.items()), body))
            answer = state.answer(index)
            if answer == "hang":
                state.release.wait(60)
                return
            assert isinstance(answer, int)
            text = b"ok" if answer < 300 else b"receiver is down"
            self.send_response(answer)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
