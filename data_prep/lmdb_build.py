"""An LMDB that is built resumably and appears atomically.

Records go into ``DIR.partial/`` in ascending key order, committed in batches (an LMDB
commit is atomic, so after a kill -9 the partial database holds a whole prefix of the
records).  ``next_index`` says where to resume; ``publish`` syncs, closes and renames the
directory to ``DIR`` (rename is atomic on one file system), so ``DIR`` exists only complete.
The map grows by doubling whenever a batch hits MDB_MAP_FULL.  A batch that fails because the
disk is full is an OSError(ENOSPC) naming the database (core/faults.py); what was committed
before stays, and a rerun continues from it.

``LockstepWriter`` fills several such databases of one split row by row (the labels and each
crop scheme, say), committing them together every COMMIT_EVERY rows.

``content_sha256`` hashes the (key, value) pairs in key order: two databases with the same
records have the same digest whatever their page layout (a resumed build lays pages out
differently from an uninterrupted one; its content is identical).
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import lmdb

from g2s_caffe.core import layout
from g2s_caffe.core.disk import free_bytes
from g2s_caffe.core.faults import disk_full

INITIAL_MAP_SIZE = 64 << 20
COMMIT_EVERY = 256       # rows per LMDB transaction: a kill -9 loses at most this many rows of work
# LMDB maps its lock file into memory: opened on a full disk, the first touch of that memory
# kills the process with SIGBUS instead of raising.  Below this much free space, no database
# is opened (the lock file and the first pages fit many times over).
OPEN_MIN_FREE = 1 << 20


def partial_dir(final: Path) -> Path:
    return final.with_name(final.name + ".partial")


class ResumableLmdb:
    def __init__(self, final: Path, map_size: int = INITIAL_MAP_SIZE):
        self.final = Path(final)
        self.partial = partial_dir(self.final)
        self.env = None
        self.map_size = map_size
        self.grown = 0

    @property
    def published(self) -> bool:
        return self.final.is_dir()

    def open(self) -> "ResumableLmdb":
        self.partial.mkdir(parents=True, exist_ok=True)
        if free_bytes(self.partial) < OPEN_MIN_FREE:
            raise disk_full(self.partial, f"LMDB needs {OPEN_MIN_FREE >> 10} KiB free to open a database")
        self.env = lmdb.open(str(self.partial), map_size=self.map_size, subdir=True, meminit=False)
        # A resumed database may already be larger than the initial map.
        self.map_size = max(self.map_size, self.env.info()["map_size"])
        return self

    def next_index(self) -> int:
        """Index of the first record not yet committed (records are written in index order)."""
        with self.env.begin() as txn:
            cur = txn.cursor()
            return layout.index_of(cur.key()) + 1 if cur.last() else 0

    def write(self, items: list[tuple[bytes, bytes]]) -> None:
        """Put a batch in one transaction; grow the map and retry on MDB_MAP_FULL."""
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for k, v in items:
                        txn.put(k, v)
                return
            except lmdb.MapFullError:   # the transaction was aborted: nothing of it is stored
                self.map_size *= 2
                self.grown += 1
                self.env.set_mapsize(self.map_size)
            except lmdb.Error as e:     # aborted too; a full disk reaches LMDB as a short write (EIO)
                if free_bytes(self.partial) < sum(len(k) + len(v) for k, v in items):
                    raise disk_full(self.partial, f"LMDB: {e}") from e
                raise

    def publish(self) -> None:
        self.env.sync(True)
        self.env.close()
        self.env = None
        os.replace(self.partial, self.final)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None


class LockstepWriter:
    """Rows written into several open ResumableLmdbs in index order, committed together.

    Each database resumes at its own ``next_index``; ``wants(what, i)`` says whether row ``i``
    still has to be written into it, and ``start`` is the first row any of them needs.  Used as
    a context manager, the last partial batch is committed on a normal exit (not on an
    exception: what was committed stays a whole prefix)."""

    def __init__(self, dbs: dict, every: int | None = None):
        self.dbs = dbs
        self.next = {w: db.next_index() for w, db in dbs.items()}
        self.every = every or COMMIT_EVERY
        self.batches: dict[str, list] = {w: [] for w in dbs}
        self.rows = 0

    @property
    def start(self) -> int:
        return min(self.next.values(), default=0)

    def wants(self, what: str, index: int) -> bool:
        return what in self.dbs and index >= self.next[what]

    def add(self, what: str, key: bytes, value: bytes) -> None:
        self.batches[what].append((key, value))

    def end_row(self) -> None:
        self.rows += 1
        if self.rows % self.every == 0:
            self.commit()

    def commit(self) -> None:
        for what, items in self.batches.items():
            if items:
                self.dbs[what].write(items)
                items.clear()

    def __enter__(self) -> "LockstepWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.commit()


def discard(final: Path) -> None:
    """Remove a partial build (used when its parameters no longer apply)."""
    shutil.rmtree(partial_dir(Path(final)), ignore_errors=True)


def content_sha256(path: Path) -> tuple[str, int]:
    """(sha256 over the (len, key, len, value) of every record in key order, record count)."""
    h = hashlib.sha256()
    n = 0
    env = lmdb.open(str(path), readonly=True, lock=False, subdir=True)
    try:
        with env.begin() as txn:
            for k, v in txn.cursor():
                h.update(len(k).to_bytes(8, "little"))
                h.update(k)
                h.update(len(v).to_bytes(8, "little"))
                h.update(v)
                n += 1
    finally:
        env.close()
    return h.hexdigest(), n


def read_items(path: Path) -> list[tuple[bytes, bytes]]:
    env = lmdb.open(str(path), readonly=True, lock=False, subdir=True)
    try:
        with env.begin() as txn:
            return [(bytes(k), bytes(v)) for k, v in txn.cursor()]
    finally:
        env.close()
