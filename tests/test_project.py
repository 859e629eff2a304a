"""Projection of JSON tool results: the path grammar, project_value, project_text, and the
decorator for tool authors; with hypothesis properties (structural subset, idempotence,
never raising on text)."""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import re
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tidyctx as tc
from builders import call, first_texts, request, tool_loop
from tidyctx.text._project import (
    Projected,
    ProjectionWarning,
    Spec,
    parse_paths,
    project,
    project_text,
    project_value,
    projected,
    warn_missing,
)

PROPS = settings(max_examples=100)

ORDERS: dict[str, Any] = {
    "count": 3,
    "rows": [
        {"id": 1, "status": "open", "total": 9.5, "owner": {"name": "ann", "mail": "a@x"}},
        {"id": 2, "status": "paid", "total": 12, "owner": None},
        {"id": 3, "status": "open", "total": 0, "owner": {"name": "bo", "mail": "b@x"}},
    ],
    "query": "select * from orders",
}


def lines(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------------------- grammar


@pytest.mark.parametrize(
    ("paths", "leaves"),
    [
        (["meta.count"], ("meta.count",)),
        (["rows[*].id"], ("rows[*].id",)),
        (["rows[0]"], ("rows[0]",)),
        (["rows[12].owner.name"], ("rows[12].owner.name",)),
        (["data.items[*].{id,status}"], ("data.items[*].id", "data.items[*].status")),
        (["data.items[*].{ id , status }"], ("data.items[*].id", "data.items[*].status")),
        (["{a,b}"], ("a", "b")),
        (["[*].id"], ("[*].id",)),
        (["[0][1]"], ("[0][1]",)),
        (["[*]"], ("[*]",)),
        (['"order id".x'], ('"order id".x',)),
        (['a."b.c"'], ('a."b.c"',)),
        (['a.{"x y",z}'], ('a."x y"', "a.z")),
        (['a.{"x{",z}'], ('a."x{"', "a.z")),
        (["ünï-cödé_1.$ref"], ("ünï-cödé_1.$ref",)),
        (["a", "a", "b"], ("a", "b")),
        (["a.{x,y}", "a.x"], ("a.x", "a.y")),
    ],
)
def test_grammar_forms(paths: list[str], leaves: tuple[str, ...]) -> None:
    spec = parse_paths(paths)
    assert spec.leaves == leaves
    # The leaves spell the same projection.
    assert project_value(ORDERS, parse_paths(list(spec.leaves))) == project_value(ORDERS, spec)


@pytest.mark.parametrize(
    ("path", "position", "expected"),
    [
        ("", 0, "a key, [*], [N] or {...}"),
        ("a..b", 2, "a key or {...} after '.'"),
        ("a.", 2, "a key or {...} after '.'"),
        ("a[", 2, "'*' or an index"),
        ("a[x]", 2, "'*' or an index"),
        ("a[-1]", 2, "'*' or an index"),
        ("a[*", 3, "']'"),
        ("rows[*.id", 6, "']'"),
        ("a.{}", 3, "a key inside {...}"),
        ("a.{b,", 5, "a key inside {...}"),
        ("a.{b c}", 5, "',' or '}'"),
        ("a.{b}.c", 5, "the end of the path after a {...} group"),
        ("a.{b}[0]", 5, "the end of the path after a {...} group"),
        ("a b", 1, "'.', '[' or the end of the path"),
        ("a{b}", 1, "'.', '[' or the end of the path"),
        ("[*]x", 3, "'.', '[' or the end of the path"),
        ('"abc', 0, "a closed JSON string"),
        (".a", 0, "a key, [*], [N] or {...}"),
    ],
)
def test_grammar_errors_name_the_path_and_position(path: str, position: int, expected: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_paths([path])
    message = str(err.value)
    assert message.startswith(f"projection path {path!r} at position {position}: expected")
    assert expected in message


def test_parse_paths_argument_errors() -> None:
    with pytest.raises(TypeError, match=r"write \['rows\[\*\]\.id'\]"):
        parse_paths("rows[*].id")
    with pytest.raises(TypeError, match="strings"):
        parse_paths([3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at least one path"):
        parse_paths([])


def test_spec_equality_and_reuse() -> None:
    a = parse_paths(["rows[*].id", "count"])
    assert a == parse_paths(("rows[*].id", "count"))
    assert hash(a) == hash(parse_paths(["rows[*].id", "count"]))
    assert a != parse_paths(["count"])
    assert parse_paths(a) is a
    assert str(a) == "rows[*].id, count"
    assert isinstance(a, Spec)


# ---------------------------------------------------------------------------- values


def test_keys_of_every_row() -> None:
    out, missing = project_value(ORDERS, ["rows[*].{id,status}", "count"])
    assert out == {
        "count": 3,
        "rows": [
            {"id": 1, "status": "open"},
            {"id": 2, "status": "paid"},
            {"id": 3, "status": "open"},
        ],
    }
    assert missing == []


def test_key_order_follows_the_input() -> None:
    out, _ = project_value(ORDERS, ["query", "rows[*].{total,id}", "count"])
    assert list(out) == ["count", "rows", "query"]
    assert list(out["rows"][0]) == ["id", "total"]


def test_nested_path_through_rows() -> None:
    out, missing = project_value(ORDERS, ["rows[*].owner.name"])
    # A null owner stays null: the path met a scalar before its end.
    assert out == {"rows": [{"owner": {"name": "ann"}}, {"owner": None}, {"owner": {"name": "bo"}}]}
    assert missing == []


def test_a_key_on_a_list_applies_to_each_element() -> None:
    assert project_value(ORDERS, ["rows.id"]) == project_value(ORDERS, ["rows[*].id"])
    rows = [{"id": 1, "x": 2}, {"id": 3, "x": 4}]
    assert project_value(rows, ["id"]) == ([{"id": 1}, {"id": 3}], [])
    assert project_value([[{"id": 1, "x": 2}]], ["id"]) == ([[{"id": 1}]], [])


def test_top_level_rows_keep_the_named_keys() -> None:
    # tc.trim(project={"sql_query": ["id", "status"]}) on a list of rows, as documented.
    text = json.dumps([{"id": 1, "status": "ok", "body": "..."}, {"id": 2, "status": "no"}])
    done = project_text(text, ["id", "status"])
    assert done.text == '[{"id":1,"status":"ok"},{"id":2,"status":"no"}]'


def test_every_on_an_object_means_every_value() -> None:
    users = {"users": {"u1": {"name": "a", "age": 3}, "u2": {"name": "b", "age": 4}}}
    out, _ = project_value(users, ["users[*].name"])
    assert out == {"users": {"u1": {"name": "a"}, "u2": {"name": "b"}}}


def test_lists_keep_length_and_order() -> None:
    data = {"items": [{"id": 1}, {"other": 2}, 7, None, [1], {"id": 4, "x": 0}]}
    out, _ = project_value(data, ["items[*].id"])
    assert out == {"items": [{"id": 1}, {}, 7, None, [1], {"id": 4}]}


def test_nested_lists() -> None:
    grid = {"rows": [[{"v": 1, "w": 2}, {"v": 3}], [], [{"w": 5}]]}
    out, missing = project_value(grid, ["rows[*][*].v"])
    # An element with nothing selected becomes an empty placeholder of its kind.
    assert out == {"rows": [[{"v": 1}, {"v": 3}], [], []]}
    assert missing == []


def test_index_paths() -> None:
    out, missing = project_value(ORDERS, ["rows[1].status"])
    # Elements before the index stay as placeholders, so positions match the input.
    assert out == {"rows": [{}, {"status": "paid"}]}
    assert missing == []
    out, _ = project_value(ORDERS, ["rows[0]"])
    assert out == {"rows": [ORDERS["rows"][0]]}
    out, _ = project_value({"xs": [5, 6, 7, 8]}, ["xs[2]"])
    assert out == {"xs": [5, 6, 7]}  # scalars are their own placeholders
    out, missing = project_value(ORDERS, ["rows[9].id", "count"])
    assert out == {"count": 3} and missing == ["rows[9].id"]


def test_index_and_every_together() -> None:
    out, _ = project_value(ORDERS, ["rows[*].id", "rows[2].owner.name"])
    assert out == {"rows": [{"id": 1}, {"id": 2}, {"id": 3, "owner": {"name": "bo"}}]}


def test_a_path_ending_at_a_container_keeps_it_whole() -> None:
    out, missing = project_value(ORDERS, ["rows[*].owner", "rows[*].owner.name"])
    assert [r["owner"] for r in out["rows"]] == [r["owner"] for r in ORDERS["rows"]]
    assert missing == []


def test_missing_field_keeps_the_value_as_is() -> None:
    out, missing = project_value(ORDERS, ["rows[*].price"])
    assert out == ORDERS and out is not ORDERS
    assert missing == ["rows[*].price"]


def test_some_missing_fields_are_listed() -> None:
    out, missing = project_value(ORDERS, ["rows[*].{id,price}", "count", "meta.total"])
    assert out == {"count": 3, "rows": [{"id": 1}, {"id": 2}, {"id": 3}]}
    assert missing == ["rows[*].price", "meta.total"]


def test_a_path_that_only_meets_scalars_is_missing() -> None:
    out, missing = project_value({"a": None, "b": 1}, ["a.x"])
    assert out == {"a": None, "b": 1} and missing == ["a.x"]
    assert project_value(42, ["a"]) == (42, ["a"])
    assert project_value("text", ["[*]"]) == ("text", ["[*]"])


def test_type_mismatches_select_nothing() -> None:
    assert project_value({"a": {"k": 1}}, ["a[0]"]) == ({"a": {"k": 1}}, ["a[0]"])
    assert project_value({"a": [1], "b": {}}, ["a[0]", "b[3]"]) == ({"a": [1]}, ["b[3]"])
    # A scalar met on the way is kept (and the path still reported).
    assert project_value({"a": [1], "b": 2}, ["a[0]", "b[3]"]) == ({"a": [1], "b": 2}, ["b[3]"])


def test_input_is_never_changed_nor_shared() -> None:
    before = copy.deepcopy(ORDERS)
    out, _ = project_value(ORDERS, ["rows[*].owner", "count"])
    assert before == ORDERS
    out["rows"][0]["owner"]["name"] = "changed"
    assert before == ORDERS
    unchanged, _ = project_value(ORDERS, ["nothing"])
    unchanged["rows"].clear()
    assert before == ORDERS


def test_tuples_and_non_string_keys() -> None:
    out, _ = project_value({"rows": ({"id": 1, "x": 2},), 5: "five"}, ["rows[*].id", "5"])
    assert out == {"rows": [{"id": 1}], 5: "five"}


# ---------------------------------------------------------------------------- text


def test_json_text_is_projected_compactly() -> None:
    text = json.dumps(ORDERS, indent=2)
    done = project_text(text, ["rows[*].{id,status}", "count"])
    assert done.changed and done.missing == ()
    assert done.text == (
        '{"count":3,"rows":[{"id":1,"status":"open"},{"id":2,"status":"paid"},'
        '{"id":3,"status":"open"}]}'
    )
    assert isinstance(done, Projected)


def test_surrounding_whitespace_is_kept() -> None:
    done = project_text('\n  {"a": 1, "b": 2}\n', ["a"])
    assert done.text == '\n  {"a":1}\n'


def test_json_embedded_in_text() -> None:
    rows = [{"id": i, "name": f"n{i}", "blob": "x" * 20} for i in range(3)]
    text = "Query returned:\n" + json.dumps(rows) + "\n(3 rows, 12 ms)"
    done = project_text(text, ["[*].id"])
    assert done.text == 'Query returned:\n[{"id":0},{"id":1},{"id":2}]\n(3 rows, 12 ms)'
    assert done.changed


def test_json_lines() -> None:
    text = '{"id": 1, "v": "a"}\n{"id": 2, "v": "b"}\n'
    assert project_text(text, ["id"]).text == '{"id":1}\n{"id":2}\n'


def test_non_json_text_passes_through() -> None:
    for text in ["", "plain words", "exit code 1: not found", "{not json", "a ] b } c"]:
        assert project_text(text, ["a"]) == Projected(text, False, ())


@pytest.mark.parametrize(
    "text",
    [
        '{"rows": [{"id": 1, "x": 2}], "count": 1,}',  # trailing comma
        '{"rows": [{"id": 1, "x": 2}, {"id": 2, "x": 3}',  # cut off
        "[{'id': 1, 'x': 2}]",  # Python repr, not JSON
        '{"rows": [{"id": 1, "x": 2}], "count": 1} trailing {"id": oops}',
    ],
)
def test_malformed_json_passes_through(text: str) -> None:
    done = project_text(text, ["rows[*].id"])
    if text.endswith("oops}"):
        # The valid document before the garbage is projected; the garbage is left alone.
        assert done.text == '{"rows":[{"id":1}]} trailing {"id": oops}'
    else:
        assert done.text == text and not done.changed


def test_pieces_of_a_malformed_document_are_not_projected() -> None:
    # The inner objects are valid JSON, but they belong to a broken document.
    text = '[{"id": 1, "x": 2}, {"id": 2, "x": 3}, oops]'
    assert project_text(text, ["id"]).text == text


def test_repeated_keys_pass_through() -> None:
    text = '{"a": 1, "a": 2, "b": 3}'
    assert project_text(text, ["a"]).text == text


def test_deep_nesting_passes_through() -> None:
    text = "[" * 50_000
    assert project_text(text, ["a"]).text == text
    deep = "[" * 5000 + "]" * 5000
    assert project_text(deep, ["a"]).text == deep


def test_unicode_is_kept_readable() -> None:
    done = project_text('{"name": "Zoë \\u00e9 😀", "x": 1}', ["name"])
    assert done.text == '{"name":"Zoë é 😀"}'
    # A lone surrogate escape cannot be written raw: the output escapes instead.
    done = project_text('{"name": "\\ud800", "x": 1}', ["name"])
    assert done.text == '{"name":"\\ud800"}'
    done.text.encode("utf-8")


def test_nan_survives_as_it_came() -> None:
    assert project_text('{"a": NaN, "b": 1}', ["a"]).text == '{"a":NaN}'


def test_missing_in_text() -> None:
    done = project_text(json.dumps(ORDERS), ["rows[*].price"])
    assert done == Projected(json.dumps(ORDERS), False, ("rows[*].price",))
    done = project_text(json.dumps(ORDERS), ["rows[*].{id,price}"])
    assert done.missing == ("rows[*].price",) and done.changed
    # Over several documents a path is missing only if no document has it.
    done = project_text('{"a": 1, "z": 0}\n{"b": 2, "z": 0}', ["a", "b", "c"])
    assert done.text == '{"a":1}\n{"b":2}' and done.missing == ("c",)


def test_project_text_takes_text_only() -> None:
    with pytest.raises(TypeError, match="str"):
        project_text(b"{}", ["a"])  # type: ignore[arg-type]


def test_text_projection_is_deterministic_and_idempotent() -> None:
    text = "Rows:\n" + json.dumps(ORDERS, indent=1) + "\nend"
    spec = ["rows[*].{id,owner}", "count"]
    once = project_text(text, spec)
    assert once == project_text(text, spec)
    twice = project_text(once.text, spec)
    assert twice.text == once.text and not twice.changed and twice.missing == once.missing


def test_large_result_is_fast() -> None:
    rows = [{f"col{c}": f"value {r}-{c}" for c in range(12)} | {"id": r} for r in range(5000)]
    text = "Query returned:\n" + json.dumps({"rows": rows, "count": 5000}) + "\n(5000 rows)"
    done = project_text(text, ["rows[*].{id,col3}", "count"])
    assert len(done.text) < len(text) / 5
    assert json.loads(done.text.split("\n")[1])["count"] == 5000


def test_trim_projection_keeps_integers_too_long_for_python() -> None:
    # Python refuses int() of 4,300+ digits with a ValueError, which must not escape
    # trim(project=...).
    text = '{"id": 7, "secret": "s", "big": ' + "9" * 5000 + ', "neg": -' + "1" * 4500 + "}"
    projected = project_text(text, ["id", "big", "neg"])
    assert projected.text == '{"id":7,"big":' + "9" * 5000 + ',"neg":-' + "1" * 4500 + "}"
    request = tool_loop("Query.", [text], ("sql",))
    out = tc.pipe(request, tc.trim(project={"sql": ["id", "big"]}))
    tc.validate(out)
    kept = out["messages"][2]["content"][0]["content"][0]["text"]
    assert kept.startswith('{"id":7,"big":' + "9" * 5000 + "}\n[tidyctx: projected to id, big")


def test_projection_writes_numbers_back_as_they_were() -> None:
    """Projected numbers keep their spelling: through float, 0.123456789012345678 would lose
    digits and 1e400 would become Infinity, which is not JSON."""
    text = (
        '{"rows": [{"id": 1, "amount": 0.123456789012345678, "big": 1e400, "tiny": -1e-400,'
        ' "plain": 2.5, "note": "x"}], "count": 1}'
    )
    out = project_text(text, ["rows[*].{amount,big,tiny,plain}", "count"]).text
    assert out == (
        '{"rows":[{"amount":0.123456789012345678,"big":1e400,"tiny":-1e-400,"plain":2.5}],'
        '"count":1}'
    )
    req = request(call("sql", {"q": "select"}, text))
    trimmed = first_texts(tc.trim(project={"sql": ["rows[*].amount"]}, compact=False)(req))[0]
    assert trimmed.startswith('{"rows":[{"amount":0.123456789012345678}]}\n[tidyctx: projected')


# ---------------------------------------------------------------------------- for tool authors


def test_decorator_on_a_sync_function_returning_data() -> None:
    @projected("rows[*].id", "count")
    def query(limit: int, *, status: str = "open") -> dict[str, Any]:
        """Docstring kept."""
        return {"count": limit, "rows": [{"id": i, "status": status} for i in range(limit)]}

    assert query(2) == {"count": 2, "rows": [{"id": 0}, {"id": 1}]}
    assert query.__name__ == "query" and query.__doc__ == "Docstring kept."
    assert list(inspect.signature(query).parameters) == ["limit", "status"]


def test_decorator_on_an_async_function_returning_text() -> None:
    @projected("[*].id")
    async def query() -> str:
        await asyncio.sleep(0)
        return "Found:\n" + json.dumps([{"id": 1, "x": "y"}])

    assert inspect.iscoroutinefunction(query)
    assert asyncio.run(query()) == 'Found:\n[{"id":1}]'


def test_decorator_on_a_sync_function_returning_an_awaitable() -> None:
    async def inner() -> dict[str, Any]:
        return {"id": 1, "x": 2}

    @projected("id")
    def query() -> Any:
        return inner()

    assert asyncio.run(query()) == {"id": 1}


def test_decorator_warns_once_naming_the_function() -> None:
    @projected("rows[*].id", "rows[*].price")
    def query_orders() -> dict[str, Any]:
        return {"rows": [{"id": 1, "x": 2}, {"id": 2, "x": 3}]}

    with pytest.warns(ProjectionWarning) as caught:
        out = query_orders()
    assert out == {"rows": [{"id": 1}, {"id": 2}]}
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "query_orders" in message and "rows[*].price" in message
    assert caught[0].filename == __file__


def test_decorator_keeps_a_result_without_the_fields() -> None:
    @projected("price")
    def query() -> str:
        return '{"id": 1}'

    with pytest.warns(ProjectionWarning, match="kept as is"):
        assert query() == '{"id": 1}'


def test_decorator_passes_non_json_through() -> None:
    @projected("id")
    def text_tool() -> str:
        return "no rows found"

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert text_tool() == "no rows found"

    @projected("id")
    def odd_tool() -> object:
        return {1, 2}

    with pytest.warns(ProjectionWarning, match="cannot project a set"):
        assert odd_tool() == {1, 2}


def test_decorator_checks_paths_when_applied() -> None:
    with pytest.raises(ValueError, match="position 5"):
        projected("rows[x]")
    with pytest.raises(TypeError, match="@projected"):
        projected(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one path"):
        projected()


def test_project_function() -> None:
    assert project(ORDERS, "count") == {"count": 3}
    assert project(json.dumps(ORDERS), "count") == '{"count":3}'
    with pytest.warns(ProjectionWarning, match=r"project\(\): no projection path matched"):
        assert project({"a": 1}, "b") == {"a": 1}


def test_warn_missing() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_missing("tool x", [])
    spec = parse_paths(["a", "b"])
    with pytest.warns(ProjectionWarning, match="tool x: projection path.s. b matched nothing"):
        warn_missing("tool x", ["b"], spec)
    with pytest.warns(ProjectionWarning, match="tool x: no projection path matched .a, b."):
        warn_missing("tool x", ["a", "b"], spec)


# ---------------------------------------------------------------------------- properties

_BARE = re.compile(r"[^.\[\]{},\"\s]+")

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
keys = st.sampled_from(["id", "name", "rows", "a", "b"]) | st.text(max_size=6)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=30,
)
containers = json_values.filter(lambda v: isinstance(v, dict | list))


def spell(key: str) -> str:
    return key if _BARE.fullmatch(key) else json.dumps(key, ensure_ascii=False)


Step = str | int  # a key, an index, or "*" wrapped as ("*",) below


def paths_in(value: Any, steps: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path that exists in ``value``, as step tuples (keys, indices, ("*",))."""
    out: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append((*steps, k))
            out += paths_in(v, (*steps, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.append((*steps, i))
            out += paths_in(v, (*steps, i))
        if value:
            out.append((*steps, ("*",)))
            out += paths_in(value[0], (*steps, ("*",)))
    return out


def spelled(steps: tuple[Any, ...]) -> str:
    text = ""
    for step in steps:
        if isinstance(step, tuple):
            text += "[*]"
        elif isinstance(step, int):
            text += f"[{step}]"
        else:
            text += ("." if text else "") + spell(step)
    return text


def resolve(value: Any, steps: tuple[Any, ...]) -> list[Any]:
    """The values at ``steps`` (all of them under [*]), in document order."""
    found = [value]
    for step in steps:
        nxt: list[Any] = []
        for v in found:
            if isinstance(step, tuple):
                if isinstance(v, list):
                    nxt += v
                elif isinstance(v, dict):
                    nxt += list(v.values())
            elif isinstance(step, int):
                if isinstance(v, list) and step < len(v):
                    nxt.append(v[step])
            elif isinstance(v, dict) and step in v:
                nxt.append(v[step])
        found = nxt
    return found


def is_subset(out: Any, inp: Any) -> bool:
    """``out`` is ``inp`` with fields left out: same places, same values."""
    if isinstance(out, dict):
        return isinstance(inp, dict) and all(
            k in inp and is_subset(v, inp[k]) for k, v in out.items()
        )
    if isinstance(out, list):
        return (
            isinstance(inp, list)
            and len(out) <= len(inp)
            and all(is_subset(o, i) for o, i in zip(out, inp, strict=False))
        )
    return type(out) is type(inp) and out == inp


@st.composite
def value_and_paths(draw: st.DrawFn) -> tuple[Any, list[tuple[Any, ...]]]:
    value = draw(containers)
    existing = paths_in(value)
    if not existing:
        return value, []
    chosen = draw(st.lists(st.sampled_from(existing), min_size=1, max_size=4, unique=True))
    return value, chosen


@PROPS
@given(value_and_paths())
def test_projection_is_a_structural_subset_keeping_every_selected_value(
    case: tuple[Any, list[tuple[Any, ...]]],
) -> None:
    value, chosen = case
    if not chosen:
        return
    spec = parse_paths([spelled(steps) for steps in chosen])
    before = copy.deepcopy(value)
    out, missing = project_value(value, spec)
    assert value == before
    assert missing == []  # every path was drawn from the value
    assert json.loads(json.dumps(out, allow_nan=False)) == out  # valid JSON
    assert is_subset(out, value)
    for steps in chosen:
        assert resolve(out, steps) == resolve(value, steps)


@PROPS
@given(value_and_paths(), st.lists(st.sampled_from(["zz", "rows[*].zz", "[3].zz"]), max_size=2))
def test_projection_is_idempotent(
    case: tuple[Any, list[tuple[Any, ...]]], extra: list[str]
) -> None:
    value, chosen = case
    paths = [spelled(steps) for steps in chosen] + extra
    if not paths:
        return
    spec = parse_paths(paths)
    once, missing = project_value(value, spec)
    assert is_subset(once, value)
    assert project_value(once, spec) == (once, missing)
    for wrap in ("{}", "Result:\n{}\n(done)", "{}\n{}"):
        text = wrap.format(*[json.dumps(value, indent=1)] * wrap.count("{}"))
        first = project_text(text, spec)
        second = project_text(first.text, spec)
        assert second.text == first.text and second.missing == first.missing
        assert first.missing == tuple(missing)


@PROPS
@given(value_and_paths())
def test_text_and_value_projections_agree(case: tuple[Any, list[tuple[Any, ...]]]) -> None:
    value, chosen = case
    if not chosen:
        return
    spec = parse_paths([spelled(steps) for steps in chosen])
    out, _ = project_value(value, spec)
    done = project_text(json.dumps(value), spec)
    assert json.loads(done.text) == out


@PROPS
@given(st.text(), st.sampled_from([["a"], ["[*].id"], ["rows[*].{id,status}", "count"]]))
def test_project_text_never_raises(text: str, paths: list[str]) -> None:
    done = project_text(text, paths)
    assert isinstance(done.text, str)
    assert done.changed == (done.text != text)
    assert project_text(done.text, paths).text == done.text


@PROPS
@given(
    st.lists(
        st.text(alphabet='{}[]",:0123456789abc \n\\', max_size=12) | json_values.map(json.dumps),
        max_size=5,
    ).map("".join),
    st.sampled_from([["a"], ["[*]"], ["[0].a", "b"], ["a.{b,c}"]]),
)
def test_project_text_on_json_like_noise(text: str, paths: list[str]) -> None:
    done = project_text(text, paths)
    assert project_text(done.text, paths).text == done.text
