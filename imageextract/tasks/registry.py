"""Actors declared at module level, bound to a broker later (no broker exists at import time).

    @actor("process_item", queue=QUEUE_ITEMS)
    async def process_item(runtime: Runtime, item_id: str) -> None: ...

`register_actors` (tasks/broker.py) imports every module in `ACTOR_MODULES` and declares each spec on the
process's broker, wrapping the coroutine so it runs on the runtime's event loop through the bridge.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

QUEUE_ITEMS = "items"
QUEUE_JOBS = "jobs"
QUEUE_WEBHOOKS = "webhooks"
QUEUE_MAINTENANCE = "maintenance"

# Modules whose import declares actors. A new domain with actors adds its module here.
ACTOR_MODULES = ["imageextract.tasks.actors", "imageextract.tasks.retention", "imageextract.tasks.exports",
                 "imageextract.tasks.batches"]

ActorFn = Callable[..., Coroutine[Any, Any, Any]]


@dataclass(frozen=True)
class ActorSpec:
    name: str
    queue: str
    fn: ActorFn  # async (runtime, *message args)
    options: dict[str, Any] = field(default_factory=dict)


ACTORS: dict[str, ActorSpec] = {}


def actor(name: str, *, queue: str, **options: Any) -> Callable[[ActorFn], ActorFn]:
    """Declare an actor: its name (what `enqueue` sends), its queue, and Dramatiq options."""

    def declare(fn: ActorFn) -> ActorFn:
        existing = ACTORS.get(name)
        if existing is not None and existing.fn is not fn:
            raise RuntimeError(f"actor {name!r} declared twice")
        ACTORS[name] = ActorSpec(name=name, queue=queue, fn=fn, options=options)
        return fn

    return declare
