"""Where removed text goes: a small key-value :class:`Store`, keyed by content hash.

Projection, truncation and clearing take text out of a request; nothing is lost for good,
because the original goes into a store under :func:`store_key` of its text, and the marker
left in its place names that key. :func:`tidyctx.transforms._expand.expand_tool` gives the
agent a tool that reads it back.

The key depends on the text alone, so the same text gets the same key in every process and
putting it twice is harmless (:func:`store_text` is idempotent). A store only has to offer ``get``
and ``put``. Three come with tidyctx:

- :class:`MemoryStore`, the default: one process, gone when it exits.
- :class:`SQLiteStore`: a file on disk, for processes that restart; several processes (and
  threads) may share one file.
- :class:`RedisStore`: a Redis server shared by many agent processes (``pip install
  tidyctx[redis]``).

:func:`open_store` opens one from a URL or a path, as the command line takes it (``tidyctx mcp
--store URL``); without one, the SQLite file :func:`default_store_path` in the user's cache
directory, so that separate processes of one user (an agent, the ``tidyctx mcp`` server that
reads the cuts back) meet in one store without being told where.

All three store any Python ``str`` exactly, lone surrogates included (JSON can carry them), and
refuse anything else with ``TypeError``. Stores do not swallow their backend's errors: a disk or
Redis store raises :class:`sqlite3.Error` or :class:`redis.RedisError` from ``get`` and
``put``, with a note naming the store and key; a transform that uses a store decides what a
failing store means for its request.

>>> store = MemoryStore()
>>> key = store_text(store, "a long tool result")
>>> key
'tc_...'
>>> store.get(key)
'a long tool result'
>>> store_text(store, "a long tool result") == key
True
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import sqlite3
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    import redis

__all__ = [
    "STORE_ENV",
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "Store",
    "StoreWarning",
    "default_store_path",
    "keep_text",
    "open_store",
    "refresh",
    "refresh_all",
    "store_key",
    "store_text",
]

KEY_PREFIX = "tc_"


@runtime_checkable
class Store(Protocol):
    """Key-value storage for removed text. Keys come from :func:`store_key`.

    ``get`` returns None for a key it does not hold (never stored, or evicted); ``put`` stores
    ``value`` under ``key``, replacing what was there (always the same text, since keys are
    content hashes).
    """

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, value: str) -> None: ...


_SERIALS = itertools.count(1)  # tells two MemoryStores' generations apart


class MemoryStore:
    """A thread-safe in-memory :class:`Store` holding at most ``max_items`` texts.

    When full, the oldest entry goes first; putting a key again makes it the newest. An
    evicted key reads back as None, so the expand tool answers that the text is no longer
    available. ``max_items=None`` keeps everything (memory grows with every removed text).
    """

    def __init__(self, max_items: int | None = 100_000) -> None:
        if max_items is not None and (
            isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1
        ):
            raise ValueError(
                f"MemoryStore(max_items=...) must be a positive int or None, got {max_items!r}"
            )
        self.max_items = max_items
        self._items: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._serial = next(_SERIALS)
        self._evicted = 0

    def get(self, key: str) -> str | None:
        # Refused like SQLiteStore and RedisStore do, so that code tested on a MemoryStore
        # does not fail only once it runs on a disk or Redis store.
        _check_key("MemoryStore.get", key)
        with self._lock:
            return self._items.get(key)

    def put(self, key: str, value: str) -> None:
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(
                f"MemoryStore.put takes str key and value, got {type(key).__name__} and "
                f"{type(value).__name__}"
            )
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            if self.max_items is not None:
                while len(self._items) > self.max_items:
                    self._items.popitem(last=False)
                    self._evicted += 1

    def generation(self) -> tuple[int, int]:
        """A value that changes whenever the store evicts an entry (the only way a
        MemoryStore loses one), and that no other MemoryStore of this process shares. Who
        saw that the store held some keys and finds the same generation later knows it holds
        them still, without asking about each (``trim`` renews its markers' entries that way,
        see :func:`tidyctx.transforms._recover.generation`).

        >>> store = MemoryStore(max_items=1)
        >>> store.put("tc_a", "a"); seen = store.generation()
        >>> store.put("tc_a", "b"); store.generation() == seen
        True
        >>> store.put("tc_b", "c"); store.generation() == seen
        False
        """
        with self._lock:
            return (self._serial, self._evicted)

    def room(self) -> int | None:
        """How many new keys a put can add before one evicts the oldest (None: no bound)."""
        if self.max_items is None:
            return None
        with self._lock:
            return self.max_items - len(self._items)

    def touch(self, key: str) -> bool:
        """Make ``key`` the newest entry, as putting it again would; False if it is not held.

        Never evicts: a touch adds nothing."""
        _check_key("MemoryStore.touch", key)
        with self._lock:
            if key not in self._items:
                return False
            self._items.move_to_end(key)
            return True

    def touch_many(self, keys: list[str]) -> list[bool]:
        """:meth:`touch` each of ``keys`` in order; whether each is held."""
        return [self.touch(key) for key in keys]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def __repr__(self) -> str:
        return f"MemoryStore({len(self)} items, max_items={self.max_items})"


def _check_text(where: str, key: object, value: object) -> None:
    if not isinstance(key, str) or not isinstance(value, str):
        raise TypeError(
            f"{where} takes str key and value, got {type(key).__name__} and {type(value).__name__}"
        )


def _check_key(where: str, key: object) -> None:
    if not isinstance(key, str):
        raise TypeError(f"{where} takes a str key, got {type(key).__name__}")


def _encode(value: str) -> bytes:
    # "surrogatepass" so that lone surrogates, which are valid in a str (and in JSON) but not in
    # UTF-8, round-trip exactly; every other text is stored as plain UTF-8.
    return value.encode("utf-8", "surrogatepass")


def _decode(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else raw.decode("utf-8", "surrogatepass")


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class _Closing:
    """``with store:`` closes the store at the end of the block."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SQLiteStore(_Closing):
    """A :class:`Store` in a SQLite file: survives restarts, shared by threads and processes.

    ``path`` is the database file, created if missing; its directory must already exist
    (``FileNotFoundError`` otherwise). Several processes may open the same file at once: the
    database runs in WAL mode (readers never wait for the writer), and a writer waits up to
    ``timeout`` seconds for another one before :class:`sqlite3.OperationalError` ("database
    is locked"). Within a process the store is thread-safe (one connection, used under a
    lock). After ``os.fork`` the child opens its own connection: SQLite connections must not
    be used across a fork. WAL needs a local file system; do not put the file on NFS.

    ``table`` names the table (an SQL identifier), so several stores can share a file.
    ``max_items`` bounds it like :class:`MemoryStore`: the least recently put entries go first;
    ``None`` (the default) keeps everything. Values are kept as UTF-8 bytes (``BLOB``).

    ``get`` and ``put`` raise :class:`sqlite3.Error` (disk full, locked past ``timeout``, a
    corrupt file) with a note naming the store and key; nothing is swallowed. Use it as a
    context manager or call :meth:`close`; a closed store raises ``ValueError``.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with SQLiteStore(os.path.join(tmp, "removed.db")) as store:
    ...         key = store_text(store, "a long tool result")
    ...         store.get(key)
    'a long tool result'
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table: str = "tidyctx_store",
        max_items: int | None = None,
        timeout: float = 30.0,
    ) -> None:
        if max_items is not None and (
            isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1
        ):
            raise ValueError(
                f"SQLiteStore(max_items=...) must be a positive int or None, got {max_items!r}"
            )
        if not isinstance(table, str) or not _IDENTIFIER.match(table):
            raise ValueError(
                f"SQLiteStore(table=...) must be a plain SQL identifier (letters, digits, _), "
                f"got {table!r}"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise ValueError(f"SQLiteStore(timeout=...) must be seconds >= 0, got {timeout!r}")
        self.path = os.fspath(path)
        if not isinstance(self.path, str):
            raise TypeError(f"SQLiteStore(path=...) must be a str or os.PathLike, got {path!r}")
        if not self.path.strip():
            # sqlite3 opens "" as a private temporary database, deleted when it closes: a
            # store that another process, or this one after a restart, would find empty.
            raise ValueError(
                "SQLiteStore(path=''): an empty path would open a temporary database that no "
                "other process sees and that is gone when it closes; give a file path such as "
                "'tidyctx.db' (or use MemoryStore for one process)"
            )
        if os.path.isdir(self.path):
            raise IsADirectoryError(
                f"SQLiteStore: {self.path!r} is a directory; give the path of the database "
                f"file, such as {os.path.join(self.path, 'tidyctx.db')!r}"
            )
        if self.path != ":memory:":
            folder = Path(self.path).absolute().parent
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"SQLiteStore: directory {str(folder)!r} does not exist; create it first "
                    f"(the store creates the file {self.path!r}, not its directory)"
                )
        self.table = table
        self.max_items = max_items
        self.timeout = float(timeout)
        # Quoted names: a table may be called like an SQL keyword ("order").
        t, count = f'"{table}"', f'"{table}_count"'
        self._get_sql = f"SELECT value FROM {t} WHERE key = ?"
        # An upsert, not INSERT OR REPLACE: REPLACE deletes the old row without firing the
        # delete trigger (unless recursive_triggers is on), which would corrupt the row count.
        # Putting a key again makes it the newest (seq), as in MemoryStore.
        self._put_sql = (
            f"INSERT INTO {t} (key, value, seq) "
            f"VALUES (?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM {t})) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, seq = excluded.seq"
        )
        self._count_sql = f"SELECT n FROM {count}"
        self._evict_sql = f"DELETE FROM {t} WHERE key IN (SELECT key FROM {t} ORDER BY seq LIMIT ?)"
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._inherited: list[sqlite3.Connection] = []
        self._conn: sqlite3.Connection | None = self._connect()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: autocommit, so each put is one atomic statement and the
        # transactions below are the explicit ones. check_same_thread=False: the lock, not the
        # thread that opened it, guards the connection.
        self._create_private()
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as err:
            err.add_note(f"while opening {self!r}")
            raise
        t, count, name = f'"{self.table}"', f'"{self.table}_count"', self.table
        try:
            self._wal(conn)
            # In WAL mode NORMAL cannot corrupt the file; a power cut may lose the last puts,
            # which only means recomputing them.
            conn.execute("PRAGMA synchronous = NORMAL")
            # IMMEDIATE: take the write lock now, so two processes creating the schema at
            # once wait for each other (busy timeout) instead of failing on a lock upgrade.
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t} "
                "(key TEXT PRIMARY KEY, value BLOB NOT NULL, seq INTEGER NOT NULL)"
            )
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({t})")]
            if columns != ["key", "value", "seq"]:
                raise ValueError(
                    f"SQLiteStore: table {name!r} in {self.path!r} has columns {columns}, not "
                    "(key, value, seq); it is not a store table, choose another table="
                )
            conn.execute(f'CREATE INDEX IF NOT EXISTS "{name}_seq" ON {t} (seq)')
            # The row count, kept by triggers so that eviction never has to count(*) the table.
            conn.execute(f"CREATE TABLE IF NOT EXISTS {count} (n INTEGER NOT NULL)")
            conn.execute(
                f"INSERT INTO {count} (n) SELECT count(*) FROM {t} "
                f"WHERE NOT EXISTS (SELECT 1 FROM {count})"
            )
            conn.execute(
                f'CREATE TRIGGER IF NOT EXISTS "{name}_added" AFTER INSERT ON {t} '
                f"BEGIN UPDATE {count} SET n = n + 1; END"
            )
            conn.execute(
                f'CREATE TRIGGER IF NOT EXISTS "{name}_removed" AFTER DELETE ON {t} '
                f"BEGIN UPDATE {count} SET n = n - 1; END"
            )
            conn.execute("COMMIT")
        except BaseException as err:
            if isinstance(err, sqlite3.Error):
                err.add_note(f"while opening {self!r}")
            conn.close()
            raise
        return conn

    def _create_private(self) -> None:
        """Create the database file readable by its owner only (0600), if it is missing.

        The store holds tool output, which can hold anything the tools read. SQLite creates a
        new file 0644 (less the umask), and its -wal and -shm files with the permissions of the
        database file (https://github.com/sqlite/sqlite/blob/master/test/journal3.test): an
        empty file made first is a valid empty database, and gives all three to the owner
        alone. An existing file keeps the permissions its owner gave it."""
        if self.path == ":memory:":
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        os.close(fd)

    def _wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL mode, waiting up to ``timeout`` for the other openers.

        Changing the journal mode needs an exclusive lock, and SQLite answers "database is
        locked" at once, without its busy timeout, while another process holds a lock (several
        processes opening a new file together); so wait here.
        """
        deadline = time.monotonic() + self.timeout
        pause = 0.001
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as err:
                busy = err.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                if not busy or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _connection(self) -> sqlite3.Connection:
        """The connection of this process; the caller holds the lock."""
        if self._conn is None:
            raise ValueError(f"{self!r} is closed")
        if os.getpid() != self._pid:
            # Forked: the parent's connection stays untouched (kept, never used or closed).
            conn = self._connect()
            self._inherited.append(self._conn)
            self._conn = conn
            self._pid = os.getpid()
        return self._conn

    def _after_fork(self) -> None:
        if os.getpid() != self._pid:
            # A lock held by another thread at fork time would never be released here.
            self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        _check_key("SQLiteStore.get", key)
        self._after_fork()
        with self._lock:
            conn = self._connection()
            try:
                row = conn.execute(self._get_sql, (key,)).fetchone()
            except sqlite3.Error as err:
                err.add_note(f"while reading {key!r} from {self!r}")
                raise
        return None if row is None else _decode(row[0])

    def put(self, key: str, value: str) -> None:
        _check_text("SQLiteStore.put", key, value)
        data = _encode(value)
        self._after_fork()
        with self._lock:
            conn = self._connection()
            try:
                if self.max_items is None:
                    conn.execute(self._put_sql, (key, data))
                    return
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(self._put_sql, (key, data))
                    (count,) = conn.execute(self._count_sql).fetchone()
                    if count > self.max_items:
                        conn.execute(self._evict_sql, (count - self.max_items,))
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as err:
                err.add_note(f"while putting {key!r} into {self!r}")
                raise

    def touch(self, key: str) -> bool:
        """Make ``key`` the newest entry (its ``seq``, without writing its value again), as
        putting it again would; False if it is not held. Never evicts."""
        _check_key("SQLiteStore.touch", key)
        self._after_fork()
        t = f'"{self.table}"'
        with self._lock:
            conn = self._connection()
            try:
                if self.max_items is None:  # nothing is evicted: presence is all there is
                    row = conn.execute(f"SELECT 1 FROM {t} WHERE key = ?", (key,)).fetchone()
                    return row is not None
                cursor = conn.execute(
                    f"UPDATE {t} SET seq = (SELECT coalesce(max(seq), 0) + 1 FROM {t}) "
                    "WHERE key = ?",
                    (key,),
                )
                return cursor.rowcount > 0
            except sqlite3.Error as err:
                err.add_note(f"while touching {key!r} in {self!r}")
                raise

    def touch_many(self, keys: list[str]) -> list[bool]:
        """:meth:`touch` each of ``keys`` in order, in one transaction; whether each is held."""
        for key in keys:
            _check_key("SQLiteStore.touch_many", key)
        if len(keys) < 2:
            return [self.touch(key) for key in keys]
        self._after_fork()
        t = f'"{self.table}"'
        with self._lock:
            conn = self._connection()
            try:
                if self.max_items is None:
                    held: set[str] = set()
                    for start in range(0, len(keys), 500):  # under SQLite's variable limit
                        part = keys[start : start + 500]
                        marks = ",".join("?" * len(part))
                        rows = conn.execute(f"SELECT key FROM {t} WHERE key IN ({marks})", part)
                        held.update(row[0] for row in rows)
                    return [key in held for key in keys]
                out: list[bool] = []
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for key in keys:
                        cursor = conn.execute(
                            f"UPDATE {t} SET seq = (SELECT coalesce(max(seq), 0) + 1 FROM {t}) "
                            "WHERE key = ?",
                            (key,),
                        )
                        out.append(cursor.rowcount > 0)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                return out
            except sqlite3.Error as err:
                err.add_note(f"while touching {len(keys)} keys in {self!r}")
                raise

    def __len__(self) -> int:
        self._after_fork()
        with self._lock:
            (count,) = self._connection().execute(self._count_sql).fetchone()
        return int(count)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def close(self) -> None:
        """Close this process's connection. Idempotent; the file stays."""
        self._after_fork()
        with self._lock:
            if self._conn is not None:
                if os.getpid() == self._pid:
                    self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, table={self.table!r}, max_items={self.max_items})"


def _import_redis() -> Any:
    try:
        import redis
        import redis.asyncio
    except ImportError as err:
        raise ImportError("RedisStore needs the redis package: pip install tidyctx[redis]") from err
    return redis


class RedisStore(_Closing):
    """A :class:`Store` on a Redis server, shared by many agent processes and machines.

    ``client_or_url`` is a synchronous client (``redis.Redis``, ``redis.RedisCluster``) or a
    URL such as ``"redis://localhost:6379/0"``, from which the store makes its own client
    (closed by :meth:`close`; a client you pass stays yours). Entries live under
    ``prefix + key``. With ``ttl_seconds`` each entry expires that long after it was last put;
    without it, entries stay until Redis evicts them under its own ``maxmemory-policy``.

    Values are sent as UTF-8 bytes, lone surrogates included, and come back as ``str``. A
    client made with ``decode_responses=True`` works too, except that Redis then refuses to
    decode a stored lone surrogate (``UnicodeDecodeError``).

    ``get`` and ``put`` raise the client's :class:`redis.RedisError` (connection refused,
    timeout, out of memory, ...) with a note naming the Redis key; nothing is swallowed. Needs
    the ``redis`` package (``pip install tidyctx[redis]``).
    """

    def __init__(
        self,
        client_or_url: redis.Redis | redis.RedisCluster | str,
        *,
        prefix: str = "tidyctx:",
        ttl_seconds: int | None = None,
    ) -> None:
        module = _import_redis()
        if not isinstance(prefix, str):
            raise TypeError(f"RedisStore(prefix=...) must be a str, got {type(prefix).__name__}")
        if ttl_seconds is not None and (
            isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds < 1
        ):
            raise ValueError(
                f"RedisStore(ttl_seconds=...) must be a positive int or None, got {ttl_seconds!r}"
            )
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        self._error: type[Exception] = module.RedisError
        self._client: Any
        if isinstance(client_or_url, str):
            self._client = module.Redis.from_url(client_or_url)
            self._owns_client = True
        elif isinstance(client_or_url, module.asyncio.Redis | module.asyncio.RedisCluster):
            raise TypeError(
                "RedisStore needs a synchronous client (redis.Redis), got "
                f"{type(client_or_url).__module__}.{type(client_or_url).__name__}: "
                "the Store protocol is synchronous"
            )
        elif callable(getattr(client_or_url, "get", None)) and callable(
            getattr(client_or_url, "set", None)
        ):
            self._client = client_or_url
            self._owns_client = False
        else:
            raise TypeError(
                "RedisStore takes a redis.Redis client or a redis:// URL, got "
                f"{type(client_or_url).__name__}"
            )

    def get(self, key: str) -> str | None:
        _check_key("RedisStore.get", key)
        name = self.prefix + key
        try:
            raw = self._client.get(name)
        except self._error as err:
            err.add_note(f"while reading Redis key {name!r} (RedisStore.get)")
            raise
        if raw is None:
            return None
        if not isinstance(raw, bytes | str):
            raise TypeError(
                f"RedisStore: the client's get() returned {type(raw).__name__}, not bytes; "
                "it needs a synchronous client"
            )
        return _decode(raw)

    def put(self, key: str, value: str) -> None:
        _check_text("RedisStore.put", key, value)
        name = self.prefix + key
        try:
            self._client.set(name, _encode(value), ex=self.ttl_seconds)
        except self._error as err:
            err.add_note(f"while putting Redis key {name!r} (RedisStore.put)")
            raise

    def touch(self, key: str) -> bool:
        """Restart the entry's ``ttl_seconds`` (``EXPIRE``), or without a TTL mark it used
        (``TOUCH``, for Redis's LRU eviction), without sending its value again; False if
        Redis no longer holds it."""
        _check_key("RedisStore.touch", key)
        name = self.prefix + key
        try:
            if self.ttl_seconds is not None:
                return bool(self._client.expire(name, self.ttl_seconds))
            return bool(self._client.touch(name))
        except self._error as err:
            err.add_note(f"while touching Redis key {name!r} (RedisStore.touch)")
            raise

    def touch_many(self, keys: list[str]) -> list[bool]:
        """:meth:`touch` each of ``keys``, in one round trip (a pipeline); whether each is held."""
        for key in keys:
            _check_key("RedisStore.touch_many", key)
        if len(keys) < 2:
            return [self.touch(key) for key in keys]
        try:
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                if self.ttl_seconds is not None:
                    pipe.expire(self.prefix + key, self.ttl_seconds)
                else:
                    pipe.touch(self.prefix + key)
            return [bool(answer) for answer in pipe.execute()]
        except self._error as err:
            err.add_note(f"while touching {len(keys)} Redis keys (RedisStore.touch_many)")
            raise

    def close(self) -> None:
        """Close the client the store made from a URL; a client passed in is left open."""
        if self._owns_client:
            self._client.close()

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r}, ttl_seconds={self.ttl_seconds})"


def store_key(text: str) -> str:
    """The key of ``text``: ``"tc_"`` and 16 hex digits of its BLAKE2b hash (UTF-8).

    Stable across processes and Python versions, so markers written by one run can be read
    back by another that shares the store. Lone surrogates (which JSON can carry) are hashed
    as their UTF-8-style bytes rather than refused.

    >>> store_key("hello")
    'tc_...'
    >>> len(store_key("hello"))
    19
    """
    if not isinstance(text, str):
        raise TypeError(f"store_key() hashes text (str), got {type(text).__name__}")
    return (
        KEY_PREFIX
        + hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    )


def store_text(store: Store, text: str) -> str:
    """Put ``text`` into ``store`` under :func:`store_key` and return the key. Idempotent."""
    if not isinstance(text, str):
        raise TypeError(f"store_text() stores text, got {type(text).__name__}")
    key = store_key(text)
    store.put(key, text)
    return key


class StoreWarning(UserWarning):
    """A store no longer held a text that a marker of the request would name: the transform
    sent that block as it came instead (the store evicts or expires entries faster than a
    request names them)."""


def refresh(store: Store, key: str) -> bool:
    """Renew the entry ``key`` as if it had just been put (the newest in a store that evicts
    the oldest, a TTL started again); False if the store no longer holds it.

    Uses the store's ``touch(key)`` when it has one (the three stores here do: no value is sent
    again); any other store gets its value read and put back.
    """
    touch = getattr(store, "touch", None)
    if callable(touch):
        return bool(touch(key))
    value = store.get(key)
    if value is None:
        return False
    store.put(key, value)
    return True


def refresh_all(store: Store, keys: list[str]) -> list[bool]:
    """:func:`refresh` each of ``keys`` in order; whether each is held. One round trip on a
    store with ``touch_many`` (Redis: a pipeline; SQLite: one transaction)."""
    many = getattr(store, "touch_many", None)
    if callable(many) and keys:
        return [bool(held) for held in many(keys)]
    return [refresh(store, key) for key in keys]


def keep_text(store: Store, text: str) -> str:
    """:func:`store_text` for a text that a marker names again on every request: the entry is
    renewed (:func:`refresh`) if the store still holds it, else put again. Returns the key.

    Transforms call it each time they send a marker, so an entry lives as long as a request
    names it, in a store that evicts (``max_items``) or expires (``ttl_seconds``) entries.
    """
    if not isinstance(text, str):
        raise TypeError(f"keep_text() stores text, got {type(text).__name__}")
    key = store_key(text)
    if not callable(getattr(store, "touch", None)) or not refresh(store, key):
        store.put(key, text)
    return key


STORE_ENV = "TIDYCTX_STORE"
"""The environment variable :func:`open_store` reads when it is given no store."""

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_REDIS_SCHEMES = ("redis", "rediss", "unix")
_FORMS = (
    "a file path (a SQLite store), sqlite:///relative.db, sqlite:////absolute.db, "
    "redis://host:6379/0 (also rediss:// and unix://) or memory://"
)


def _user_cache_dir() -> Path:
    """The user's cache directory, where the platform puts it: ``$XDG_CACHE_HOME`` or
    ``~/.cache`` (https://specifications.freedesktop.org/basedir-spec/latest/),
    ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows."""
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA", "")
        return Path(local) if local else Path.home() / "AppData" / "Local"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The spec: a relative path in the variable is invalid and is ignored.
    return Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"


def default_store_path() -> Path:
    """The SQLite file :func:`open_store` opens when given no store:
    ``tidyctx/store.db`` in the user's cache directory (``$XDG_CACHE_HOME``, else
    ``~/.cache``; ``~/Library/Caches`` on macOS; ``%LOCALAPPDATA%`` on Windows).

    >>> default_store_path().parts[-2:]
    ('tidyctx', 'store.db')
    """
    return _user_cache_dir() / "tidyctx" / "store.db"


def _options(
    url: str, query: str, allowed: dict[str, type[int] | type[float] | type[str]]
) -> dict[str, Any]:
    """The store options in a URL's query (``?max_items=1000``), converted; others refused."""
    out: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        kind = allowed.get(name)
        if kind is None:
            known = ", ".join(allowed) or "none"
            raise ValueError(
                f"open_store({url!r}): unknown option {name!r}; this store takes: {known}"
            )
        try:
            out[name] = kind(value)
        except ValueError:
            raise ValueError(
                f"open_store({url!r}): option {name}={value!r} must be {kind.__name__}"
            ) from None
    return out


def open_store(url: str | os.PathLike[str] | None = None) -> MemoryStore | SQLiteStore | RedisStore:
    """Open the store that ``url`` names. Close it (or use ``with``) when done.

    - ``None`` or ``""``: the URL in ``$TIDYCTX_STORE`` if set, else the SQLite file
      :func:`default_store_path` (its directory created, readable by the user alone).
    - a file path (``~`` expanded): a :class:`SQLiteStore` on that file; its directory must
      exist.
    - ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``: the same, written as
      SQLAlchemy writes SQLite URLs (three slashes, then the path; an absolute path has its
      own leading slash). Options ``?table=...&max_items=N&timeout=S``.
    - ``redis://host:port/db``, ``rediss://...`` (TLS), ``unix:///path/redis.sock``: a
      :class:`RedisStore` (the ``redis`` extra). Options ``?prefix=...&ttl_seconds=N``;
      every other query parameter goes to ``redis.Redis.from_url``.
    - ``memory://``: a :class:`MemoryStore` of this process (option ``?max_items=N``): no
      other process sees it.

    Anything else raises ``ValueError`` naming the forms above; the stores' own errors (a
    missing directory, an unreachable server on first use) are theirs.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with open_store(f"sqlite:///{tmp}/removed.db") as store:
    ...         store
    SQLiteStore('.../removed.db', table='tidyctx_store', max_items=None)
    """
    if url is None or (isinstance(url, str) and not url.strip()):
        url = os.environ.get(STORE_ENV, "").strip()
        if url:
            return open_store(url)
        path = default_store_path()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return SQLiteStore(path)
    if not isinstance(url, str):
        path_like = os.fspath(url)
        if not isinstance(path_like, str):
            raise TypeError(f"open_store() takes a URL or a path (str), got {url!r}")
        return SQLiteStore(path_like)
    scheme = _SCHEME.match(url)
    if scheme is None:
        return SQLiteStore(os.path.expanduser(url))
    kind = scheme.group(1).lower()
    parts = urlsplit(url)
    if kind == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or parts.path == "/":
            raise ValueError(
                f"open_store({url!r}): a SQLite URL is sqlite:/// and a file path "
                "(sqlite:///relative.db, sqlite:////absolute.db)"
            )
        options = _options(url, parts.query, {"table": str, "max_items": int, "timeout": float})
        return SQLiteStore(os.path.expanduser(unquote(parts.path[1:])), **options)
    if kind in _REDIS_SCHEMES:
        ours = {"prefix": str, "ttl_seconds": int}
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        options = _options(url, urlencode([p for p in pairs if p[0] in ours]), ours)
        rest = urlencode([p for p in pairs if p[0] not in ours])
        return RedisStore(urlunsplit(parts._replace(query=rest)), **options)
    if kind == "memory":
        if parts.netloc or parts.path:
            raise ValueError(f"open_store({url!r}): a memory store is memory:// with no path")
        return MemoryStore(**_options(url, parts.query, {"max_items": int}))
    raise ValueError(f"open_store({url!r}): unknown kind of store {kind!r}; give {_FORMS}")
