"""open_store(): one way to name a store on a command line (``tidyctx mcp --store URL``), so that
processes started apart (an agent's proxy, the MCP server that reads the cuts back) open the
same one; with nothing given, a SQLite file in the user's cache directory."""

from __future__ import annotations

import os
import stat
import sys
import uuid
from pathlib import Path

import pytest

from tidyctx.store import (
    STORE_ENV,
    MemoryStore,
    RedisStore,
    SQLiteStore,
    default_store_path,
    open_store,
    store_text,
)


@pytest.fixture(autouse=True)
def _no_store_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STORE_ENV, raising=False)


def _roundtrip(url: str | os.PathLike[str] | None) -> tuple[str, object]:
    with open_store(url) as store:
        key = store_text(store, "kept")
        return key, store


def test_a_plain_path_or_pathlike_opens_a_sqlite_file(tmp_path: Path) -> None:
    for target in (str(tmp_path / "a.db"), tmp_path / "b.db"):
        key, store = _roundtrip(target)
        assert isinstance(store, SQLiteStore) and store.path == str(target)
        with SQLiteStore(target) as again:
            assert again.get(key) == "kept"


def test_a_path_with_a_tilde_is_under_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    _, store = _roundtrip("~/x.db")
    assert isinstance(store, SQLiteStore) and store.path == str(tmp_path / "x.db")


def test_sqlite_urls_are_written_as_sqlalchemy_writes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _, relative = _roundtrip("sqlite:///rel.db")
    assert isinstance(relative, SQLiteStore) and relative.path == "rel.db"
    assert (tmp_path / "rel.db").is_file()
    _, absolute = _roundtrip(f"sqlite:///{tmp_path}/abs%20file.db")  # four slashes in all
    assert isinstance(absolute, SQLiteStore) and absolute.path == f"{tmp_path}/abs file.db"


def test_sqlite_url_options_reach_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/o.db?table=cuts&max_items=2&timeout=5"
    with open_store(url) as store:
        assert isinstance(store, SQLiteStore)
        assert (store.table, store.max_items, store.timeout) == ("cuts", 2, 5.0)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite://", "a SQLite URL is sqlite:/// and a file path"),
        ("sqlite://host/x.db", "a SQLite URL is sqlite:/// and a file path"),
        ("sqlite:///x.db?colour=red", "unknown option 'colour'; this store takes: table"),
        ("sqlite:///x.db?max_items=many", "option max_items='many' must be int"),
        ("memory://somewhere", "a memory store is memory:// with no path"),
        ("postgres://db/x", "unknown kind of store 'postgres'; give a file path"),
    ],
)
def test_a_url_it_cannot_open_is_refused_naming_the_problem(url: str, says: str) -> None:
    with pytest.raises(ValueError, match="open_store") as caught:
        open_store(url)
    assert says in str(caught.value)


def test_a_missing_directory_is_the_sqlite_store_s_own_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_store(str(tmp_path / "missing" / "x.db"))


def test_memory_url_opens_a_store_of_this_process() -> None:
    store = open_store("memory://?max_items=2")
    assert isinstance(store, MemoryStore) and store.max_items == 2
    assert isinstance(open_store("memory://"), MemoryStore)


def test_redis_urls_open_a_redis_store_with_its_options(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    with open_store(f"{redis_url}?prefix={prefix}&ttl_seconds=60&socket_timeout=30") as store:
        assert isinstance(store, RedisStore)
        assert (store.prefix, store.ttl_seconds) == (prefix, 60)
        key = store_text(store, "kept in redis")
    with RedisStore(redis_url, prefix=prefix) as again:
        assert again.get(key) == "kept in redis"


def test_a_redis_store_option_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(ValueError, match="option ttl_seconds='soon' must be int"):
        open_store("redis://127.0.0.1:1/0?ttl_seconds=soon")


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="the XDG cache directory")
def test_the_default_is_a_private_sqlite_file_in_the_xdg_cache_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_store_path() == tmp_path / "cache" / "tidyctx" / "store.db"
    for nothing in (None, "", "  "):
        key, store = _roundtrip(nothing)
        assert isinstance(store, SQLiteStore) and store.path == str(default_store_path())
    folder = default_store_path().parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(default_store_path().stat().st_mode) == 0o600
    with SQLiteStore(default_store_path()) as again:
        assert again.get(key) == "kept"


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="the XDG cache directory")
def test_a_relative_xdg_cache_home_is_ignored_as_the_spec_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_store_path() == tmp_path / ".cache" / "tidyctx" / "store.db"


def test_tidyctx_store_in_the_environment_names_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STORE_ENV, f"sqlite:///{tmp_path}/env.db")
    _, store = _roundtrip(None)
    assert isinstance(store, SQLiteStore) and store.path == f"{tmp_path}/env.db"
    # An explicit URL wins over the environment.
    _, explicit = _roundtrip(tmp_path / "flag.db")
    assert isinstance(explicit, SQLiteStore) and explicit.path == str(tmp_path / "flag.db")
