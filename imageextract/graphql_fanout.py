"""Subscription fan-out: one GraphQL execution per event for all the subscribers that would compute the same
result, instead of one per subscriber.

A thousand subscribers of one job receive the same pub/sub message object (events/: one parsed object per
process, shared by every local subscription). `shared_root` turns that message into one root value for all
of them, and `SharedEventExecutor` (the schema's executor) runs the selection set over a root once per
distinct (operation document, variables, viewer scope) and hands the same result to every subscriber with
that key. The viewer scope (account, project binding and role; or the guest identity) is part of the key,
so a result computed for one caller is never served to another, even if a resolver below the root looked
at the viewer. Per-subscriber roots (the current state read on subscribe) are distinct objects: never shared.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

T = TypeVar("T")

MAX_ENTRIES = 4096  # recent (event, key) results kept; an evicted one is simply computed again

_roots: OrderedDict[int, tuple[Any, Any]] = OrderedDict()  # id(message) -> (message, root)
_results: OrderedDict[Hashable, tuple[tuple[Any, ...], Any]] = OrderedDict()  # key -> (kept alive, result)


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    if len(cache) > MAX_ENTRIES:
        cache.popitem(last=False)


def shared_root(message: Any, build: Callable[[Any], T]) -> T:
    """The root value for `message`, built once per message object (the entry keeps the message alive, so
    its id cannot be reused by another message while the entry exists)."""
    entry = _roots.get(id(message))
    if entry is not None and entry[0] is message:
        return entry[1]  # type: ignore[no-any-return]
    root = build(message)
    _remember(_roots, id(message), (message, root))
    return root


def viewer_scope(context: Any) -> Hashable:
    ctx = getattr(context, "ctx", None)
    principal = getattr(ctx, "principal", None)
    if principal is not None:
        return ("account", principal.account_id, principal.project_id, principal.role)
    return ("guest", getattr(ctx, "guest_token", None), id(context))  # anonymous: never shared


def _variables_key(values: Any) -> str:
    return json.dumps(values, sort_keys=True, default=repr)


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, with subscription events executed once per (root, document, variables, viewer)."""

    _share: tuple[Any, ...] | None = None

    def build_per_event_executor(self, payload: Any) -> Any:
        executor = super().build_per_event_executor(payload)
        executor._share = (payload, self.operation, _variables_key(self.variable_values),
                           viewer_scope(self.context_value))
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        share = self._share
        if share is None:
            return super().execute_operation(serially)
        payload, operation, variables, scope = share
        key = (id(payload), id(operation), variables, scope)
        entry = _results.get(key)
        if entry is not None and entry[0][0] is payload and entry[0][1] is operation:
            result = entry[1]
        else:
            result = super().execute_operation(serially)
            if self.is_awaitable(result):
                result = asyncio.ensure_future(result)  # one task, awaited by every subscriber with this key
            _remember(_results, key, ((payload, operation), result))
        # Shielded: a subscriber that disconnects cancels its own wait, never the shared execution.
        return asyncio.shield(result) if isinstance(result, asyncio.Future) else result
