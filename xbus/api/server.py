"""uvicorn serving the API on a socket bound beforehand: for `xbus serve`, the tests and the benchmark.

Binding first lets port 0 be printed as the port it became, and an address in use be one readable
line instead of a uvicorn traceback. uvicorn's access log and logging set-up are off: the app logs
each request through structlog (xbus/api/middleware.py), never with a header.

The socket is made with ``IPPROTO_TCP`` named: asyncio turns Nagle's algorithm off only on
connections whose socket says so, and with it on, every response on a kept-alive connection waited
for the client's delayed ACK (40 ms between its headers and its body) before it was complete.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from infrastructure.errors import XbusError


class PortUnavailable(XbusError):
    exit_code = 2


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: any free port); PortUnavailable if it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        raise PortUnavailable(
            f"cannot listen on {host}:{port} ({error.strerror}); choose another --port, or 0 for any free one"
        ) from None
    return listening


class ApiServer:
    """``await server.start()`` returns once the app's lifespan has started and the socket accepts;
    ``await server.stop()`` (or a signal) ends it cleanly, lifespan shutdown included."""

    def __init__(self, app: FastAPI, listening: socket.socket) -> None:
        self.listening = listening
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", server_header=False)
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host, port = self.listening.getsockname()[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def stop_on_signals(self, also: Callable[[], None] | None = None) -> None:
        """End serving on SIGTERM or Ctrl-C (and call ``also``). uvicorn installs its own handlers
        while serving and sends the signal again once it has stopped; this one makes that second
        delivery (and any before serving) a clean stop."""

        def shut_down() -> None:
            self.server.should_exit = True
            if also is not None:
                also()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, shut_down)

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve(sockets=[self.listening]))
        while not (self.server.started or self._task.done()):
            await asyncio.sleep(0.02)
        if not self.server.started:
            await self._task
            raise XbusError("the HTTP API did not start: the reason is logged above")

    async def wait(self) -> None:
        """Until the server stops (``stop()``, SIGTERM or Ctrl-C)."""
        assert self._task is not None, "start() the server first"
        await self._task

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.wait()
