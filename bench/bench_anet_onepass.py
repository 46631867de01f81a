"""ANet features of every test patch of a face: patch by patch vs the one-pass net (the
interweaved operation, Fig. 5 of the LNets+ANet paper), same weights, same faces, same run.

Baselines, both the same patch net (g2s_caffe/methods/anet/nets.py: patch_deploy):
  patch-by-patch  one forward per patch (the paper's "naive patch-by-patch scanning")
  batched         all patches of a face in one batch (C1/C2 still computed per patch)
against onepass_deploy on the whole region.  Faces: real photographs (scikit-image's
astronaut and coffee-free crops of it) resized to the region.  Checks that the features agree
(max difference / feature scale), then prints ms per face and
RATIO = patch-by-patch / one-pass (the paper: ~80 ms -> 14 ms on a GPU, "6x").

    .venv/bin/python bench/bench_anet_onepass.py [--variant full|small|both] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def faces(size: int, count: int) -> np.ndarray:
    import cv2
    from skimage import data

    from g2s_caffe.methods.anet import params as hp

    img = data.astronaut()[:, :, ::-1]
    crops = [img[20 + 10 * k:300 + 10 * k, 110 + 5 * k:390 + 5 * k] for k in range(count)]
    out = [((cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
             - np.asarray(hp.FACE_MEAN_BGR, np.float32)) * hp.INPUT_SCALE).transpose(2, 0, 1) for c in crops]
    return np.stack(out)


def nets_for(shape, tmp: Path):
    import caffe
    from google.protobuf import text_format

    from g2s_caffe.methods.anet import nets

    def write(proto, name):
        path = tmp / f"{name}.prototxt"
        path.write_text(text_format.MessageToString(proto))
        return str(path)

    single = caffe.Net(write(nets.patch_deploy(shape, batch=1), "single"), caffe.TEST)
    rng = np.random.default_rng(0)
    for blobs in single.params.values():
        for b in blobs:
            b.data[...] = rng.normal(0, np.sqrt(2.0 / max(1, np.prod(b.data.shape[1:]))), b.data.shape)
    weights = tmp / "w.caffemodel"
    single.save(str(weights))
    batched = caffe.Net(write(nets.patch_deploy(shape, batch=shape.n_patches), "batched"), caffe.TEST,
                        weights=str(weights))
    onepass = nets.load_onepass(write(nets.onepass_deploy(shape), "onepass"), weights, shape)
    return single, batched, onepass


def timed(fn, regions, rounds: int) -> tuple[float, list]:
    out = [fn(r) for r in regions]       # warm-up: allocations, first-call set-up
    t0 = time.perf_counter()
    for _ in range(rounds):
        for r in regions:
            fn(r)
    return (time.perf_counter() - t0) * 1000 / (rounds * len(regions)), out


def bench(variant: str, rounds: int, n_faces: int) -> float:
    from g2s_caffe.methods.anet import nets
    from g2s_caffe.methods.anet import params as hp

    shape = hp.ANET_VARIANTS[variant][0]
    p = shape.patch_size
    with tempfile.TemporaryDirectory() as tmp:
        single, batched, onepass = nets_for(shape, Path(tmp))
        regions = faces(shape.region_size, n_faces)

        def by_patch(x):
            feats = []
            for y, z in shape.patch_offsets:
                single.blobs["data"].data[...] = x[None, :, y:y + p, z:z + p]
                feats.append(single.forward()[nets.FEATURE_BLOB][0].copy())
            return np.stack(feats)

        def by_batch(x):
            batched.blobs["data"].data[...] = np.stack([x[:, y:y + p, z:z + p] for y, z in shape.patch_offsets])
            return batched.forward()[nets.FEATURE_BLOB].copy()

        def one_pass(x):
            onepass.blobs["data"].data[...] = x[None]
            return nets.patch_features(onepass.forward()[nets.FEATURE_BLOB])[:, 0].copy()

        ms_patch, f_patch = timed(by_patch, regions, rounds)
        ms_batch, f_batch = timed(by_batch, regions, rounds)
        ms_one, f_one = timed(one_pass, regions, rounds)
    scale = max(np.abs(f).max() for f in f_patch)
    err = max(max(np.abs(a - b).max(), np.abs(a - c).max()) for a, b, c in zip(f_patch, f_batch, f_one)) / scale
    print(f"{variant}: {shape.n_patches} patches of {p} px per {shape.region_size}-px region, "
          f"{n_faces} faces x {rounds} rounds; max |difference| / feature scale = {err:.1e}")
    print(f"  patch-by-patch (batch 1 per patch) : {ms_patch:9.1f} ms/face")
    print(f"  batched patches (one batch)        : {ms_batch:9.1f} ms/face")
    print(f"  one pass (interweaved operation)   : {ms_one:9.1f} ms/face")
    print(f"  RATIO patch-by-patch / one-pass    : {ms_patch / ms_one:9.2f}")
    print(f"  RATIO batched / one-pass           : {ms_batch / ms_one:9.2f}")
    if err > 1e-4:
        print(f"ERROR: the one-pass features differ from patch-by-patch ({err:.1e} > 1e-4)", file=sys.stderr)
        return float("nan")
    return ms_patch / ms_one


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=("full", "small", "both"), default="both")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--faces", type=int, default=3)
    args = ap.parse_args()
    import caffe

    caffe.set_mode_cpu()
    print(f"Caffe on CPU, {os.cpu_count()} cores, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}")
    ratios = [bench(v, args.rounds, args.faces) for v in (("full", "small") if args.variant == "both" else (args.variant,))]
    return 0 if all(np.isfinite(r) for r in ratios) else 1


if __name__ == "__main__":
    sys.exit(main())
