"""An LMDB that is built resumably and appears atomically.

Records go into ``DIR.partial/`` in ascending key order, committed in batches (an LMDB
commit is atomic, so after a kill -9 the partial database holds a whole prefix of the
records).  ``next_index`` says where to resume; ``publish`` syncs, closes and renames the
directory to ``DIR`` (rename is atomic on one file system), so ``DIR`` exists only complete.
The map grows by doubling whenever a batch hits MDB_MAP_FULL.

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

INITIAL_MAP_SIZE = 64 << 20


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

    def publish(self) -> None:
        self.env.sync(True)
        self.env.close()
        self.env = None
        os.replace(self.partial, self.final)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None


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
