"""A loopback TCP proxy that delays every byte by a fixed time each way: a slow link.

Operators run the tool from a bastion or through an SSH tunnel, where every round trip
costs 10-50 ms. The benchmarks put this proxy in front of the MongoDB server to measure
what the tool's round trips cost there: each chunk read from one side is written to the
other ``delay`` seconds after it arrived, in order, without limiting throughput (a
latency, not a bandwidth cap), so one request/reply costs ``2 x delay`` more.

    .venv/bin/python benchmarks/latency_proxy.py --upstream 127.0.0.1:27017 --delay-ms 10

prints ``listening 127.0.0.1:PORT`` and runs until killed. :func:`start` runs it in a
child process of its own (so its work never competes with the caller's GIL) and returns
the proxied MongoDB URI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

CHUNK = 1 << 16


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    """Copy reader -> writer, each chunk ``delay_s`` after it was read."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

    async def deliver() -> None:
        while (item := await queue.get()) is not None:
            due, data = item
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    try:
        while data := await reader.read(CHUNK):
            queue.put_nowait((loop.time() + delay_s, data))
    except (ConnectionError, OSError):
        pass
    finally:
        queue.put_nowait(None)
        with contextlib.suppress(ConnectionError, OSError):
            await sender
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


async def serve(
    listen_port: int,
    upstream: tuple[str, int],
    delay_s: float,
    ready: asyncio.Future[int] | None = None,
) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*upstream)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, server_w, delay_s), _pipe(server_r, client_w, delay_s))

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    port = int(server.sockets[0].getsockname()[1])
    if ready is not None:
        ready.set_result(port)
    print(f"listening 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


@dataclass
class Proxy:
    uri: str
    port: int
    delay_ms: float
    proc: subprocess.Popen[str]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def proxied_uri(uri: str, port: int) -> str:
    """``uri`` with its host:port replaced by the proxy's (one host only)."""
    parts = urlsplit(uri)
    netloc = parts.netloc
    creds = netloc.rsplit("@", 1)[0] + "@" if "@" in netloc else ""
    return urlunsplit(parts._replace(netloc=f"{creds}127.0.0.1:{port}"))


def upstream_of(uri: str) -> tuple[str, int]:
    parts = urlsplit(uri)
    if parts.hostname is None or "," in parts.netloc:
        raise ValueError("the latency proxy needs a single-host mongodb:// URI")
    return parts.hostname, parts.port or 27017


def start(uri: str, delay_ms: float) -> Proxy:
    """The proxy in a child process, in front of the server at ``uri``."""
    host, port = upstream_of(uri)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--upstream",
            f"{host}:{port}",
            "--delay-ms",
            str(delay_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening "):
        proc.kill()
        raise RuntimeError(f"latency proxy did not start: {line!r}")
    listen = int(line.rsplit(":", 1)[1])
    return Proxy(proxied_uri(uri, listen), listen, delay_ms, proc)


@contextlib.contextmanager
def running(uri: str, delay_ms: float) -> Iterator[Proxy]:
    proxy = start(uri, delay_ms)
    try:
        yield proxy
    finally:
        proxy.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the server")
    ap.add_argument("--delay-ms", type=float, default=10.0, help="added each way (default 10)")
    ap.add_argument("--port", type=int, default=0, help="listen port (default: any free one)")
    args = ap.parse_args()
    host, _, port = args.upstream.rpartition(":")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, (host, int(port)), args.delay_ms / 1000))


if __name__ == "__main__":
    main()
