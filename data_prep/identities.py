"""The identities LMDB of each prepared split (g2s_caffe/core/layout.py): written after the image
LMDBs, from their keys, so identities can also be added to a dataset prepared without them.

Only the LNets+ANet baseline reads identities (identity pre-training, g2s_caffe/methods/lnets_anet/);
G2S does not.  When the dataset gives none (CelebA without identity_CelebA.txt) the manifest
says ``"identities": false`` with the reason, and `g2s anet` asks for the file.  Rerunning the
same `g2s prep` once the file is in place writes the identities without detecting again: the
LMDB is rebuilt whenever the name -> identity mapping's sha256 differs from the manifest's.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import lmdb

from g2s_caffe.core import layout
from g2s_caffe.core.errors import G2SError

from data_prep.lmdb_build import INITIAL_MAP_SIZE, ResumableLmdb, content_sha256, discard
from data_prep.records import DatasetIndex


def mapping_sha256(index: DatasetIndex) -> str:
    """sha256 of the dataset's "name number" lines, by name: what the identity LMDBs encode."""
    lines = sorted(f"{r.name} {r.identity_number}" for r in index.records)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _keys(path: Path) -> list[bytes]:
    env = lmdb.open(str(path), readonly=True, lock=False, subdir=True)
    try:
        with env.begin() as txn:
            return [bytes(k) for k in txn.cursor().iternext(keys=True, values=False)]
    finally:
        env.close()


def _write_split(out: Path, split: str, numbers: dict[str, int], map_size: int) -> tuple[dict, int]:
    """Write OUT/<split>/identities_lmdb from the split's label LMDB keys: (its manifest entry,
    the number of people in the split).  Built beside it and swapped in, so the directory is
    always complete (the old one, or the new one)."""
    keys = _keys(layout.lmdb_dir(out, split, layout.LABELS))
    items, people = [], set()
    for i, key in enumerate(keys):
        name = key.decode().split("_", 1)[1]
        if name not in numbers:
            raise G2SError(f"{out}/{split}: image {name} has no identity in the identity file; "
                           "the identity file and the prepared data are from different releases")
        items.append((key, layout.identity_datum(numbers[name], i)))
        people.add(numbers[name])
    final = layout.lmdb_dir(out, split, layout.IDENTITIES)
    new, old = final.with_name(final.name + ".new"), final.with_name(final.name + ".old")
    discard(new)                                      # left by a kill -9 during an earlier build
    shutil.rmtree(new, ignore_errors=True)
    db = ResumableLmdb(new, map_size)
    try:
        db.open()
        for start in range(0, len(items), 4096):
            db.write(items[start:start + 4096])
        db.publish()
    except BaseException:
        discard(new)                                  # its space back at once (a full disk)
        raise
    finally:
        db.close()
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)
    sha, _ = content_sha256(final)
    entry = {"path": str(final.relative_to(out)), "sha256": sha,
             "bytes": sum(f.stat().st_size for f in final.iterdir())}
    return entry, len(people)


def sync_identities(out: Path, index: DatasetIndex, manifest: dict, map_size: int = INITIAL_MAP_SIZE) -> bool:
    """Bring the manifest's identities up to date with ``index``; True when it changed."""
    out = Path(out)
    if not index.has_identities:
        if manifest.get("identities"):
            print(f"{out}: no identities given this time; the prepared identities_lmdb are kept "
                  f"({manifest.get('identity_source', {}).get('path')})", file=sys.stderr)
            return False
        note = index.sources.get("identity_note") or f"{index.dataset} gives no identities"
        changed = manifest.get("identities") is not False or manifest.get("identity_note") != note
        manifest["identities"], manifest["identity_note"] = False, note
        return changed
    digest = mapping_sha256(index)
    have = manifest.get("identity_source", {}).get("sha256")
    if manifest.get("identities") and have == digest and all(
            layout.lmdb_dir(out, s, layout.IDENTITIES).is_dir() for s in manifest["splits"]):
        return False
    numbers = {r.name: r.identity_number for r in index.records}
    for split, entry in manifest["splits"].items():
        entry["lmdbs"][layout.IDENTITIES], entry["identities"] = _write_split(out, split, numbers, map_size)
    manifest["identities"] = True
    manifest.pop("identity_note", None)
    manifest["identity_source"] = {"path": index.sources.get("identities", ""), "sha256": digest,
                                   "people": len(set(numbers.values()))}
    per_split = ", ".join(f"{s} {e[layout.IDENTITIES]} people" for s, e in manifest["splits"].items())
    print(f"{out}: identities written ({per_split})", file=sys.stderr)
    return True
