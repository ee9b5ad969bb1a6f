"""The event loop a serving process runs on (`event_loop` setting).

uvloop runs the loop's own bookkeeping (ready queue, timers, epoll) in C: about a dozen loop turns per
unary call, each a few µs of Python on the standard loop (docs/performance.md). gRPC's aio server, the
batcher, the admission queue and the signal handlers work the same on either; every deadline and queue
time in riskserve is read from `time.monotonic()`, never from `loop.time()` (uvloop's is libuv's
clock in whole milliseconds).
"""

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from server.config.settings import EventLoop

T = TypeVar("T")


def loop_factory(kind: EventLoop) -> Callable[[], asyncio.AbstractEventLoop]:
    """The constructor of a new event loop of `kind`."""
    if kind is EventLoop.UVLOOP:
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], kind: EventLoop) -> T:
    """`asyncio.run(main)` on a new loop of `kind`."""
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        return runner.run(main)


def loop_name() -> str:
    """The running loop's kind, as the logs name it."""
    module = type(asyncio.get_running_loop()).__module__
    return EventLoop.UVLOOP.value if module.startswith("uvloop") else EventLoop.ASYNCIO.value
