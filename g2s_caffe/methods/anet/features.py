"""ANet's patch features of a prepared split, in one forward pass per batch of images.

Each image's region is made exactly as the data stage makes it (faces.py: region_jpeg
on the prepared scheme-c crop, or LNets' face window on the raw image), decoded like Caffe's
Data layer (BGR, the fine-tuning net's TEST mean and scale, no crop, no mirror) and fed
whole to the one-pass net (nets.onepass_deploy:
the interweaved operation, Fig. 5; loaded with nets.load_onepass), whose ``fc`` holds every test
patch's feature (nets.patch_features).  Returned as (N, P, D) float32, P = shape.n_patches, in
``shape.patch_offsets`` order.

``extract`` writes a split's features for the SVM stage resumably: one .npz per chunk of
``chunk`` images (atomic), merged into one file when all are there; chunks are tagged with
the weights' sha256, so chunks of other weights are never mixed in.
"""
from __future__ import annotations

import dataclasses
import io
import json
import shutil
from pathlib import Path

import numpy as np

from g2s_caffe.core import layout
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.methods.anet import nets as anet_nets
from g2s_caffe.methods.anet import params as hp
from g2s_caffe.methods.anet.data import split_identities


class OnePass:
    """The fine-tuned ANet's one-pass net: regions (JPEG bytes) -> features (n, P, D)."""

    def __init__(self, deploy: Path, weights: Path, train_val: Path, shape: hp.ANetShape, quality: int,
                 regions=None):
        """``regions(keys, scheme-c JPEGs) -> region JPEGs`` (faces.py); None = the prepared
        crops resized, as the data stage of a `--faces prep` run makes them."""
        from g2s_caffe.core.evaluation.evaluate import eval_transform
        from g2s_caffe.methods.anet.faces import PrepRegions

        for p in (deploy, weights, train_val):
            if not Path(p).is_file():
                raise G2SError(f"{p}: missing (the ANet run's fine-tuned net); rerun `g2s anet`")
        # The TEST transform of the fine-tuning net (mean, scale), without its crop: the one-pass
        # net takes the whole region and crops the patches itself.
        self.transform = dataclasses.replace(eval_transform(train_val), crop_size=0)
        self.shape, self.quality = shape, quality
        self.region_source = regions or PrepRegions(shape.region_size, quality)
        # conv1 .. conv4_<i>_<j> by name, FC cut into the one-pass net's per-cell convolutions
        self.net = anet_nets.load_onepass(str(deploy), str(weights), shape)
        for blob in (anet_nets.DATA, anet_nets.FEATURE_BLOB):
            if blob not in self.net.blobs:
                raise G2SError(f"{deploy}: the one-pass net needs a blob {blob!r} (regenerate it with `g2s gen`)")

    def regions(self, jpegs: list[bytes], keys: list[str]) -> list[bytes]:
        return self.region_source(keys, jpegs)

    def __call__(self, jpegs: list[bytes], keys: list[str]) -> np.ndarray:
        from g2s_caffe.core.evaluation.evaluate import preprocess

        x = preprocess(self.regions(jpegs, keys), self.transform, keys)
        r = self.shape.region_size
        if x.shape[2:] != (r, r):
            raise G2SError(f"{keys[0]}: region {x.shape[2]}x{x.shape[3]}, the net takes {r}x{r}")
        self.net.blobs[anet_nets.DATA].reshape(*x.shape)
        self.net.blobs[anet_nets.DATA].data[...] = x
        feats = anet_nets.patch_features(self.net.forward()[anet_nets.FEATURE_BLOB])   # (P, n, D)
        n, p = len(x), self.shape.n_patches
        if feats.shape[:2] != (p, n):
            raise G2SError(f"the one-pass net gives features {feats.shape} for {n} images x {p} patches")
        return feats.transpose(1, 0, 2).astype(np.float32)                           # (n, P, D)


def batches(data: layout.PreparedDataset, split: str, batch: int):
    """(keys, labels (n, T), scheme-c JPEGs) of a prepared split in key order."""
    from g2s_caffe.core.evaluation.evaluate import iter_split

    return iter_split(data, split, hp.ENLARGE_SCHEME, batch)


def forward_all(net: OnePass, chunk_batches, feature_batch: int):
    """Features of one chunk's images, feature_batch images per forward."""
    keys, labels, jpegs = chunk_batches
    out = [net(jpegs[i:i + feature_batch], keys[i:i + feature_batch]) for i in range(0, len(keys), feature_batch)]
    return np.concatenate(out)


# ------------------------------------------------------------------ the SVM split's features
def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def extract(net: OnePass, data: layout.PreparedDataset, split: str, out: Path, weights_sha: str,
            feature_batch: int, chunk: int, show: bool = True) -> Path:
    """Write ``out`` (.npz: keys, features (N, P, D) float32, labels (N, T), identities (N,) or
    empty); resumable by chunks in ``out``'s sibling folder ``<stem>.chunks/``."""
    from tqdm import tqdm

    out = Path(out)
    chunks = out.with_name(out.stem + ".chunks")
    tag = {"weights_sha256": weights_sha, "split": split, "data": str(data.root.resolve()), "chunk": chunk,
           "region_size": net.shape.region_size, "patches": net.shape.n_patches}
    tag_file = chunks / "tag.json"
    if out.is_file():
        with np.load(out, allow_pickle=False) as z:
            if "tag" in z.files and json.loads(str(z["tag"])) == tag:
                return out                       # merged before a kill, not yet recorded
    if chunks.is_dir() and (not tag_file.is_file() or json.loads(tag_file.read_text()) != tag):
        shutil.rmtree(chunks)                    # chunks of other weights or settings
    chunks.mkdir(parents=True, exist_ok=True)
    write_atomic(tag_file, json.dumps(tag, sort_keys=True))
    n = data.count(split)
    with tqdm(total=n, desc=f"ANet features ({split}, one pass)", unit="img", disable=not show) as bar:
        for k, (keys, labels, jpegs) in enumerate(batches(data, split, chunk)):
            path = chunks / f"chunk_{k:05d}.npz"
            if not path.is_file():
                feats = forward_all(net, (keys, labels, jpegs), feature_batch)
                write_atomic(path, _npz(keys=np.asarray(keys), features=feats, labels=labels))
            bar.update(len(keys))
    parts = sorted(chunks.glob("chunk_*.npz"))
    keys, feats, labels = [], [], []
    for p in parts:
        with np.load(p, allow_pickle=False) as z:
            keys += [str(k) for k in z["keys"]]
            feats.append(z["features"])
            labels.append(z["labels"])
    if len(keys) != n:
        raise G2SError(f"{chunks}: {len(keys)} images in the chunks, the {split} split has {n}; delete {chunks} "
                       "and rerun `g2s anet`")
    ids = np.zeros(0, np.int64)
    if data.has_identities:
        id_keys, ids = split_identities(data, split)
        if id_keys != keys:
            raise G2SError(f"{data.lmdb(split, layout.IDENTITIES)}: keys differ from the {split} images; rerun g2s prep")
    write_atomic(out, _npz(keys=np.asarray(keys), features=np.concatenate(feats), labels=np.concatenate(labels),
                           identities=ids, tag=np.asarray(json.dumps(tag, sort_keys=True))))
    shutil.rmtree(chunks)
    return out


def load_features(path: Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise G2SError(f"{path}: no features file; rerun `g2s anet`")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
