"""The store of removed text (store.py) and the tool that reads it back (expand_tool)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import anthropic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tidyctx as tc
from tidyctx.store import MemoryStore, Store, store_key, store_text
from tidyctx.testing import LocalServer
from tidyctx.transforms._expand import DEFAULT_LENGTH, MAX_LENGTH, expand_tool

# ---------------------------------------------------------------------------- store


def test_store_key_is_a_stable_content_hash() -> None:
    # Checked against `printf 'hello world' | b2sum -l 64` (BLAKE2b, 8-byte digest).
    assert store_key("hello world") == "tc_878633aa32a3b150"
    assert store_key("") == "tc_e4a6a0577479b2b4"
    assert store_key("héllo 🌍") == "tc_9360f97291210b00"
    assert store_key("a") != store_key("b")


def test_store_key_accepts_lone_surrogates() -> None:
    assert store_key("\ud800").startswith("tc_")


def test_memory_store_put_get() -> None:
    store = MemoryStore()
    assert store.get("tc_nothing") is None
    store.put("k", "v")
    assert store.get("k") == "v"
    assert "k" in store and len(store) == 1
    store.put("k", "v")
    assert len(store) == 1
    assert isinstance(store, Store)


def test_memory_store_evicts_oldest_first() -> None:
    store = MemoryStore(max_items=2)
    store.put("a", "1")
    store.put("b", "2")
    store.put("a", "1")  # putting again makes "a" the newest
    store.put("c", "3")
    assert store.get("b") is None
    assert store.get("a") == "1" and store.get("c") == "3"
    assert len(store) == 2


def test_memory_store_unbounded() -> None:
    store = MemoryStore(max_items=None)
    for i in range(1000):
        store.put(str(i), "x")
    assert len(store) == 1000


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_memory_store_rejects_bad_limits(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_items"):
        MemoryStore(max_items=bad)


def test_memory_store_rejects_non_text() -> None:
    with pytest.raises(TypeError, match="str"):
        MemoryStore().put("k", b"bytes")  # type: ignore[arg-type]


def test_memory_store_is_thread_safe() -> None:
    store = MemoryStore(max_items=500)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(400):
                text = f"{t}-{i}"
                key = store_text(store, text)
                got = store.get(key)
                assert got is None or got == text
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(store) == 500


def test_store_text_is_idempotent() -> None:
    store = MemoryStore()
    key = store_text(store, "removed text")
    assert key == store_text(store, "removed text") == store_key("removed text")
    assert store.get(key) == "removed text"
    assert len(store) == 1


def test_store_text_works_with_any_store() -> None:
    class DictStore:
        def __init__(self) -> None:
            self.data: dict[str, str] = {}

        def get(self, key: str) -> str | None:
            return self.data.get(key)

        def put(self, key: str, value: str) -> None:
            self.data[key] = value

    store = DictStore()
    assert isinstance(store, Store)
    key = store_text(store, "x")
    _, handler = expand_tool(store)
    assert handler({"id": key}) == "x"


def test_store_key_of_bytes_is_a_type_error() -> None:
    # Not "AttributeError: 'bytes' object has no attribute 'encode'".
    with pytest.raises(TypeError, match=r"store_key\(\) hashes text \(str\), got bytes"):
        store_key(b"abc")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- expand tool

TEXT = "".join(f"line {i:05d}\n" for i in range(20_000))  # 220,000 characters


@pytest.fixture
def stored() -> tuple[MemoryStore, str]:
    store = MemoryStore()
    return store, store_text(store, TEXT)


def test_tool_definition() -> None:
    tool, _ = expand_tool(MemoryStore())
    assert tool["name"] == "tidyctx_expand"
    assert 'id="tc_' in tool["description"]
    schema = tool["input_schema"]
    assert schema["required"] == ["id"]
    assert schema["properties"]["id"]["type"] == "string"
    assert schema["properties"]["offset"] == {
        "type": "integer",
        "minimum": 0,
        "default": 0,
        "description": schema["properties"]["offset"]["description"],
    }
    assert schema["properties"]["length"]["minimum"] == 1
    assert schema["properties"]["length"]["maximum"] == MAX_LENGTH == 100_000
    assert schema["properties"]["length"]["default"] == DEFAULT_LENGTH == 8_000
    # Deterministic: the same definition every time (it sits in the cached prefix).
    assert expand_tool(MemoryStore())[0] == tool
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 10,
        "tools": [tool],
        "messages": [{"role": "user", "content": "hi"}],
    }
    tc.validate(request)


def test_tool_name() -> None:
    tool, handler = expand_tool(MemoryStore(), name="read_back")
    assert tool["name"] == "read_back"
    assert "read_back" in handler({"id": 5})
    for bad in ["", "has space", "x" * 65, "dots.no"]:
        with pytest.raises(ValueError, match="tool name"):
            expand_tool(MemoryStore(), name=bad)


def test_expand_tool_needs_a_store() -> None:
    with pytest.raises(TypeError, match="Store"):
        expand_tool({"a": "b"})  # type: ignore[arg-type]


def test_whole_text_comes_back_without_header() -> None:
    store = MemoryStore()
    key = store_text(store, "short text")
    _, handler = expand_tool(store)
    assert handler({"id": key}) == "short text"
    assert handler({"id": key, "offset": 0, "length": 10}) == "short text"


def test_default_slice(stored: tuple[MemoryStore, str]) -> None:
    store, key = stored
    _, handler = expand_tool(store)
    out = handler({"id": key})
    header, body = out.split("\n", 1)
    assert header == f"[tidyctx: {key} characters 0–8,000 of 220,000; next offset 8000]"
    assert body == TEXT[:8000]


def test_slice_with_offset_and_length(stored: tuple[MemoryStore, str]) -> None:
    store, key = stored
    _, handler = expand_tool(store)
    out = handler({"id": key, "offset": 11, "length": 22})
    assert out == f"[tidyctx: {key} characters 11–33 of 220,000; next offset 33]\n" + TEXT[11:33]


def test_last_piece_has_no_next_offset(stored: tuple[MemoryStore, str]) -> None:
    store, key = stored
    _, handler = expand_tool(store)
    out = handler({"id": key, "offset": 219_990, "length": 100})
    assert out == f"[tidyctx: {key} characters 219,990–220,000 of 220,000]\n" + TEXT[-10:]


def test_length_is_capped(stored: tuple[MemoryStore, str]) -> None:
    store, key = stored
    _, handler = expand_tool(store)
    out = handler({"id": key, "length": 10**9})
    header, body = out.split("\n", 1)
    assert header.startswith(f"[tidyctx: {key} characters 0–100,000 of 220,000")
    assert body == TEXT[:MAX_LENGTH]


def test_reading_piece_by_piece_gives_the_whole_text(stored: tuple[MemoryStore, str]) -> None:
    store, key = stored
    _, handler = expand_tool(store)
    pieces, offset = [], 0
    while offset < len(TEXT):
        out = handler({"id": key, "offset": offset, "length": 30_000})
        pieces.append(out.split("\n", 1)[1])
        offset += 30_000
    assert "".join(pieces) == TEXT


def test_offset_past_the_end(stored: tuple[MemoryStore, str]) -> None:
    store, key = stored
    _, handler = expand_tool(store)
    out = handler({"id": key, "offset": 220_000})
    assert out.startswith("[tidyctx: tidyctx_expand error:")
    assert "past the end" in out and "220,000 characters" in out


def test_unknown_and_evicted_ids() -> None:
    store = MemoryStore(max_items=1)
    old = store_text(store, "first")
    store_text(store, "second")
    _, handler = expand_tool(store)
    out = handler({"id": old})
    assert out.startswith("[tidyctx: tidyctx_expand error:")
    assert old in out and "no longer available" in out
    out = handler({"id": "nonsense"})
    assert "no text under id 'nonsense'" in out and 'ids look like "tc_"' in out


def test_quoted_ids_are_accepted() -> None:
    store = MemoryStore()
    key = store_text(store, "x")
    _, handler = expand_tool(store)
    assert handler({"id": f' "{key}" '}) == "x"


@pytest.mark.parametrize(
    ("arguments", "needle"),
    [
        ({}, '"id" must be'),
        ({"id": None}, '"id" must be'),
        ({"id": 12}, '"id" must be'),
        ({"id": "KEY", "offset": -1}, '"offset" must be an integer >= 0'),
        ({"id": "KEY", "offset": "abc"}, '"offset" must be an integer >= 0'),
        ({"id": "KEY", "offset": True}, '"offset" must be an integer >= 0'),
        ({"id": "KEY", "offset": 1.5}, '"offset" must be an integer >= 0'),
        ({"id": "KEY", "length": 0}, '"length" must be an integer from 1 to 100,000'),
        ({"id": "KEY", "length": [5]}, '"length" must be an integer from 1 to 100,000'),
    ],
)
def test_bad_arguments_answer_in_text(
    stored: tuple[MemoryStore, str], arguments: dict[str, Any], needle: str
) -> None:
    store, key = stored
    _, handler = expand_tool(store)
    arguments = {k: key if v == "KEY" else v for k, v in arguments.items()}
    out = handler(arguments)
    assert out.startswith("[tidyctx: tidyctx_expand error:")
    assert needle in out


class _FailingStore:
    """A store whose backend is down: every read raises."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def get(self, key: str) -> str | None:
        raise self.error

    def put(self, key: str, value: str) -> None:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        sqlite3.OperationalError("database is locked"),
        OSError(5, "Input/output error"),
        ConnectionError("Redis went away"),
    ],
    ids=["locked", "io", "connection"],
)
def test_a_failing_store_answers_in_text(error: Exception) -> None:
    _, handler = expand_tool(_FailingStore(error))
    answer = handler({"id": "tc_0123456789abcdef"})
    assert answer.startswith("[tidyctx: tidyctx_expand error: the store could not be read")
    assert type(error).__name__ in answer


def test_a_closed_store_answers_in_text(tmp_path: Path) -> None:
    store = tc.SQLiteStore(tmp_path / "s.db")
    key = store_text(store, "kept text")
    _, handler = expand_tool(store)
    store.close()
    assert "could not be read" in handler({"id": key})


def test_non_mapping_input_answers_in_text() -> None:
    _, handler = expand_tool(MemoryStore())
    assert "expected an object" in handler(["tc_x"])  # type: ignore[arg-type]


def test_lenient_integers(stored: tuple[MemoryStore, str]) -> None:
    store, key = stored
    _, handler = expand_tool(store)
    expected = handler({"id": key, "offset": 5, "length": 7})
    assert handler({"id": key, "offset": "5", "length": 7.0}) == expected
    assert handler({"id": key, "offset": None, "length": None}) == handler({"id": key})


def test_empty_text() -> None:
    store = MemoryStore()
    key = store_text(store, "")
    _, handler = expand_tool(store)
    assert handler({"id": key}) == f"[tidyctx: {key} is empty (0 characters)]"


def test_slices_count_characters_not_bytes() -> None:
    store = MemoryStore()
    text = "😀é" * 10
    key = store_text(store, text)
    _, handler = expand_tool(store)
    out = handler({"id": key, "offset": 1, "length": 3})
    assert out.split("\n", 1)[1] == text[1:4] == "é😀é"


@settings(max_examples=60)
@given(
    text=st.text(min_size=1, max_size=300), offset=st.integers(0, 320), length=st.integers(1, 400)
)
def test_slices_are_exact(text: str, offset: int, length: int) -> None:
    store = MemoryStore()
    key = store_text(store, text)
    _, handler = expand_tool(store)
    out = handler({"id": key, "offset": offset, "length": length})
    if offset >= len(text) and not (offset == 0 and length >= len(text)):
        assert "past the end" in out
    elif offset == 0 and length >= len(text):
        assert out == text
    else:
        header, body = out.split("\n", 1)
        end = min(len(text), offset + length)
        assert header.startswith(f"[tidyctx: {key} characters {offset:,}–{end:,} of ")
        assert body == text[offset:end]


def test_agent_loop_through_the_sdk(local_server: LocalServer) -> None:
    """The definition goes to the API with the real SDK, the model calls it, the handler's
    answer goes back as the tool_result, and the server accepts the whole exchange."""
    store = MemoryStore()
    key = store_text(store, TEXT)
    tool, handler = expand_tool(store)
    local_server.script(
        [
            {
                "type": "tool_use",
                "name": "tidyctx_expand",
                "input": {"id": key, "offset": 100, "length": 50},
            }
        ],
        "Found it.",
    )
    marker = f'[tidyctx: 220,000 characters removed; id="{key}"; call tidyctx_expand]'
    request: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 200,
        "tools": [tool],
        "messages": [{"role": "user", "content": f"Log:\n{marker}\nWhat is on line 9?"}],
    }
    with anthropic.Anthropic(
        base_url=local_server.base_url, api_key="test", max_retries=0
    ) as client:
        reply = client.messages.create(**request)
        call = next(b for b in reply.content if b.type == "tool_use")
        answer = handler(call.input)
        request["messages"] += [
            {"role": "assistant", "content": [b.model_dump() for b in reply.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": answer}],
            },
        ]
        final = client.messages.create(**request)
    assert final.content[0].type == "text"
    sent = local_server.requests[-1].body["messages"][-1]["content"][0]["content"]
    assert (
        sent
        == f"[tidyctx: {key} characters 100–150 of 220,000; next offset 150]\n" + (TEXT[100:150])
    )
