"""HTTP for the Reddit sandbox: the socket server, the request handler, routing and dispatch.

:class:`SandboxHTTPServer` is a ``ThreadingHTTPServer`` that knows its
:class:`~modbot.sandbox.server.SandboxServer` (``.sandbox``); :class:`SandboxHandler` answers
each request on it:

1. an injected :class:`~.state.Fault` matching the request answers it (before authentication);
   otherwise any injected latency is slept;
2. :meth:`SandboxHandler._route` normalises the path (trailing slash and ``.json`` suffix
   dropped; praw's ``raw_json=1`` query and ``api_type=json`` form field are ignored) and
   answers the fixed routes: ``GET /i/{filename}`` (image hosting standing in for
   ``i.redd.it``; Content-Type sniffed from the bytes), ``POST /api/v1/access_token``,
   ``GET /_sandbox/state`` and ``POST /_sandbox/release?n=K|all``;
3. everything else is an OAuth endpoint, answered by
   :meth:`~modbot.sandbox.api.RedditApi.answer_oauth` from its route table.

Every answer is recorded as a :class:`~.state.RequestRecord` (``password`` form fields
redacted). A :class:`~.state.Reply` raised anywhere becomes that answer; any other exception a
JSON ``500``, so that a sandbox bug never looks like a hung server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from modbot.sandbox.state import (
    JSON_TYPE,
    TOO_MANY_REQUESTS_HTML,
    Fault,
    Reply,
    RequestRecord,
    sniff_content_type,
)

__all__ = ["SandboxHTTPServer", "SandboxHandler", "fault_body"]

_NOT_FOUND: dict[str, Any] = {"message": "Not Found", "error": 404}


class Backend(Protocol):
    """What the handler needs from the server it serves (``SandboxServer`` provides it)."""

    @property
    def pending(self) -> int: ...

    def image(self, name: str) -> bytes | None: ...

    def handle_token(self, auth_header: str | None, form: Mapping[str, str]) -> tuple[int, Any]: ...

    def answer_oauth(self, method: str, path: str, authorization: str | None,
                     query: Mapping[str, str], form: Mapping[str, str],
                     ) -> tuple[int, Any, dict[str, str]]: ...

    def state(self) -> dict[str, Any]: ...

    def release(self, n: int = 1) -> list[str]: ...

    def release_all(self) -> list[str]: ...

    def _take_fault(self, method: str, path: str) -> Fault | None: ...

    def _latency_for(self, method: str, path: str) -> float: ...

    def _record_request(self, record: RequestRecord) -> None: ...


class SandboxHTTPServer(ThreadingHTTPServer):
    """The listening socket; one daemon thread per connection, each a :class:`SandboxHandler`
    answering for ``sandbox``."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], sandbox: Backend) -> None:
        self.sandbox = sandbox
        super().__init__(address, SandboxHandler)


def fault_body(fault: Fault, headers: dict[str, str]) -> Any:
    """The body ``fault`` sends: its own, else Reddit's for its status (429: the HTML "whoa
    there, pardner!" page; 5xx: empty; 401: ``{"error": 401}``; others ``{"message": …,
    "error": status}``). Sets the matching default headers in ``headers`` (lower-case keys)."""
    if fault.body is not None:
        return fault.body
    if fault.status == 429:
        wait = headers.get("retry-after", "1")
        headers.setdefault("content-type", "text/html; charset=UTF-8")
        return TOO_MANY_REQUESTS_HTML.format(wait=wait).encode()
    if fault.status >= 500:
        headers.setdefault("content-type", JSON_TYPE)
        return b""
    if fault.status == 401:
        headers.setdefault("www-authenticate", 'Bearer realm="reddit", error="invalid_token"')
        return {"error": 401}
    try:
        return {"message": HTTPStatus(fault.status).phrase, "error": fault.status}
    except ValueError:
        return {"error": fault.status}


class SandboxHandler(BaseHTTPRequestHandler):
    """Answers one connection's requests for ``self.server.sandbox`` (HTTP/1.1 keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "modbot-sandbox/0.1"
    timeout = 30  # idle keep-alive connections are closed after this many seconds
    disable_nagle_algorithm = True  # TCP_NODELAY: answers are never held back ~40 ms
    server: SandboxHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        return  # requests are recorded in server.requests instead of stderr

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):
            # the client gave up (e.g. its timeout fired during an injected stall)
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, method: str) -> None:
        sandbox = self.server.sandbox
        arrived = time.time()
        parts = urlsplit(self.path)
        raw_path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        form: dict[str, str] = {}
        if body and "json" not in (self.headers.get("content-type") or ""):
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        shown_form = {k: ("<redacted>" if k == "password" else v) for k, v in form.items()}

        fault = sandbox._take_fault(method, raw_path)
        if fault is not None:
            # recorded before the answer is written, so a client never outruns the log
            retry_after = {k.lower(): v for k, v in (fault.headers or {}).items()}.get(
                "retry-after")
            self._send_fault(fault, lambda: sandbox._record_request(RequestRecord(
                method, raw_path, query, fault.status, arrived, shown_form, fault=True,
                retry_after=retry_after)))
            return
        latency = sandbox._latency_for(method, raw_path)
        if latency > 0:
            time.sleep(latency)
        try:
            status, payload, headers = self._route(method, raw_path, query, form)
        except Reply as reply:
            status, payload, headers = reply.status, reply.body, reply.headers
        except Exception as exc:  # a sandbox bug must not look like a hung server
            status, payload, headers = 500, {"message": f"sandbox error: {exc!r}", "error": 500}, {}
        sandbox._record_request(RequestRecord(method, raw_path, query, status, arrived, shown_form))
        self._send(status, payload, headers, head=(method == "HEAD"))

    def _route(self, method: str, raw_path: str, query: Mapping[str, str],
               form: Mapping[str, str]) -> tuple[int, Any, dict[str, str]]:
        """(status, payload, headers) for a request that no fault answered."""
        sandbox = self.server.sandbox
        path = raw_path.rstrip("/") or "/"
        path = path.removesuffix(".json")
        if path.startswith("/i/") and method in ("GET", "HEAD"):
            return self._image(path[3:])
        if path == "/api/v1/access_token":
            if method != "POST":
                raise Reply(404, _NOT_FOUND)
            status, payload = sandbox.handle_token(self.headers.get("authorization"), form)
            return status, payload, {}
        if path == "/_sandbox/state" and method == "GET":
            return 200, sandbox.state(), {}
        if path == "/_sandbox/release" and method == "POST":
            n = query.get("n", form.get("n", "1"))
            out = sandbox.release_all() if n == "all" else sandbox.release(int(n))
            return 200, {"released": out, "pending": sandbox.pending}, {}
        return sandbox.answer_oauth(method, path, self.headers.get("authorization"), query, form)

    def _image(self, name: str) -> tuple[int, Any, dict[str, str]]:
        data = self.server.sandbox.image(name)
        if data is None:
            return 404, b"<html><body><h1>404 Not Found</h1></body></html>", {
                "content-type": "text/html; charset=utf-8"}
        return 200, data, {"content-type": sniff_content_type(data, name),
                           "cache-control": "public, max-age=31536000",
                           "accept-ranges": "bytes"}

    # ------------------------------------------------------------------ sending

    def _send(self, status: int, payload: Any, headers: Mapping[str, str], *,
              head: bool = False) -> None:
        headers = {k.lower(): v for k, v in headers.items()}
        if isinstance(payload, bytes | bytearray):
            data = bytes(payload)
            headers.setdefault("content-type", "application/octet-stream")
        elif isinstance(payload, str):
            data = payload.encode("utf-8")
            headers.setdefault("content-type", "text/plain; charset=utf-8")
        else:
            data = json.dumps(payload).encode("utf-8")
            headers.setdefault("content-type", JSON_TYPE)
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        self.send_response(status, phrase)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(data)))
        if self.close_connection:
            # the request said "Connection: close" (prawcore's token requests do): say so,
            # or the client may reuse a connection this server is about to close
            self.send_header("connection", "close")
        self._write_once(b"" if head else data)

    def _write_once(self, body: bytes) -> None:
        """Send the buffered status line and headers and ``body`` in one ``write``.

        ``end_headers`` followed by a second write for the body made a small answer two TCP
        segments; with Nagle's algorithm on and the client's delayed ACK, the second waited
        ~40 ms. One write (and ``TCP_NODELAY``, :attr:`disable_nagle_algorithm`) avoids it.
        """
        self._headers_buffer.append(b"\r\n")
        message = b"".join(self._headers_buffer) + body
        self._headers_buffer = []
        self.wfile.write(message)

    def _send_fault(self, fault: Fault, record: Callable[[], None]) -> None:
        if fault.delay_s > 0:
            time.sleep(fault.delay_s)
        record()
        headers = {k.lower(): v for k, v in (fault.headers or {}).items()}
        body = fault_body(fault, headers)
        if fault.truncate_to is None:
            self._send(fault.status, body, headers)
            return
        if isinstance(body, str):
            data = body.encode("utf-8")
        elif isinstance(body, bytes | bytearray):
            data = bytes(body)
        else:
            data = json.dumps(body).encode("utf-8")
            headers.setdefault("content-type", JSON_TYPE)
        self.send_response(fault.status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(data)))
        self._write_once(data[: max(0, fault.truncate_to)])
        self.wfile.flush()
        self.close_connection = True
