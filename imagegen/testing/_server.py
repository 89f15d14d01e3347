"""The emulator's HTTP layer: parse, record, inject faults, authenticate, route, reply.

A ``ThreadingHTTPServer`` on 127.0.0.1 speaking HTTP/1.1 with keep-alive, as httpx expects.
"""

from __future__ import annotations

import _thread
import json
import socket
import struct
import sys
import time
import weakref
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from imagegen.testing._call import Call
from imagegen.testing._http import ApiError, Reply, not_found, server_error, throttled, unauthenticated
from imagegen.testing._routes import ROUTES

if TYPE_CHECKING:
    from imagegen.testing._fake import FakeReplicate

_SECRET_HEADERS = ("authorization", "cookie", "x-api-key")
# What a socket raises when the client has already closed or reset the connection.
_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator received; secrets are redacted."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    body_size: int
    fault: str | None  # the injected fault, if any
    time: float


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops connections when many clients connect at once.
    request_queue_size = 256

    def __init__(self, fake: FakeReplicate, address: tuple[str, int]):
        # A weak reference, so a forgotten emulator can be collected and its finalizer stop
        # the server; each request holds a strong one while it runs.
        self._fake_ref = weakref.ref(fake)
        self.open_connections: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # ThreadingMixIn's Thread.start() waits until the new thread has run, which behind a
        # hundred busy threads takes milliseconds per connection: a burst of 100 new clients
        # then reached the handlers over ~0.2 s. A raw thread is handed its socket at once.
        _thread.start_new_thread(self.process_request_thread, (request, client_address))

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (mid-request or mid-reply) is normal for an emulator that
        # tests kill, cancel and time out against; only real faults get a traceback.
        if isinstance(sys.exc_info()[1], _CLIENT_GONE):
            return
        super().handle_error(request, client_address)

    def close_all(self) -> None:
        """Stop serving and end kept-alive connections, so a stopped server answers nothing."""
        self.shutdown()
        self.server_close()
        for conn in list(self.open_connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeReplicate"
    timeout = 30  # idle keep-alive connections end on their own

    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle plus delayed ACKs
        # add ~40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        self.server.open_connections.discard(self.connection)
        try:
            super().finish()
        except OSError:  # the client or close_all() ended the connection first
            pass

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read fake.requests
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_QUERY(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        fake = self.server._fake_ref()
        body = self._read_body()
        if fake is None:  # the emulator is gone; answer nothing
            return self._reset()
        parts = urlsplit(self.path)
        path = parts.path
        # The v1 client with a base URL ending in /v1 asks for /v1/v1/...: tolerate it.
        while path.startswith("/v1/v1/"):
            path = path[3:]
        query = dict(parse_qsl(parts.query))
        headers = {k.lower(): v for k, v in self.headers.items()}
        route, params = _match(self.command, path)
        is_create = bool(route and route.is_create)
        plan = fake._faults.plan(self.command, path, is_create)
        fault = plan.before or plan.after_create
        fake._record(RecordedRequest(self.command, path, query, _redact(headers),
                                     _maybe_json(body, headers), len(body), fault, time.time()))
        if plan.before == "reset":
            return self._reset()
        if plan.before == "slow":
            time.sleep(fake._faults.faults.slow_s)
        if plan.before == "late_commit":  # the create is made only now, whoever still waits
            time.sleep(fake._faults.faults.late_commit_s)
        try:
            if plan.before == "429":
                raise throttled(fake._faults.faults.retry_after_s)
            if plan.before == "5xx":
                raise server_error(fake._faults.faults.status_5xx)
            if route is None:
                raise not_found()
            if route.auth and not fake._authorized(headers.get("authorization", "")):
                raise unauthenticated()
            limited = fake._rate_limit("create" if is_create else "other")
            if limited is not None:
                raise throttled(limited)
            reply = route.handler(fake, Call(self.command, path, query, headers, body,
                                             params, plan))
        except ApiError as exc:
            reply = exc.reply
        if path.startswith("/delivery/") and reply.status == 200:
            reply = _hostile_output(fake._faults.faults, reply)
        if plan.after_create and reply.status < 300:
            # The create is committed; the client only sees a failure.
            if plan.after_create == "reset_after_create":
                return self._reset()
            reply = server_error(fake._faults.faults.status_5xx).reply
        try:
            self._send(fake, reply, is_create)
        except _CLIENT_GONE:  # it hung up before the reply was out: nobody to tell
            self.close_connection = True

    def _send(self, fake: FakeReplicate, reply: Reply, is_create: bool) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        remaining = fake._remaining("create" if is_create else "other")
        self.send_header("ratelimit-remaining", str(remaining))
        self.send_header("ratelimit-reset", "1")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.stream is not None:
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for chunk in reply.stream():
                self.wfile.write(chunk)
                self.wfile.flush()
            return
        data = reply.encoded()
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _reset(self) -> None:
        # SO_LINGER 0 makes close() send a TCP RST: the client sees a reset, no response.
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass


def _hostile_output(faults: Any, reply: Reply) -> Reply:
    """An output file as the faults make it: other bytes, or served a byte at a time."""
    body = faults.output_body if faults.output_body is not None else reply.encoded()
    if not faults.output_trickle_s:
        return Reply(200, body, reply.headers, reply.content_type)

    def trickle():
        for i in range(len(body)):
            yield body[i:i + 1]
            time.sleep(faults.output_trickle_s)

    return Reply(200, None, reply.headers, reply.content_type, stream=trickle)


def _match(method: str, path: str):
    path_matched = False
    for route in ROUTES:
        found = route.pattern.match(path)
        if found:
            path_matched = True
            if route.method == method:
                return route, found.groupdict()
    if path_matched:
        return _METHOD_NOT_ALLOWED, {}
    return None, {}


def _method_not_allowed(fake: FakeReplicate, call: Call) -> Reply:
    return Reply(405, {"detail": f'Method "{call.method}" not allowed.', "status": 405},
                 content_type="application/problem+json")


class _NotAllowedRoute:
    is_create = False
    auth = True
    handler = staticmethod(_method_not_allowed)


_METHOD_NOT_ALLOWED = _NotAllowedRoute()


def _redact(headers: dict[str, str]) -> dict[str, str]:
    return {k: ("<redacted>" if k in _SECRET_HEADERS else v) for k, v in headers.items()}


def _maybe_json(body: bytes, headers: dict[str, str]) -> Any:
    if not body or "json" not in headers.get("content-type", ""):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def make_server(fake: FakeReplicate, host: str, port: int) -> _Server:
    return _Server(fake, (host, port))
