"""An OpenAI-compatible provider stub on loopback, for the sandbox, tests and benchmarks.

It speaks just enough HTTP/1.1 (stdlib asyncio, its own event loop in a
background thread) to answer ``POST .../chat/completions`` the way a real
provider does, or the way a broken one does. What it does is chosen per
request, in this order:

1. the key: with ``valid_keys`` set, any other ``Authorization`` key gets 401;
2. the model name, looked up in ``behaviours`` (``{"deepseek-chat": "ok"}``);
3. a model name of the form ``stub-<behaviour>[@<ms>]`` (``stub-429``,
   ``stub-ok@300`` adds 300 ms before the answer);
4. otherwise ``default`` (``"ok"``).

Behaviours (see :data:`BEHAVIOURS`): ``ok`` (a normal stream, or JSON when the
request is not streaming), ``reasoning`` (``reasoning_content`` chunks first),
``empty`` (a well-formed stream without text), ``json`` (ignores ``stream`` and
answers one JSON object), ``400``, ``400-model`` (DeepSeek's "Model Not Exist"),
``400-temperature`` (rejects a request that carries ``temperature``, answers one that
does not, like OpenAI's o-series),
``401``, ``401-echo`` (a provider that echoes the whole key back), ``402``,
``403``, ``404``, ``404-html``, ``429``, ``500``, ``503``, ``429-once`` /
``503-once`` (fail the first request for that model, then answer),
``stall`` (never answers), ``stall-stream`` (one chunk, then silence),
``close`` (closes the connection mid-stream), ``truncated`` (a clean end
without ``finish_reason`` or ``[DONE]``), ``html`` (200 with a web page),
``blank`` (200 with an empty body), ``malformed`` (events that are not JSON),
``foreign`` (JSON events that are not chat chunks), ``stream-error`` (an error
event inside the stream).

Every request is recorded (:class:`RecordedRequest`: method, path, headers,
JSON body) for assertions. Keys are recorded because tests assert which key
was sent; the stub is a test double and never logs them.

Run it by hand for the sandbox::

    python -m layra_migrate.sandbox.provider_stub --port 8400 --latency-ms 300
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

BEHAVIOURS = (
    "ok",
    "reasoning",
    "empty",
    "json",
    "400",
    "400-model",
    "400-temperature",
    "401",
    "401-echo",
    "402",
    "403",
    "404",
    "404-html",
    "429",
    "500",
    "503",
    "429-once",
    "503-once",
    "stall",
    "stall-stream",
    "close",
    "truncated",
    "html",
    "blank",
    "malformed",
    "foreign",
    "stream-error",
)
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None
    behaviour: str
    at: float

    @property
    def api_key(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None


@dataclass
class ProviderStub:
    """Start with :meth:`start` (or as a context manager); ``base_url`` ends in ``/v1``."""

    behaviours: Mapping[str, str] = field(default_factory=dict)
    valid_keys: frozenset[str] | None = None
    default: str = "ok"
    latency_s: float = 0.0
    stall_s: float = 120.0
    host: str = "127.0.0.1"
    port: int = 0
    ssl_context: ssl.SSLContext | None = None  # serve HTTPS (e.g. a self-signed certificate)
    requests: list[RecordedRequest] = field(default_factory=list, init=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _server: asyncio.base_events.Server | None = field(default=None, init=False, repr=False)
    _stopping: asyncio.Event | None = field(default=None, init=False, repr=False)
    _seen: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set, init=False, repr=False)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}/v1"

    def start(self) -> ProviderStub:
        ready = threading.Event()
        errors: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve(ready))
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                errors.append(exc)
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name="provider-stub", daemon=True)
        self._thread.start()
        if not ready.wait(10) or errors:
            raise RuntimeError(f"provider stub did not start: {errors[0] if errors else 'timeout'}")
        return self

    async def _serve(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, ssl=self.ssl_context
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        ready.set()
        await self._stopping.wait()
        self._server.close()
        for w in list(self._writers):
            w.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    def stop(self) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> ProviderStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self._seen.clear()

    def requests_for(self, model: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.model == model]

    # -- choosing what to do ---------------------------------------------------------------

    def behaviour_for(self, model: str | None, key: str | None) -> tuple[str, float]:
        if self.valid_keys is not None and key not in self.valid_keys:
            return "401", self.latency_s
        name = model or ""
        if name in self.behaviours:
            return self.behaviours[name], self.latency_s
        if name.startswith("stub-"):
            spec = name[5:]
            latency = self.latency_s
            if "@" in spec:
                spec, _, ms = spec.partition("@")
                with contextlib.suppress(ValueError):
                    latency = float(ms) / 1000
            if spec in BEHAVIOURS:
                return spec, latency
        return self.default, self.latency_s

    # -- HTTP --------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._handle_one(reader, writer)
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ssl.SSLError,
        ):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _version = (lines[0].split(" ", 2) + ["", ""])[:3]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length") or 0)
        raw = await reader.readexactly(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        auth = headers.get("authorization", "")
        key = auth[7:] if auth.lower().startswith("bearer ") else None
        model = body.get("model") if isinstance(body, dict) else None
        behaviour, latency = self.behaviour_for(model if isinstance(model, str) else None, key)
        with self._lock:
            self.requests.append(
                RecordedRequest(method, path, headers, body, behaviour, time.time())
            )
            count = self._seen.get(str(model), 0) + 1
            self._seen[str(model)] = count
        if latency > 0:
            await asyncio.sleep(latency)
        route = path.split("?", 1)[0].rstrip("/")
        if route.endswith("/models") and method == "GET":
            await self._json(
                writer,
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "owned_by": "stub"} for m in self.behaviours
                    ],
                },
            )
            return
        if not route.endswith("/chat/completions"):
            await self._send(writer, 404, b"404 page not found", "text/plain")
            return
        if method != "POST" or not isinstance(body, dict):
            await self._error(writer, 400, "invalid_request_error", "expected a JSON body")
            return
        if behaviour.endswith("-once"):
            behaviour = behaviour[:-5] if count == 1 else "ok"
        await self._respond(writer, behaviour, body, key or "")

    async def _respond(
        self, w: asyncio.StreamWriter, behaviour: str, body: dict[str, Any], key: str
    ) -> None:
        model = str(body.get("model"))
        stream = bool(body.get("stream"))
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if behaviour == "400":
            await self._error(
                w,
                400,
                "invalid_request_error",
                "Unsupported parameter: 'max_tokens' is not supported with this model.",
                param="max_tokens",
            )
        elif behaviour == "400-temperature" and "temperature" in body:
            await self._error(
                w,
                400,
                "invalid_request_error",
                "Unsupported parameter: 'temperature' is not supported with this model.",
                param="temperature",
            )
        elif behaviour == "400-model":
            await self._error(w, 400, "invalid_request_error", "Model Not Exist")
        elif behaviour == "401":
            shown = f"{key[:3]}*****{key[-4:]}" if len(key) > 8 else "*****"
            await self._error(
                w,
                401,
                "invalid_request_error",
                f"Incorrect API key provided: {shown}.",
                code="invalid_api_key",
            )
        elif behaviour == "401-echo":
            await self._error(
                w,
                401,
                "authentication_error",
                f"Authentication Fails, your api key: {key} is invalid",
            )
        elif behaviour == "402":
            await self._error(w, 402, "unknown_error", "Insufficient Balance")
        elif behaviour == "403":
            await self._error(
                w, 403, "permission_denied", "Project does not have access to this model"
            )
        elif behaviour == "404":
            await self._error(
                w,
                404,
                "invalid_request_error",
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        elif behaviour == "404-html":
            await self._send(
                w, 404, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html"
            )
        elif behaviour == "429":
            await self._error(
                w,
                429,
                "rate_limit_error",
                "Rate limit reached for requests",
                extra_headers={"retry-after": "0"},
            )
        elif behaviour in ("500", "503"):
            await self._error(w, int(behaviour), "server_error", "The server had an error")
        elif behaviour == "stall":
            await self._stall()
        elif behaviour == "html":
            await self._send(
                w,
                200,
                b"<!doctype html><html><head><title>Welcome</title></head>"
                b"<body>It works!</body></html>",
                "text/html; charset=utf-8",
            )
        elif behaviour == "blank":
            await self._send(w, 200, b"", "text/event-stream")
        elif behaviour == "json" or not stream:
            await self._json(w, 200, self._completion(model, behaviour))
        else:
            await self._stream(w, behaviour, model, usage)

    async def _stall(self) -> None:
        assert self._stopping is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.stall_s)

    def _completion(self, model: str, behaviour: str) -> dict[str, Any]:
        text = "" if behaviour == "empty" else "OK"
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
        }

    def _chunk(
        self, model: str, delta: dict[str, Any], finish: str | None = None, *, cid: str
    ) -> bytes:
        obj = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    async def _stream(
        self, w: asyncio.StreamWriter, behaviour: str, model: str, usage: bool
    ) -> None:
        await self._head(w, 200, "text/event-stream", chunked=True)
        cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"

        async def send(data: bytes) -> None:
            w.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await w.drain()

        async def end() -> None:
            w.write(b"0\r\n\r\n")
            await w.drain()

        if behaviour == "malformed":
            await send(b'data: {"id": "x", "choices": [\n\n')
            await send(b"data: [DONE]\n\n")
            return await end()
        if behaviour == "foreign":
            await send(b'data: {"type": "message_start", "message": {}}\n\n')
            await send(b"data: [DONE]\n\n")
            return await end()
        if behaviour == "stream-error":
            await send(
                b"data: "
                + json.dumps(
                    {"error": {"message": "upstream overloaded", "type": "server_error"}}
                ).encode()
                + b"\n\n"
            )
            return await end()
        await send(self._chunk(model, {"role": "assistant", "content": ""}, cid=cid))
        if behaviour == "stall-stream":
            await self._stall()
            return
        if behaviour == "close":
            await send(self._chunk(model, {"content": "O"}, cid=cid))
            transport = w.transport
            if hasattr(transport, "abort"):
                transport.abort()
            return
        if behaviour == "reasoning":
            for piece in ("The user", " wants OK."):
                await send(self._chunk(model, {"reasoning_content": piece}, cid=cid))
        if behaviour != "empty":
            await send(self._chunk(model, {"content": "OK"}, cid=cid))
        if behaviour == "truncated":
            return await end()
        await send(self._chunk(model, {}, "stop", cid=cid))
        if usage:
            obj = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [],
                "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
            }
            await send(b"data: " + json.dumps(obj).encode() + b"\n\n")
        await send(b"data: [DONE]\n\n")
        await end()

    async def _head(
        self,
        w: asyncio.StreamWriter,
        status: int,
        ctype: str,
        *,
        length: int | None = None,
        chunked: bool = False,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            f"content-type: {ctype}",
            "connection: close",
            "server: layra-provider-stub",
        ]
        if chunked:
            lines.append("transfer-encoding: chunked")
        elif length is not None:
            lines.append(f"content-length: {length}")
        for k, v in (extra_headers or {}).items():
            lines.append(f"{k}: {v}")
        w.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await w.drain()

    async def _send(
        self,
        w: asyncio.StreamWriter,
        status: int,
        data: bytes,
        ctype: str,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        await self._head(w, status, ctype, length=len(data), extra_headers=extra_headers)
        w.write(data)
        await w.drain()

    async def _json(
        self,
        w: asyncio.StreamWriter,
        status: int,
        obj: Any,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        await self._send(w, status, json.dumps(obj).encode(), "application/json", extra_headers)

    async def _error(
        self,
        w: asyncio.StreamWriter,
        status: int,
        kind: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        await self._json(
            w,
            status,
            {"error": {"message": message, "type": kind, "param": param, "code": code}},
            extra_headers,
        )


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="OpenAI-compatible provider stub on loopback")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--default", default="ok", choices=BEHAVIOURS)
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="MODEL=BEHAVIOUR",
        help="behaviour for a model name (repeatable)",
    )
    args = parser.parse_args(argv)
    mapping = dict(m.split("=", 1) for m in args.map)
    stub = ProviderStub(
        behaviours=mapping, default=args.default, latency_s=args.latency_ms / 1000, port=args.port
    ).start()
    print(f"provider stub listening on {stub.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        stub.stop()


if __name__ == "__main__":
    main()
