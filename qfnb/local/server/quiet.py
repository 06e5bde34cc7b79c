"""uvicorn's server without its tenth-of-a-second tick.

``uvicorn.Server.main_loop`` sleeps 0.1 s at a time to notice ``should_exit`` and to renew its ``Date``
header once a second: ten wakes a second of a process that is otherwise idle, and, while a model
answers on the same two cores, ten times a second the engine's threads give up a core. Here the loop
renews the header once a second and is woken at once to exit.
"""

from __future__ import annotations

import asyncio
import contextlib

import uvicorn

#: how often the ``Date`` header is renewed (seconds; uvicorn's own resolution)
TICK_SECONDS = 1.0
#: seconds an idle keep-alive connection is kept open: longer than the clients' pools keep theirs (httpx and the
#: openai SDK 5 s, qfnb's own 30 s), so the client always closes first. At uvicorn's 5 s a client polling every
#: few seconds on a busy machine reused a connection as the server closed it: "Server disconnected without
#: sending a response"
KEEP_ALIVE_SECONDS = 75


def platform_config(app: object, log_level: str | int | None, **options: object) -> uvicorn.Config:
    """The platform's uvicorn settings (the daemon's and ``qfnb serve``'s): no access log, the keep-alive above."""
    return uvicorn.Config(app, log_level=log_level, access_log=False,  # type: ignore[arg-type]
                          timeout_keep_alive=KEEP_ALIVE_SECONDS, **options)  # type: ignore[arg-type]


class QuietServer(uvicorn.Server):
    """A ``uvicorn.Server`` that wakes once a second, not ten times, and at once when told to exit."""

    def __init__(self, config: uvicorn.Config) -> None:
        self._exit: asyncio.Event | None = None
        self._exit_loop: asyncio.AbstractEventLoop | None = None
        self._should_exit = False
        super().__init__(config)

    @property  # (uvicorn's is a plain attribute, set by its signal handler)
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        if value and self._exit is not None and self._exit_loop is not None and not self._exit_loop.is_closed():
            self._exit_loop.call_soon_threadsafe(self._exit.set)  # (a route, a signal or another thread)

    async def main_loop(self) -> None:
        self._exit, self._exit_loop = asyncio.Event(), asyncio.get_running_loop()
        ticks = 0
        should_exit = await self.on_tick(ticks)
        while not should_exit:
            ticks = (ticks + 10) % 864000  # uvicorn counts tenths: every tick renews the header
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), TICK_SECONDS)
            should_exit = await self.on_tick(ticks)
