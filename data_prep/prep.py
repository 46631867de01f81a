"""Prepare CelebA or LFWA for training: detect, align, crop (8 schemes), write LMDBs.

In three resumable phases (kill -9 at any time; rerun the same command):
1. detect (all splits in one stream): MTCNN near the dataset's face box, then if need be in the
   whole image (face_search), in --workers processes; the chosen face, where it was found,
   its eye alignment and the image's state go to OUT/.cache/<split>.jsonl (see detection_cache).
   States: detected; fallback (test image, no face: the dataset's box and landmarks, §3.1);
   discarded (train/val image with no face, or an unusable file); missing (listed, not on
   disk, under --missing report).  Every listed image ends in exactly one state.
2. index: per split, the kept images (detected + fallback) in dataset order get 0..N-1.
3. write, per split: per kept image the crops of every scheme (one warpAffine each, JPEG-encoded in the
   workers) and its labels go to OUT/<split>/<what>_lmdb.partial, committed in batches,
   renamed into place when complete; then OUT/<split>/report.csv.
Last, OUT/<split>/identities_lmdb when the dataset gives identities (data_prep/identities.py),
OUT/contact_sheet.png and OUT/manifest.json (atomically).  The on-disk format is
g2s_caffe/core/layout.py.  A run over a finished OUT with the same options does nothing.
"""
from __future__ import annotations

import csv
import io
import hashlib
import json
import math
import multiprocessing as mp
import os
import platform
import sys
from pathlib import Path

from g2s_caffe.core import disk, layout
from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.core.cpus import usable_cores
from g2s_caffe.core.images import encode_jpeg
from g2s_caffe.core.crops import CROP_SCHEMES
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.faults import ignore_sigint

from data_prep import align as al
from data_prep import face_search as fs
from data_prep.detection_cache import DetectionCache, close_all
from data_prep.identities import sync_identities
from data_prep.images import BadImage, load_image
from data_prep.lmdb_build import COMMIT_EVERY, INITIAL_MAP_SIZE, LockstepWriter, ResumableLmdb, content_sha256
from data_prep.records import DatasetIndex, ImageRecord

STATES = ("detected", "fallback", "discarded", "missing")
KEPT = ("detected", "fallback")
CACHE = ".cache"
AUTO_MIN_FACE = 0.4
REPORT_FIELDS = ("name", "state", "path", "index", "reason", "conversion", "faces", "score", "angle", "listed_at")
# What decides the detections besides the options (in the parameters, so that a rerun with
# another search never mixes its detections with the cached ones).
FACE_SEARCH = {"order": [fs.BOX, fs.IMAGE], "box_margin": fs.SEARCH_MARGIN}
# Disk: a 240-px crop is 13.6 KiB of JPEG at q95 (docs/benchmarks.md), other sizes in
# proportion to their area; LMDB stores each crop in whole pages (measured with the demo's
# photos: 15.7 KiB per crop at 240 px, 4.2 KiB at 64 px).
CROP_BYTES_240 = 13.6 * 1024
LMDB_PAGE = 4096


def crop_bytes(size: int) -> int:
    """About what one crop of ``size`` px takes in its LMDB."""
    return math.ceil(CROP_BYTES_240 * (size / 240) ** 2 / LMDB_PAGE) * LMDB_PAGE


# ------------------------------------------------------------------ worker side
_DETECTOR = None


def _detector(gpu: int | None, threads: int):
    global _DETECTOR
    if _DETECTOR is None:
        from data_prep.mtcnn import MTCNN
        _DETECTOR = MTCNN(gpu=gpu, threads=threads)
    return _DETECTOR


def detect_task(task: tuple) -> dict:
    """Find, choose and align the face of one image: its cache entry."""
    name, path, split, ref_box, ref_lm, centre_fraction, min_face, gpu, threads = task
    entry = {"name": name, "faces": 0, "score": None, "face": None, "alignment": None, "conversion": "", "path": ""}
    try:
        img, entry["conversion"] = load_image(Path(path))
    except BadImage as e:
        return {**entry, "state": "discarded", "reason": f"unusable image: {e}"}
    h, w = img.shape[:2]
    if ref_box is None and centre_fraction:
        ref_box = al.centre_box(w, h, centre_fraction)
    det = _detector(gpu, threads)   # outside the try: a detector that cannot start stops the run
    det.min_face = face_size_floor(min_face, ref_box)
    try:
        found = fs.find_face(det, img, ref_box, ref_lm, str(path))
    except Exception as e:  # one odd image must not end the run: it counts as "no face"
        found = fs.Found(None, f"detector failed ({type(e).__name__}: {e})", 0, "")
    entry["faces"], face, why = found.faces, found.face, found.why
    if face is not None:
        lm = [[float(x), float(y)] for x, y in face.landmarks]
        entry["face"] = {"box": [float(v) for v in face.box], "landmarks": lm}
        entry["score"] = float(face.score)
        entry["alignment"] = al.align(face.box, lm).to_json()
        return {**entry, "state": "detected", "path": found.path, "reason": f"chosen by {why}"}
    if split != "test":
        return {**entry, "state": "discarded", "reason": f"{why} ({split} image: discarded, paper §3.1)"}
    if ref_box is None:
        return {**entry, "state": "discarded", "reason": f"{why}, and the dataset gives no face box to fall back on"}
    entry["alignment"] = al.align(al.xywh_to_xyxy(ref_box), ref_lm).to_json()
    return {**entry, "state": "fallback", "path": fs.DATASET,
            "reason": f"{why}; test image: the dataset's box and landmarks"}


def face_size_floor(min_face: str, ref_box) -> float:
    """MTCNN's smallest face: a number of pixels (MTCNN's reference setting: 20), or "auto":
    AUTO_MIN_FACE of the dataset face's shorter side (never below 20).  The face kept is the
    labelled one (choose_face), far larger than that floor, so "auto" skips only the largest,
    costliest pyramid scales, which look for faces too small to be it."""
    if min_face != "auto":
        return float(min_face)
    if ref_box is None:
        return 20.0
    return max(20.0, AUTO_MIN_FACE * min(float(ref_box[2]), float(ref_box[3])))


def crop_task(task: tuple) -> tuple[int, list[bytes] | str]:
    """(index, JPEG bytes per scheme) of one kept image, or (index, error text)."""
    index, path, alignment, schemes, size, quality = task
    try:
        img, _ = load_image(Path(path))
    except BadImage as e:
        return index, str(e)
    out = al.crops(img, al.Alignment.from_json(alignment), schemes, size)
    try:
        return index, [encode_jpeg(out[s], quality, f"crop {s}") for s in schemes]
    except G2SError as e:
        return index, str(e)


# ------------------------------------------------------------------ main side
class Workers:
    """A lazily started process pool; workers run single-threaded BLAS.  threads_each: the
    threads each worker's detector may use, so that the workers together fill the cores."""

    def __init__(self, n: int):
        self.n = max(1, int(n))
        self.threads_each = max(1, usable_cores() // self.n)
        self.pool = None

    def imap(self, fn, tasks, chunksize: int = 2):
        if self.pool is None:
            saved = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "GLOG_minloglevel")}
            os.environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", GLOG_minloglevel="2")
            try:   # spawn: children inherit this environment before numpy/Caffe start their threads
                self.pool = mp.get_context("spawn").Pool(self.n, initializer=ignore_sigint)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        return self.pool.imap(fn, tasks, chunksize=chunksize)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", mininterval=0.5, smoothing=0.1, file=sys.stderr)


def _check_params(out: Path, params: dict) -> str:
    """'done' if OUT is finished with these parameters, else 'go'; a clear error on a clash."""
    manifest = out / layout.MANIFEST
    if manifest.is_file():
        old = json.loads(manifest.read_text()).get("parameters")
        if old == params:
            return "done"
        raise G2SError(f"{manifest}: {out} was prepared with other options ({_diff(old, params)}); "
                       "choose another --out, or delete it to prepare again")
    pfile = out / CACHE / "params.json"
    if pfile.is_file():
        old = json.loads(pfile.read_text())
        if old != params:
            raise G2SError(f"{pfile}: {out} holds an unfinished run with other options ({_diff(old, params)}); "
                           "rerun with the same options to finish it, or delete the directory")
    else:
        pfile.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(pfile, json.dumps(params, indent=2, sort_keys=True).encode(), fsync=True)
    return "go"


def _diff(old: dict | None, new: dict) -> str:
    old = old or {}
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in keys) or "unknown"


def detect_splits(records: dict[str, list[ImageRecord]], caches: dict[str, DetectionCache], workers: Workers,
                  centre_fraction: float | None, flush_every: int, min_face: str = "auto",
                  gpu: int | None = None) -> None:
    """Phase 1 for every split in one stream of work, so the workers never wait between splits."""
    todo = []
    for split, recs in records.items():
        cache = caches[split]
        for r in recs:
            if r.name in cache:
                continue
            if not r.on_disk:
                cache.add({"name": r.name, "state": "missing", "reason": f"listed at {r.where}, not on disk: {r.path}",
                           "faces": 0, "score": None, "face": None, "alignment": None, "conversion": "", "path": ""})
            else:
                todo.append(r)
        cache.flush()
    if not todo:
        return
    tasks = [(r.name, str(r.path), r.split, r.box, r.landmarks, centre_fraction, min_face, gpu, workers.threads_each)
             for r in todo]
    with _progress(len(todo), "detect+align") as bar:
        for i, (r, entry) in enumerate(zip(todo, workers.imap(detect_task, tasks)), 1):
            caches[r.split].add(entry)
            bar.update(1)
            if i % flush_every == 0:
                for c in caches.values():
                    c.flush()
    for c in caches.values():
        c.flush()


def write_split(out: Path, split: str, kept: list[ImageRecord], cache: DetectionCache, schemes: list[str],
                size: int, quality: int, workers: Workers, commit_every: int, map_size: int) -> dict:
    """Phase 3; returns {what: ResumableLmdb} (all published)."""
    dbs = {w: ResumableLmdb(layout.lmdb_dir(out, split, w), map_size) for w in (layout.LABELS, *schemes)}
    pending = {w: db.open() for w, db in dbs.items() if not db.published}
    try:
        if not pending:
            return dbs
        writer = LockstepWriter(pending, commit_every)
        start = writer.start
        need = [s for s in schemes if s in pending]
        tasks = ((i, str(kept[i].path), cache[kept[i].name]["alignment"], need, size, quality)
                 for i in range(start, len(kept)))
        with _progress(len(kept) - start, f"{split}: crop+write") as bar, writer:
            results = workers.imap(crop_task, tasks) if need else ((i, []) for i in range(start, len(kept)))
            for i, res in results:
                r = kept[i]
                if isinstance(res, str):
                    raise G2SError(f"{r.path}: {res}, although it was read during detection; the file "
                                   f"changed. Restore it, or delete {out / CACHE / (split + '.jsonl')} "
                                   "and the *.partial LMDBs to detect again")
                key = layout.key_for(i, r.name).encode()
                if writer.wants(layout.LABELS, i):
                    writer.add(layout.LABELS, key, layout.label_datum(r.labels, i))
                for s, jpeg in zip(need, res):
                    if writer.wants(s, i):
                        writer.add(s, key, layout.image_datum(jpeg, size, i))
                bar.update(1)
                writer.end_row()
        for db in pending.values():
            db.publish()
        return dbs
    finally:
        for db in pending.values():
            db.close()


def write_report(out: Path, split: str, records: list[ImageRecord], cache: DetectionCache,
                 index_of: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """Write <split>/report.csv; return the counts of the states and of the paths."""
    counts = dict.fromkeys(STATES, 0)
    paths = dict.fromkeys((fs.BOX, fs.IMAGE, fs.DATASET), 0)
    rows = []
    for r in records:
        e = cache[r.name]
        counts[e["state"]] += 1
        if e["path"]:
            paths[e["path"]] += 1
        rows.append({"name": r.name, "state": e["state"], "path": e["path"], "index": index_of.get(r.name, ""),
                     "reason": e["reason"], "conversion": e.get("conversion", ""), "faces": e["faces"],
                     "score": "" if e["score"] is None else f"{e['score']:.4f}",
                     "angle": "" if e["alignment"] is None else f"{e['alignment']['angle']:.2f}",
                     "listed_at": r.where})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=REPORT_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path = layout.report_path(out, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buf.getvalue().encode(), fsync=True)
    return counts, paths


def tool_versions() -> dict:
    import cv2
    import lmdb
    import numpy

    from g2s_caffe import __version__
    v = {"g2s_caffe": __version__, "python": platform.python_version(), "opencv": cv2.__version__,
         "numpy": numpy.__version__, "lmdb": lmdb.__version__}
    try:
        import caffe
        v["caffe"] = getattr(caffe, "__version__", "unknown")
    except Exception as e:  # the manifest still records why
        v["caffe"] = f"not importable ({type(e).__name__})"
    return v


def prepare(index: DatasetIndex, out: Path, *, schemes: list[str], splits: list[str] | None = None,
            image_size: int = 240, jpeg_quality: int = 95, workers: int = 1, limit: int | None = None,
            commit_every: int = COMMIT_EVERY, map_size: int = INITIAL_MAP_SIZE, extra_params: dict | None = None,
            contact_samples: int = 4, min_face: str = "auto", attribute_list: dict | None = None,
            gpu: int | None = None) -> dict:
    """Run the whole pipeline into ``out``; returns the manifest.  ``attribute_list``
    (attribute_record) goes into the manifest, so `g2s train` finds the list's crops.
    ``gpu``: the GPU the workers' detectors run on (None: CPU)."""
    from data_prep.contact_sheet import write_contact_sheet

    out = Path(out)
    available = index.splits()
    splits = splits or available
    for s in splits:
        if s not in available:
            raise G2SError(f"split {s!r} has no images in {index.dataset} (its splits: {', '.join(available)}); "
                           "fix --splits")
    for s in schemes:
        if s not in CROP_SCHEMES:
            raise G2SError(f"unknown crop scheme {s!r} (the paper's: {', '.join(CROP_SCHEMES)}); fix --schemes")
    params = {"dataset": index.dataset, "splits": list(splits), "schemes": list(schemes),
              "image_size": image_size, "jpeg_quality": jpeg_quality, "limit": limit,
              "attributes": list(index.attributes),
              "face_choice": {"max_landmark_error": al.MAX_LANDMARK_ERROR, "min_iou": al.MIN_IOU,
                              "lfw_centre_box_fraction": index.centre_box_fraction},
              "padding": "constant black", "min_face": min_face, "face_search": FACE_SEARCH, **(extra_params or {})}
    out.mkdir(parents=True, exist_ok=True)
    if _check_params(out, params) == "done":
        manifest = json.loads((out / layout.MANIFEST).read_text())
        if sync_identities(out, index, manifest, map_size):     # e.g. the identity file added since
            write_atomic(out / layout.MANIFEST, json.dumps(manifest, indent=2).encode(), fsync=True)
        else:
            print(f"{out}: already prepared with these options; nothing to do")
        return manifest

    if gpu is not None:
        from g2s_caffe.core.device import select_device
        select_device(gpu)   # a CPU-only build refuses here, before any worker starts
    pool = Workers(workers)
    manifest = {"format": layout.FORMAT, "dataset": index.dataset, "attributes": list(index.attributes),
                "image_size": image_size, "encoding": "jpeg", "jpeg_quality": jpeg_quality,
                "schemes": list(schemes), "splits": {}, "tool": tool_versions(), "parameters": params,
                "sources": index.sources, "checksum": "sha256 over (len, key, len, value) of every record in key order"}
    if attribute_list:
        manifest["attribute_list"] = attribute_list
    samples = []
    records = {sp: (index.split(sp)[:limit] if limit else index.split(sp)) for sp in splits}
    images = sum(len(r) for r in records.values())
    disk.expect(out, images * len(schemes) * crop_bytes(image_size),
                f"prep ({images} images x {len(schemes)} schemes x {disk.human(crop_bytes(image_size))})")
    caches = {sp: DetectionCache(out / CACHE / f"{sp}.jsonl").load() for sp in splits}
    try:
        try:
            detect_splits(records, caches, pool, index.centre_box_fraction, max(1, commit_every), min_face, gpu)
        finally:
            close_all(caches.values())
        for split in splits:
            cache = caches[split]
            kept = [r for r in records[split] if cache[r.name]["state"] in KEPT]
            index_of = {r.name: i for i, r in enumerate(kept)}
            dbs = write_split(out, split, kept, cache, list(schemes), image_size, jpeg_quality, pool,
                              max(1, commit_every), map_size)
            counts, paths = write_report(out, split, records[split], cache, index_of)
            keys = [layout.key_for(i, r.name) for i, r in enumerate(kept)]
            lmdbs = {}
            for what, db in dbs.items():
                sha, n = content_sha256(db.final)
                if n != len(kept):
                    raise G2SError(f"{db.final}: holds {n} records, expected {len(kept)}; "
                                   f"delete it and rerun to rebuild it")
                lmdbs[what] = {"path": str(db.final.relative_to(out)), "sha256": sha,
                               "bytes": sum(f.stat().st_size for f in db.final.iterdir())}
            manifest["splits"][split] = {
                "count": len(kept), "listed": len(records[split]),
                "keys_sha256": hashlib.sha256("\n".join(keys).encode()).hexdigest(),
                "lmdbs": lmdbs, "states": counts, "paths": paths,
                "report": str(layout.report_path(out, split).relative_to(out))}
            print(f"{split}: {len(records[split])} listed -> " + ", ".join(f"{counts[s]} {s}" for s in STATES)
                  + f"; {len(kept)} written; face found near the dataset's box {paths[fs.BOX]}, in the whole "
                  f"image {paths[fs.IMAGE]}, the dataset's own {paths[fs.DATASET]}", file=sys.stderr)
            for r in kept:
                if len(samples) < contact_samples and cache[r.name]["state"] == "detected":
                    samples.append((r, cache[r.name]))
    finally:
        pool.close()
    if samples:
        write_contact_sheet(out / "contact_sheet.png", samples, list(schemes))
        manifest["contact_sheet"] = "contact_sheet.png"
    sync_identities(out, index, manifest, map_size)
    write_atomic(out / layout.MANIFEST, json.dumps(manifest, indent=2).encode(), fsync=True)
    written = ", ".join(f"{s} {manifest['splits'][s]['count']}" for s in splits)
    print(f"{out}: prepared ({written} images; reports in <split>/report.csv)", file=sys.stderr)
    return manifest


# ------------------------------------------------------------------ CLI
def add_arguments(p) -> None:
    p.add_argument("dataset", choices=("celeba", "lfwa"), help="which dataset layout --root holds")
    p.add_argument("--root", type=Path, required=True,
                   help="celeba: img_celeba/ + list_*.txt (also in Anno/, Eval/); lfwa: lfw/ + the two .mat files")
    p.add_argument("--out", type=Path, required=True, help="output directory (resumable; see g2s_caffe/core/layout.py)")
    p.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1), help="processes (one MTCNN each)")
    p.add_argument("--splits", default=None, help="comma list of train,val,test; none = all the dataset has")
    p.add_argument("--schemes", default=",".join(CROP_SCHEMES), help="crop schemes to write (paper §2.2)")
    p.add_argument("--image-size", type=int, default=240, help="side of the square crops in pixels")
    p.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality of the stored crops")
    p.add_argument("--aligned", action="store_true", help="celeba: use img_align_celeba/ and its landmarks")
    p.add_argument("--missing", choices=("error", "report"), default="error",
                   help="an image listed but not on disk: stop with an error, or record it as 'missing'")
    p.add_argument("--limit", type=int, default=None, help="only the first N images of each split")
    p.add_argument("--attributes", default=None,
                   help="attribute list to prepare: a packaged name (celeba, lfwa, demo) or a YAML file naming "
                        "all or some of the dataset's attributes in any order (labels selected by name; the "
                        "manifest records the list); none = the dataset's own")
    p.add_argument("--images", type=Path, default=None, help="image directory, if not in the standard place")
    p.add_argument("--attr-file", type=Path, default=None, help="list_attr_celeba.txt / lfw_att_40.mat")
    p.add_argument("--partition-file", type=Path, default=None, help="celeba: list_eval_partition.txt")
    p.add_argument("--bbox-file", type=Path, default=None, help="celeba: list_bbox_celeba.txt")
    p.add_argument("--landmarks-file", type=Path, default=None, help="celeba: list_landmarks_(align_)celeba.txt")
    p.add_argument("--identity-file", type=Path, default=None,
                   help="celeba: identity_CelebA.txt (optional; only `g2s anet` needs identities); none = looked "
                        "for in ROOT, ROOT/Anno, ROOT/Eval, and without it the manifest says identities: false")
    p.add_argument("--indices-file", type=Path, default=None, help="lfwa: indices_train_test.mat")
    p.add_argument("--min-face", default="auto",
                   help=f"MTCNN's smallest face: 'auto' = {AUTO_MIN_FACE} x the dataset face box's shorter side "
                        "(never below 20; 2.5x faster, eye landmarks as accurate: bench/bench_prep.py), or a "
                        "number of pixels (20 = MTCNN's reference setting)")
    p.add_argument("--gpu", type=int, default=None,
                   help="GPU id for the workers' MTCNN (a CUDA build of Caffe, e.g. the docker image); none = CPU")
    p.add_argument("--commit-every", type=int, default=COMMIT_EVERY, help="images per LMDB transaction / cache flush")
    p.add_argument("--map-size", type=int, default=INITIAL_MAP_SIZE, help="initial LMDB map size in bytes (grows)")


def outputs(args) -> list[Path]:
    return [args.out]


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def attribute_list(spec: str):
    """--attributes: a packaged list's name (g2s_caffe/data/attributes/NAME.yaml) or a YAML file."""
    from importlib import resources

    from g2s_caffe.core.attributes import load_attributes

    path = Path(spec)
    if not path.is_file():
        path = Path(str(resources.files("g2s_caffe") / "data" / "attributes" / f"{spec}.yaml"))
    if not path.is_file():
        raise G2SError(f"--attributes {spec}: neither a file nor a packaged list "
                       "(g2s_caffe/data/attributes/*.yaml)")
    return load_attributes(path)


def _normalised(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def label_columns(wanted: list[str], in_file: list[str], list_source: str, file_source: str,
                  positional: list[str] | None = None) -> list[int]:
    """The column of each wanted attribute among the file's, matched by name: exactly, then
    (``positional``: the packaged names of the file's columns, for LFWA's own spelling of
    AttrName) by position, then ignoring case, spaces and punctuation.  An unknown name is
    an error naming it, the attribute list and the file."""
    loose: dict[str, list[int]] = {}
    for i, n in enumerate(in_file):
        loose.setdefault(_normalised(n), []).append(i)
    cols = []
    for name in wanted:
        if name in in_file:
            cols.append(in_file.index(name))
        elif positional and name in positional:
            cols.append(positional.index(name))
        elif len(loose.get(_normalised(name), [])) == 1:
            cols.append(loose[_normalised(name)][0])
        else:
            raise G2SError(f"{list_source}: attribute {name!r} is not one of the {len(in_file)} attributes of "
                           f"{file_source} ({', '.join(in_file)}); fix the name or the list")
    return cols


def select_attributes(index: DatasetIndex, attrs, positional: list[str] | None = None) -> DatasetIndex:
    """The same images with the label columns of ``attrs`` (an AttributeList), in its order:
    a subset or a reordering of the dataset's attributes."""
    from dataclasses import replace

    cols = label_columns(attrs.names, index.attributes, attrs.source, index.sources.get("attr", index.dataset),
                         positional)
    records = [replace(r, labels=tuple(r.labels[c] for c in cols)) for r in index.records]
    sources = {**index.sources, "attribute_list": attrs.source,
               "label_columns": ", ".join(f"{n}={c + 1}" for n, c in zip(attrs.names, cols))}
    return replace(index, attributes=list(attrs.names), records=records, sources=sources)


def attribute_record(attrs) -> dict:
    """What the prepared manifest says about its attribute list (`g2s train` reads it back)."""
    return {"source": attrs.source, "dataset": attrs.dataset,
            "attributes": [{"name": a.name, "crop": a.crop} for a in attrs.attributes]}


def read_dataset(args) -> tuple[DatasetIndex, object]:
    """(the dataset's images with the label columns of --attributes, that AttributeList)."""
    attrs = attribute_list(args.attributes or args.dataset)
    if args.dataset == "celeba":
        from data_prep.celeba import read_celeba
        files = {"images": args.images, "attr": args.attr_file, "partition": args.partition_file,
                 "bbox": args.bbox_file, "landmarks": args.landmarks_file, "identities": args.identity_file}
        index = read_celeba(args.root, aligned=args.aligned, missing=args.missing,
                            files={k: v for k, v in files.items() if v})
        return select_attributes(index, attrs), attrs
    if args.aligned or args.bbox_file or args.partition_file or args.landmarks_file or args.identity_file:
        raise G2SError("--aligned, --bbox-file, --partition-file, --landmarks-file and --identity-file are "
                       "CelebA options (LFW's identities are its folder names)")
    from data_prep.lfwa import read_lfwa
    files = {"images": args.images, "attr": args.attr_file, "indices": args.indices_file}
    index = read_lfwa(args.root, missing=args.missing, files={k: v for k, v in files.items() if v})
    # The release spells AttrName its own way: its 40 columns are the packaged list's, in order.
    packaged = attribute_list("lfwa").names
    return select_attributes(index, attrs, packaged if len(index.attributes) == len(packaged) else None), attrs


def run(args) -> int:
    if not 1 <= args.jpeg_quality <= 100:
        raise G2SError(f"--jpeg-quality {args.jpeg_quality}: must be 1..100")
    if args.image_size < 8:
        raise G2SError(f"--image-size {args.image_size}: must be at least 8")
    if args.limit is not None and args.limit < 1:
        raise G2SError(f"--limit {args.limit}: must be at least 1")
    if args.min_face != "auto":
        try:
            if float(args.min_face) < 1:
                raise ValueError
        except ValueError:
            raise G2SError(f"--min-face {args.min_face}: a number of pixels >= 1, or 'auto'") from None
    index, attrs = read_dataset(args)
    prepare(index, args.out, attribute_list=attribute_record(attrs),
            schemes=_csv(args.schemes) or list(CROP_SCHEMES), splits=_csv(args.splits),
            image_size=args.image_size, jpeg_quality=args.jpeg_quality, workers=args.workers,
            limit=args.limit, commit_every=args.commit_every, map_size=args.map_size,
            extra_params={"aligned": bool(args.aligned), "missing": args.missing}, min_face=args.min_face,
            gpu=args.gpu)
    return 0
