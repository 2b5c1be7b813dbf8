"""Flat lists (graphql_fanout.SharedEventExecutor.complete_iterable_value) answer exactly what graphql-core's
own completion answers: the same data for plain values, and the same errors for values a scalar refuses
(an Int past 32 bits, a NaN Float, a null in a non-null field), which take the normal path."""

from __future__ import annotations

import math
from typing import Any

import pytest
import strawberry

from imageextract import graphql_fanout
from imageextract.graphql_fanout import SharedEventExecutor, view_attr


@strawberry.type
class Row:
    name: str
    count: int
    ratio: float | None
    flag: bool
    size: int | None


ROWS: list[list[dict[str, Any]]] = [
    [{"name": "a", "count": 1, "ratio": 0.5, "flag": True, "size": 2**31 - 1},
     {"name": "b", "count": -(2**31), "ratio": None, "flag": False, "size": None}],
    [{"name": "a", "count": 2**31, "ratio": 1.0, "flag": True, "size": 1}],  # past Int's 32 bits
    [{"name": "a", "count": 1, "ratio": math.nan, "flag": True, "size": 1}],  # a float Float refuses
    [{"name": "a", "count": 1, "ratio": math.inf, "flag": True, "size": 1}],
    [{"name": "a", "count": True, "ratio": 3, "flag": True, "size": 1.0}],  # coerced by serialise
    [{"name": None, "count": 1, "ratio": 1.0, "flag": True, "size": 1}],  # null in a non-null field
]


def _schema(shortcut: bool, extensions: list[Any] | None = None) -> strawberry.Schema:
    @strawberry.type
    class Query:
        @strawberry.field
        def rows(self, case: int) -> list[Row]:
            return ROWS[case]  # type: ignore[return-value]  # plain dicts, served as views are

    config = strawberry.schema.config.StrawberryConfig(default_resolver=view_attr)
    if shortcut:
        return strawberry.Schema(query=Query, config=config, execution_context_class=SharedEventExecutor,
                                 extensions=extensions or [])
    return strawberry.Schema(query=Query, config=config)


@pytest.mark.parametrize("case", range(len(ROWS)))
async def test_flat_completion_answers_as_graphql_core_does(case: int) -> None:
    query = "query($case: Int!) { rows(case: $case) { name count ratio flag size } }"
    ours = await _schema(True).execute(query, variable_values={"case": case})
    plain = await _schema(False).execute(query, variable_values={"case": case})
    assert ours.data == plain.data
    assert [(e.message, e.path) for e in ours.errors or []] == [(e.message, e.path) for e in plain.errors or []]
    if case == 0:
        assert ours.errors is None and ours.data == {"rows": ROWS[0]}
    elif case == 4:
        assert ours.errors is None and ours.data == {"rows": [{"name": "a", "count": 1, "ratio": 3.0, "flag": True,
                                                                "size": 1}]}
    else:
        assert ours.errors, "a refused value must be an error, as graphql-core reports it"


async def test_a_plan_is_made_once_per_document_and_only_where_variables_cannot_change_it() -> None:
    """The plan of a list's selection is shared by every request with the same parsed document, unless a
    directive (or a fragment's) could make one request select other fields than the next."""
    from strawberry.extensions import ParserCache

    schema = _schema(True, [lambda: ParserCache(maxsize=16)])  # documents parsed once, as the app does
    plain = "query($case: Int!) { rows(case: $case) { name count } }"
    before = len(graphql_fanout._plans)
    for case in (0, 0, 4):
        result = await schema.execute(plain, variable_values={"case": case})
        assert result.errors is None and result.data == {
            "rows": [{"name": r["name"], "count": int(r["count"])} for r in ROWS[case]]}
    assert len(graphql_fanout._plans) == before + 1  # one plan for the three requests

    directed = ("query($case: Int!, $with: Boolean!) { rows(case: $case) { name ...F } } "
                "fragment F on Row { count @include(if: $with) size }")
    reference = _schema(False)
    for flag in (True, False, True):
        variables = {"case": 0, "with": flag}
        ours = await schema.execute(directed, variable_values=variables)
        theirs = await reference.execute(directed, variable_values=variables)
        assert ours.errors is None and ours.data == theirs.data
        assert ("count" in ours.data["rows"][0]) is flag  # type: ignore[index]
    assert len(graphql_fanout._plans) == before + 1  # planned per request, never shared
