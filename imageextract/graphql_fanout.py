"""The schema's executor: graphql-core's, with two shortcuts that change no result.

1. Lists of flat objects (`images { 15 scalar fields }`): when every selected field of the item type is a
   plain attribute (Strawberry's default resolver, no arguments, no directives, no middleware) of a scalar
   type, the list is completed by reading the attributes and serialising each value with its scalar's own
   `serialize`, instead of a full field execution (resolve info, path, completion) per cell. Anything
   else, or any value that would not serialise cleanly (a null in a non-null field, an invalid scalar),
   falls back to the normal path for that list, which produces the usual errors.
2. Subscription fan-out: one GraphQL execution per event for all the subscribers that would compute the
   same result, instead of one per subscriber.

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
from collections.abc import Callable, Hashable, Iterable
from math import isfinite
from typing import Any, TypeVar

from graphql import (
    GRAPHQL_MAX_INT,
    GRAPHQL_MIN_INT,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLError,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLString,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

T = TypeVar("T")

MAX_ENTRIES = 4096  # recent (event, key) results kept; an evicted one is simply computed again

_roots: OrderedDict[int, tuple[Any, Any]] = OrderedDict()  # id(message) -> (message, root)
_results: OrderedDict[Hashable, tuple[tuple[Any, ...], Any]] = OrderedDict()  # key -> (kept alive, result)
_plans: OrderedDict[Hashable, tuple[tuple[Any, ...], Any]] = OrderedDict()  # flat plans shared by requests


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    if len(cache) > MAX_ENTRIES:
        cache.popitem(last=False)


def shared_root(message: Any, build: Callable[[Any], T]) -> T:
    """The root value for `message`, built once per message object (the entry keeps the message alive, so
    its id cannot be reused by another message while the entry exists)."""
    entry = _roots.get(id(message))
    if entry is not None and entry[0] is message:
        return entry[1]
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


# A flat plan, per selected field: (response key, attribute name, how to read it, a reader for _CALL,
# the scalar's serialise, non-null, the one Python type that serialise returns unchanged or None).
FlatPlan = list[tuple[str, str, int, Callable[[Any], Any] | None, Callable[[Any], Any], bool, type | None]]
_NO_PLAN: FlatPlan = []
_ATTR, _VIEW, _CALL = 0, 1, 2  # getattr; a dict's key or else getattr (view_attr); the reader
# graphql-core's String, ID and Boolean give back a str (a bool) as it is, Int an int within 32 bits and
# Float a finite float: no call needed for those (an int out of range, a NaN: serialise raises, as it would).
_UNCHANGED = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool, GraphQLInt: int, GraphQLFloat: float}


class _NotFlat(Exception):
    pass


def view_attr(source: Any, name: str) -> Any:
    """The schema's default resolver: an attribute, or a key of a plain dict (a service view such as
    `ImageView` served as it is, without building a Strawberry object per row)."""
    if source.__class__ is dict:
        return source[name]
    return getattr(source, name)


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, with flat lists completed directly and subscription events executed once per
    (root, document, variables, viewer)."""

    _share: tuple[Any, ...] | None = None
    _share_scope: tuple[Any, ...]

    def complete_iterable_value(self, item_type: Any, field_details_list: Any, info: Any, path: Any,
                                items: Iterable[Any], position_context: Any) -> Any:
        plan = self._flat_plan(item_type, field_details_list)
        if not plan:
            return super().complete_iterable_value(item_type, field_details_list, info, path, items,
                                                   position_context)
        items = items if isinstance(items, list | tuple) else list(items)
        try:
            return [_complete_flat(item, plan) for item in items]
        except (_NotFlat, GraphQLError, TypeError, ValueError):
            return super().complete_iterable_value(item_type, field_details_list, info, path, items,
                                                   position_context)

    def _flat_plan(self, item_type: Any, field_details_list: Any) -> FlatPlan:
        """The plan for this list's selection. A selection with no directive anywhere below it (fragments
        included) and no @defer around it plans the same for every request with the same document (whose
        nodes the parser cache keeps): planned once per process. Otherwise once per execution."""
        if any(d.defer_usage is not None for d in field_details_list):
            return _NO_PLAN
        nodes = tuple(d.node for d in field_details_list)
        key = (item_type, *map(id, nodes))
        shared = _plans.get(key)
        if shared is not None and all(a is b for a, b in zip(shared[0], nodes, strict=True)):
            return shared[1]
        cache: dict[Any, tuple[Any, FlatPlan]] = self.__dict__.setdefault("_flat_plans", {})
        cached = cache.get(key)
        if cached is not None:
            return cached[1]
        plan = self._build_flat_plan(item_type, field_details_list)
        manager = self.middleware_manager
        if (manager is None or not manager.middlewares) and not any(
                _directed(n.selection_set, self.fragments, set()) for n in nodes):
            _remember(_plans, key, (nodes, plan))  # the nodes kept alive: their ids are not reused meanwhile
        else:
            cache[key] = (nodes, plan)
        return plan

    def _build_flat_plan(self, item_type: Any, field_details_list: Any) -> FlatPlan:
        if isinstance(item_type, GraphQLNonNull):
            item_type = item_type.of_type
        manager = self.middleware_manager
        if (not isinstance(item_type, GraphQLObjectType) or item_type.is_type_of is not None
                or (manager is not None and manager.middlewares)):
            return _NO_PLAN
        grouped, new_defers, forbidden = self.collect_subfields(item_type, field_details_list)
        if new_defers or forbidden:
            return _NO_PLAN
        plan: FlatPlan = []
        for response_key, details in grouped.items():
            nodes = [d.node for d in details]
            if any(n.arguments or n.directives or n.selection_set for n in nodes) or \
                    any(d.defer_usage is not None for d in details):
                return _NO_PLAN
            name = nodes[0].name.value
            if name == "__typename":
                type_name = item_type.name
                plan.append((response_key, name, _CALL, lambda _item, type_name=type_name: type_name,  # type: ignore[misc]
                             str, True, str))
                continue
            field_def = item_type.fields.get(name)
            if field_def is None or not getattr(field_def.resolve, "_is_default", False):
                return _NO_PLAN
            definition = (field_def.extensions or {}).get("strawberry-definition")
            if definition is None or definition.base_resolver is not None:
                return _NO_PLAN
            leaf, non_null = field_def.type, False
            if isinstance(leaf, GraphQLNonNull):
                leaf, non_null = leaf.of_type, True
            if not isinstance(leaf, GraphQLScalarType):
                return _NO_PLAN
            resolver, attr = definition.default_resolver, definition.python_name
            if resolver is getattr or resolver is view_attr:
                plan.append((response_key, attr, _ATTR if resolver is getattr else _VIEW, None, leaf.serialize,
                             non_null, _UNCHANGED.get(leaf)))
            else:
                plan.append((response_key, attr, _CALL, lambda item, r=resolver, n=attr: r(item, n),  # type: ignore[misc]
                             leaf.serialize, non_null, _UNCHANGED.get(leaf)))
        return plan

    def build_per_event_executor(self, payload: Any) -> Any:  # noqa: D102
        # The part of the key that holds for the whole subscription, computed on its first event.
        scope = self.__dict__.get("_share_scope")
        if scope is None:
            scope = self._share_scope = (id(self.operation), _variables_key(self.variable_values),
                                         viewer_scope(self.context_value))
        key = (id(payload), *scope)
        entry = _results.get(key)
        if entry is not None and entry[0][0] is payload and entry[0][1] is self.operation:
            return _Computed(entry[1])  # already executed for this audience: no executor to build
        executor = super().build_per_event_executor(payload)
        executor._share = (payload, key)  # type: ignore[attr-defined]
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        share = self._share
        if share is None:
            return super().execute_operation(serially)
        payload, key = share
        result = super().execute_operation(serially)
        if self.is_awaitable(result):
            result = asyncio.ensure_future(result)  # one task, awaited by every subscriber with this key
        _remember(_results, key, ((payload, self.operation), result))
        return _shielded(result)


class _Computed:
    """Stands in for a per-event executor when the event's result for this audience exists already."""

    __slots__ = ("result",)

    def __init__(self, result: Any) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> Any:
        return _shielded(self.result)


def _shielded(result: Any) -> Any:
    # A subscriber that disconnects cancels its own wait, never the shared execution.
    return asyncio.shield(result) if isinstance(result, asyncio.Future) else result


def _directed(selection_set: Any, fragments: dict[str, Any], seen: set[str]) -> bool:
    """Whether this selection set can select differently from one request to the next: a directive anywhere
    in it, or a fragment with arguments, the fragments it spreads included."""
    if selection_set is None:
        return False
    for selection in selection_set.selections:
        if selection.directives:
            return True
        if isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name not in seen:
                seen.add(name)
                details = fragments.get(name)
                if (details is None or getattr(selection, "arguments", None) or details.variable_signatures
                        or details.definition.directives
                        or _directed(details.definition.selection_set, fragments, seen)):
                    return True
        elif _directed(selection.selection_set, fragments, seen):
            return True
    return False


def _plain_number(value: Any) -> bool:
    """An int that Int serialises as it is (32 bits), or a float that Float does (finite)."""
    return GRAPHQL_MIN_INT <= value <= GRAPHQL_MAX_INT if value.__class__ is int else isfinite(value)


def _complete_flat(item: Any, plan: FlatPlan) -> dict[str, Any]:
    if item is None:
        raise _NotFlat
    is_dict = item.__class__ is dict
    row: dict[str, Any] = {}
    for key, attr, how, read, serialize, non_null, unchanged in plan:
        if how == _VIEW and is_dict:
            value = item[attr]
        elif how == _CALL:
            value = read(item)  # type: ignore[misc]
        else:
            value = getattr(item, attr)
        if value is None:
            if non_null:
                raise _NotFlat
            row[key] = None
        elif value.__class__ is unchanged and (unchanged is str or unchanged is bool or _plain_number(value)):
            row[key] = value
        else:
            row[key] = serialize(value)
    return row
