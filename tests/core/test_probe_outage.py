"""Issue 26 (item 2): calls to a server that refuses connections back off together; they do not
spin (the probe counted about 70 connection attempts a second from one batch at a dead port)."""

from __future__ import annotations

import asyncio
import contextlib

from qfnb._core.config import Config
from qfnb._core.errors import ConnectionError
from qfnb._core.http.client import AsyncQianfanClient
from qfnb._core.http.outage import FIRST_WAIT, MAX_WAIT, Outages
from qfnb._core.http.retry import RetryPolicy
from qfnb._core.transport import Reply as WireReply
from qfnb._core.transport import Request, StreamReply, Transport
from qfnb.protocol.wires.qianfan.routes import Target
from tests.fakes.clock import VirtualTime

URL = "http://127.0.0.1:9/rpc/2.0/x"


def test_the_window_grows_is_shared_and_closes_on_an_answer() -> None:
    now = [0.0]
    outages = Outages(lambda: now[0])
    assert outages.delay(URL) == 0.0
    outages.refused(URL)
    assert outages.delay("http://127.0.0.1:9/other") == FIRST_WAIT  # the same origin, any path
    assert outages.delay("http://127.0.0.1:10/") == 0.0  # another origin is not held
    windows = []
    for _ in range(8):
        outages.refused(URL)
        windows.append(outages.delay(URL))
    assert windows == sorted(windows) and windows[-1] == MAX_WAIT
    now[0] += MAX_WAIT
    assert outages.delay(URL) == 0.0  # the window ended: one call goes first...
    assert outages.delay(URL) > 0.0  # ...and the others wait for its outcome
    outages.answered(URL)
    assert outages.delay(URL) == 0.0 and not outages.down(URL)


class Refusing(Transport):
    """Nothing listens: every connection is refused."""

    def __init__(self) -> None:
        self.attempts = 0

    async def send(self, request: Request) -> WireReply:
        self.attempts += 1
        raise ConnectionError(f"{request.method} {request.path} failed: connection error (ConnectError)")

    async def stream(self, request: Request) -> StreamReply:
        return await self.send(request)  # type: ignore[return-value]


def test_many_callers_at_a_dead_port_make_a_few_attempts_a_second() -> None:
    transport = Refusing()
    vt = VirtualTime()
    config = Config.from_env({}, base_url="http://127.0.0.1:9", access_token="t", transport=transport)
    client = AsyncQianfanClient(config, clock=vt, sleep=vt.sleep)
    # a retry policy that would spin: no backoff, many attempts (as a batch re-queueing at once)
    spin = RetryPolicy(attempts=12, backoff_factor=0.0, jitter=0.0)

    async def one() -> None:
        with contextlib.suppress(ConnectionError):
            await client.infer(Target("chat", "m"), {"messages": [{"role": "user", "content": "hi"}]}, retry=spin)

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(16)))

    start = vt()
    asyncio.run(main())
    elapsed = vt() - start
    later = transport.attempts - 16  # after the first burst (all 16 were sent before any answer)
    assert later > 0 and elapsed > 10
    assert later / elapsed <= 1.0 / FIRST_WAIT, (transport.attempts, elapsed)
