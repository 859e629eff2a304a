"""The disk and Redis stores (SQLiteStore, RedisStore) against the Store contract MemoryStore keeps.

The SQLite tests use real processes on one file; the Redis tests use the real ``redis`` client
against a real ``redis-server`` started by the ``redis_url`` fixture (skipped where absent).
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from tidyctx.store import MemoryStore, RedisStore, SQLiteStore, Store, store_key, store_text

KINDS = ["memory", "sqlite", "redis"]


@pytest.fixture
def redis_store(redis_url: str) -> Iterator[RedisStore]:
    # A prefix of its own, so tests sharing the session's server never see each other's keys.
    with RedisStore(redis_url, prefix=f"test:{uuid.uuid4().hex}:") as store:
        yield store


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(tmp_path / "store.db") as store:
        yield store


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        return MemoryStore()
    made: Store = request.getfixturevalue(f"{request.param}_store")
    return made


# ---------------------------------------------------------------------------- the contract


def test_round_trip(store: Store) -> None:
    assert isinstance(store, Store)
    store.put("tc_0000000000000001", "removed text")
    assert store.get("tc_0000000000000001") == "removed text"


def test_missing_key_is_none(store: Store) -> None:
    assert store.get(store_key("never stored")) is None
    store.put("present", "x")
    assert store.get("presen") is None
    assert store.get("present ") is None


def test_put_again_replaces(store: Store) -> None:
    store.put("k", "first")
    store.put("k", "second")
    assert store.get("k") == "second"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "héllo 🌍",
        "\ud800",  # a lone surrogate: valid in a str and in JSON, not in UTF-8
        "a\udfffb\ud83c",
        "\ud83c\udf0d",  # a surrogate pair kept as two code points
        "nul \x00 inside",
        "crlf\r\nand\ttab",
        "日本語のテキスト",
    ],
)
def test_any_text_round_trips_through_store_text(store: Store, text: str) -> None:
    key = store_text(store, text)
    assert key == store_key(text)
    got = store.get(key)
    assert got == text
    assert type(got) is str


def test_large_value(store: Store) -> None:
    text = "".join(f"line {i:07d} ✓\n" for i in range(5_000_000 // 15))  # ~5 MB
    assert len(text.encode()) > 5_000_000
    key = store_text(store, text)
    assert store.get(key) == text


@pytest.mark.parametrize(("key", "value"), [("k", b"bytes"), (1, "v"), ("k", None), ("k", 5)])
def test_put_refuses_non_text(store: Store, key: Any, value: Any) -> None:
    with pytest.raises(TypeError, match="str"):
        store.put(key, value)
    if isinstance(key, str):
        assert store.get(key) is None


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=60)
@given(texts=st.lists(st.text(st.characters(exclude_categories=())), min_size=1, max_size=4))
def test_store_text_then_get_round_trips(
    request: pytest.FixtureRequest, kind: str, texts: list[str]
) -> None:
    s: Store = MemoryStore() if kind == "memory" else request.getfixturevalue(f"{kind}_store")
    keys = [store_text(s, text) for text in texts]
    for key, text in zip(keys, texts, strict=True):
        assert s.get(key) == text


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=30)
@given(
    text=st.text(
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),
        min_size=1,
        max_size=8,
    )
    .flatmap(lambda s: st.tuples(st.text(max_size=5), st.just(s), st.text(max_size=5)))
    .map("".join)
)
def test_surrogates_round_trip(request: pytest.FixtureRequest, kind: str, text: str) -> None:
    # st.text() rarely draws surrogates on its own; this draws them on purpose.
    s: Store = MemoryStore() if kind == "memory" else request.getfixturevalue(f"{kind}_store")
    assert s.get(store_text(s, text)) == text


def test_memory_store_refuses_a_key_that_is_not_a_str_like_the_other_stores(
    tmp_path: Path,
) -> None:
    # MemoryStore.get(1) raises as SQLiteStore.get(1) does, rather than answering None.
    with SQLiteStore(tmp_path / "s.db") as disk:
        for store in (MemoryStore(), disk):
            with pytest.raises(TypeError, match=r"\.get takes a str key, got int"):
                store.get(1)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- SQLiteStore


def test_sqlite_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with SQLiteStore(path) as first:
        key = store_text(first, "kept across restarts")
    with SQLiteStore(str(path)) as second:
        assert second.get(key) == "kept across restarts"
        assert len(second) == 1 and key in second


def test_sqlite_values_are_plain_utf8(tmp_path: Path) -> None:
    # Other tools can read the file: text is stored as its UTF-8 bytes in a BLOB column.
    path = tmp_path / "store.db"
    with SQLiteStore(path) as store:
        store.put("k", "héllo")
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT value FROM tidyctx_store").fetchall() == [("héllo".encode(),)]
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sqlite_tables_are_separate(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with SQLiteStore(path, table="a") as a, SQLiteStore(path, table="order") as b:
        a.put("k", "in a")
        assert b.get("k") is None
        b.put("k", "in b")
        assert a.get("k") == "in a" and b.get("k") == "in b"
        assert len(a) == len(b) == 1


def test_sqlite_evicts_least_recently_put(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "store.db", max_items=2) as store:
        store.put("a", "1")
        store.put("b", "2")
        store.put("a", "1")  # putting again makes "a" the newest
        store.put("c", "3")
        assert store.get("b") is None
        assert store.get("a") == "1" and store.get("c") == "3"
        assert len(store) == 2


def test_sqlite_count_matches_rows_after_many_puts(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with SQLiteStore(path, max_items=50) as store:
        for i in range(300):
            store.put(f"k{i}", f"v{i}")
            store.put("hot", "put again and again")  # an update: must not count as a new row
        assert len(store) == 50
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*) FROM tidyctx_store").fetchone() == (50,)
        keys = {row[0] for row in raw.execute("SELECT key FROM tidyctx_store")}
    # The survivors are the 50 most recently put: "hot" and k251..k299.
    assert keys == {"hot"} | {f"k{i}" for i in range(251, 300)}


def test_sqlite_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        SQLiteStore(missing / "store.db")
    assert str(missing) in str(info.value)
    assert not missing.exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"table": "x; DROP TABLE y"}, "table"),
        ({"table": ""}, "table"),
        ({"table": "1abc"}, "table"),
        ({"max_items": 0}, "max_items"),
        ({"max_items": True}, "max_items"),
        ({"max_items": 2.5}, "max_items"),
        ({"timeout": -1}, "timeout"),
    ],
)
def test_sqlite_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SQLiteStore(tmp_path / "store.db", **kwargs)


def test_sqlite_refuses_a_foreign_table(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    with pytest.raises(ValueError, match=r"users.*not a store table"):
        SQLiteStore(path, table="users")


def test_sqlite_refuses_an_empty_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # sqlite3 opens "" as a private temporary database: a second store would find nothing.
    monkeypatch.chdir(tmp_path)
    for path in ("", "  "):
        with pytest.raises(ValueError, match="empty path"):
            SQLiteStore(path)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file permissions")
def test_sqlite_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with SQLiteStore(path) as store:
        store.put("k", "a tool result with a password in it")
        files = sorted(tmp_path.iterdir())
        assert [f.name for f in files] == ["store.db", "store.db-shm", "store.db-wal"]
        for f in files:
            assert f.stat().st_mode & 0o777 == 0o600, f.name


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file permissions")
def test_sqlite_keeps_the_permissions_of_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    SQLiteStore(path).close()
    path.chmod(0o640)  # its owner chose to share it with a group
    with SQLiteStore(path) as store:
        store.put("k", "v")
    assert path.stat().st_mode & 0o777 == 0o640


def test_sqlite_closed_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    store.put("k", "v")
    store.close()
    store.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        store.get("k")
    with pytest.raises(ValueError, match="closed"):
        store.put("k", "v")


def test_sqlite_get_refuses_non_text_key(sqlite_store: SQLiteStore) -> None:
    with pytest.raises(TypeError, match="str key"):
        sqlite_store.get(b"k")  # type: ignore[arg-type]


def test_sqlite_lock_timeout_is_raised_with_the_key(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SQLiteStore(path, timeout=0.1)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock and does not let go
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked") as info:
            store.put("tc_locked", "v")
        assert any("tc_locked" in note for note in info.value.__notes__)
        assert store.get("tc_locked") is None  # readers are not blocked in WAL mode
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.put("tc_locked", "v")
    assert store.get("tc_locked") == "v"
    store.close()


def test_sqlite_threads_share_one_store(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    with SQLiteStore(tmp_path / "store.db", max_items=300) as store:

        def work(t: int) -> None:
            try:
                for i in range(200):
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
        assert len(store) == 300


WRITER = """
import sys
from tidyctx.store import SQLiteStore
path, tag, n, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
store = SQLiteStore(path, max_items=None if limit == "none" else int(limit))
print("ready", flush=True)
sys.stdin.readline()  # start together with the other writers
for i in range(n):
    key = f"{tag}-{i}"
    store.put(key, f"value of {key}")
    if i % 5 == 0:
        got = store.get(key)
        assert limit != "none" or got == f"value of {key}", (key, got)
store.close()
print("done", flush=True)
"""


def run_writers(path: Path, tags: list[str], n: int, limit: int | None) -> None:
    """Run one writer process per tag on ``path``, all released at once; fail on any error."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), tag, str(n), str(limit).lower()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in tags
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n", proc.stderr.read() if proc.stderr else ""
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            assert out == "done\n" and err == ""
    finally:
        for proc in procs:
            if proc.poll() is None:  # pragma: no cover - only on failure
                proc.kill()
                proc.wait()


def test_sqlite_another_process_writes_this_one_reads(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with SQLiteStore(path) as store:  # opened before the other process writes
        assert store.get("child-0") is None
        run_writers(path, ["child"], 100, None)
        assert all(store.get(f"child-{i}") == f"value of child-{i}" for i in range(100))
        assert len(store) == 100


def test_sqlite_concurrent_writer_processes(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    SQLiteStore(path).close()
    n = 3000
    run_writers(path, ["p1", "p2"], n, None)  # each would fail on "database is locked"
    with SQLiteStore(path) as store:
        assert len(store) == 2 * n
        for tag in ["p1", "p2"]:
            assert all(store.get(f"{tag}-{i}") == f"value of {tag}-{i}" for i in range(n))


def test_sqlite_concurrent_bounded_writers_keep_the_count(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    run_writers(path, ["p1", "p2", "p3"], 1500, 400)  # fresh file: the schema is created in a race
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*) FROM tidyctx_store").fetchone() == (400,)
        assert raw.execute("SELECT n FROM tidyctx_store_count").fetchone() == (400,)
        rows = raw.execute("SELECT key, value FROM tidyctx_store").fetchall()
    assert all(value == f"value of {key}".encode() for key, value in rows)
    # Each writer's last put is newer than its first 1,100 others, so survives unless the
    # other writers put 400 keys after it; at least the writer that finished last kept it.
    keys = {key for key, _ in rows}
    assert any(f"{tag}-1499" in keys for tag in ["p1", "p2", "p3"])


def _child_uses_inherited_store(store: SQLiteStore, key: str, queue: Any) -> None:
    try:
        got = store.get(key)
        store.put("from-child", "written after fork")
        store.close()
        queue.put(got)
    except BaseException as err:  # pragma: no cover - reported to the parent
        queue.put(repr(err))


def test_sqlite_store_survives_fork(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    with SQLiteStore(tmp_path / "store.db") as store:
        key = store_text(store, "written before fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_child_uses_inherited_store, args=(store, key, queue))
        child.start()
        got = queue.get(timeout=30)
        child.join(timeout=30)
        assert child.exitcode == 0
        assert got == "written before fork"
        assert store.get("from-child") == "written after fork"
        store.put("parent", "still works")  # the parent's connection was left alone
        assert store.get("parent") == "still works"


def test_sqlite_store_on_a_directory_says_so(tmp_path: Path) -> None:
    # Not sqlite3's OperationalError "unable to open database file".
    with pytest.raises(IsADirectoryError, match=r"is a directory; .*tidyctx\.db"):
        SQLiteStore(tmp_path)


def test_sqlite_store_opens_a_new_file_while_another_process_writes_it(tmp_path: Path) -> None:
    # Several agent processes opening a fresh store file at once: switching it to WAL needs an
    # exclusive lock, and SQLite answers "database is locked" at once, without its busy
    # timeout, while another connection holds the write lock. The store must wait instead.
    path = tmp_path / "summaries.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE other (a)")
    other.execute("BEGIN IMMEDIATE")
    opening, released = threading.Event(), threading.Event()

    def commit_soon() -> None:
        opening.wait(60)
        time.sleep(0.3)  # the store is waiting for the lock by now (on a busy machine, maybe not)
        released.set()  # before COMMIT: the store cannot write until after this
        other.execute("COMMIT")

    release = threading.Thread(target=commit_soon)
    release.start()
    try:
        opening.set()
        with SQLiteStore(path, timeout=10) as store:
            store.put("tc_0123456789abcdef", "a summary")
            assert released.is_set()  # it waited for the other writer
            assert store.get("tc_0123456789abcdef") == "a summary"
    finally:
        opening.set()
        release.join()
        other.close()


# ---------------------------------------------------------------------------- RedisStore


def test_redis_two_clients_share_entries(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    client = redis.Redis.from_url(redis_url)
    try:
        with RedisStore(redis_url, prefix=prefix) as writer:
            reader = RedisStore(client, prefix=prefix)
            key = store_text(writer, "shared between agents ✓")
            assert reader.get(key) == "shared between agents ✓"
            assert reader.get(store_key("nobody put this")) is None
            # Stored under prefix + key, as UTF-8 bytes.
            assert client.get(prefix + key) == "shared between agents ✓".encode()
            assert client.ttl(prefix + key) == -1  # no expiry without ttl_seconds
            reader.close()
        assert client.ping()  # the client passed in stays open after close()
    finally:
        client.close()


def test_redis_another_process_writes_this_one_reads(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    script = (
        "import sys\n"
        "from tidyctx.store import RedisStore, store_text\n"
        "with RedisStore(sys.argv[1], prefix=sys.argv[2]) as store:\n"
        "    print(store_text(store, 'from another process \\udc80'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, redis_url, prefix],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key = out.stdout.strip()
    with RedisStore(redis_url, prefix=prefix) as store:
        assert store.get(key) == "from another process \udc80"


def test_redis_prefixes_are_separate(redis_url: str) -> None:
    base = f"test:{uuid.uuid4().hex}"
    with (
        RedisStore(redis_url, prefix=f"{base}:a:") as a,
        RedisStore(redis_url, prefix=f"{base}:b:") as b,
    ):
        a.put("k", "in a")
        assert b.get("k") is None


def test_redis_ttl_expires_entries(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    client = redis.Redis.from_url(redis_url)
    try:
        with RedisStore(client, prefix=prefix, ttl_seconds=1) as store:
            store.put("k", "short-lived")
            assert 0 < client.pttl(prefix + "k") <= 1000
            assert store.get("k") == "short-lived"
            time.sleep(1.1)
            assert store.get("k") is None
    finally:
        client.close()


def test_redis_decode_responses_client(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        store = RedisStore(client, prefix=f"test:{uuid.uuid4().hex}:")
        key = store_text(store, "héllo 🌍")
        assert store.get(key) == "héllo 🌍"
    finally:
        client.close()


def test_redis_connection_errors_are_raised(tmp_path: Path) -> None:
    import socket

    # A port bound but not listening refuses connections; held for the whole test, so no other
    # process can take it and listen.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with RedisStore(f"redis://127.0.0.1:{port}/0") as store:
            with pytest.raises(redis.ConnectionError) as info:
                store.get("tc_x")
            assert any("tidyctx:tc_x" in note for note in info.value.__notes__)
            with pytest.raises(redis.ConnectionError):
                store.put("tc_x", "v")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"ttl_seconds": 0}, ValueError, "ttl_seconds"),
        ({"ttl_seconds": 1.5}, ValueError, "ttl_seconds"),
        ({"ttl_seconds": True}, ValueError, "ttl_seconds"),
        ({"prefix": b"x:"}, TypeError, "prefix"),
    ],
)
def test_redis_rejects_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        RedisStore("redis://127.0.0.1:1/0", **kwargs)


def test_redis_rejects_non_clients() -> None:
    with pytest.raises(TypeError, match="synchronous"):
        RedisStore(redis.asyncio.Redis())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"redis\.Redis client or a redis:// URL"):
        RedisStore(42)  # type: ignore[arg-type]


def test_redis_get_refuses_non_text_key(redis_store: RedisStore) -> None:
    with pytest.raises(TypeError, match="str key"):
        redis_store.get(7)  # type: ignore[arg-type]


def test_redis_store_without_the_redis_package(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a user without the extra sees: a None entry in sys.modules makes `import` fail.
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ImportError, match=r"pip install tidyctx\[redis\]"):
        RedisStore("redis://127.0.0.1:6379/0")


def test_redis_fixture_server_is_real(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        info = client.info("server")
        assert str(info["redis_version"]).count(".") == 2
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
    finally:
        client.close()


def test_redis_url_store_connects_lazily() -> None:
    # Nothing listens on port 1: making the store must not connect, only using it does.
    store = RedisStore("redis://127.0.0.1:1/0")
    assert repr(store) == "RedisStore(prefix='tidyctx:', ttl_seconds=None)"
    store.close()
