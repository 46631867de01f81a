"""`g2s predict` with a G2S run: MTCNN finds the faces, each attribute's net answers.

Per image: MTCNN finds the faces (box, 5 landmarks); each face is eye-aligned and cut with
each attribute's crop scheme at the prepared image size (as `g2s prep` does for training);
the crop goes through the same centre crop + mean as evaluation and through the attribute's
net.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.images import encode_jpeg
from g2s_caffe.core.evaluation.evaluate import DATA_BLOB, PROB_BLOB, EvalNet, Transform, preprocess, eval_transform
from g2s_caffe.core.predict import FacePrediction, format_table, write_outputs


class Predictor:
    """The run's final nets, loaded once; one pass per distinct (deploy, weights)."""

    def __init__(self, items: list[EvalNet], image_size: int, cut_schemes: list[str] | None = None,
                 jpeg_quality: int = 95):
        """cut_schemes: the schemes `g2s prep` cut together for the training data (the
        shared pre-shrink depends on the set); default: the schemes the nets need.
        jpeg_quality: the prepared data's, so the nets see the same JPEG artefacts."""
        import caffe

        if not items:
            raise G2SError("no final nets to predict with")
        self.items = items
        self.image_size = image_size
        self.jpeg_quality = jpeg_quality
        needed = sorted({it.scheme for it in items})
        self.cut_schemes = sorted(set(cut_schemes or []) | set(needed))
        self.groups: list[tuple[object, Transform, list[EvalNet]]] = []
        by: dict[tuple, list[EvalNet]] = {}
        for it in items:
            by.setdefault((str(it.deploy), str(it.weights), it.scheme), []).append(it)
        loaded: dict[tuple, object] = {}
        for (deploy, weights, _), group in by.items():
            for p in (deploy, weights):
                if not Path(p).is_file():
                    raise G2SError(f"{p}: missing (final net of {group[0].attribute}); run `g2s train` first")
            tf = eval_transform(group[0].train_val)
            if tf.crop_size > image_size:
                raise G2SError(f"{group[0].train_val}: crop_size {tf.crop_size} > image size {image_size}")
            key = (deploy, weights)
            if key not in loaded:
                loaded[key] = caffe.Net(deploy, caffe.TEST, weights=weights)
            self.groups.append((loaded[key], tf, group))

    def predict(self, crops: dict[str, list[np.ndarray]]) -> list[dict[str, float]]:
        """crops[scheme][i]: face i's BGR uint8 crop (image_size square). -> P per face."""
        n = len(next(iter(crops.values())))
        out: list[dict[str, float]] = [{} for _ in range(n)]
        for net, tf, group in self.groups:
            x = _preprocess_arrays(crops[group[0].scheme], tf, self.jpeg_quality)
            net.blobs[DATA_BLOB].reshape(*x.shape)
            net.blobs[DATA_BLOB].data[...] = x
            prob = net.forward()[PROB_BLOB].reshape(n, -1, 2)
            for it in group:
                t = 0 if it.attr_index is None else it.attr_index
                for i in range(n):
                    out[i][it.attribute] = float(prob[i, t, 1])
        order = [it.attribute for it in self.items]
        return [{a: d[a] for a in order} for d in out]


def _preprocess_arrays(imgs: list[np.ndarray], tf: Transform, quality: int) -> np.ndarray:
    """Same centre crop + mean as evaluation, from decoded crops.  The crops are JPEG
    round-tripped like the training LMDB's images so the nets see the same kind of input."""
    where = [f"face crop {i}" for i in range(len(imgs))]
    return preprocess([encode_jpeg(img, quality, w) for img, w in zip(imgs, where)], tf, where)


def aligned_crops(img: np.ndarray, face, schemes: list[str], size: int) -> dict[str, np.ndarray]:
    """The face's eye-aligned S x S crop of each scheme, exactly as `g2s prep` cuts training images."""
    from data_prep import align

    return align.crops(img, align.align(face.box, face.landmarks), schemes, size)


def predict_image(img: np.ndarray, faces, predictor: Predictor, crop_fn=aligned_crops) -> list[FacePrediction]:
    """crop_fn(img, face, schemes, size) -> {scheme: the face's crop (BGR, size x size)}."""
    if not faces:
        return []
    per_face = [crop_fn(img, f, predictor.cut_schemes, predictor.image_size) for f in faces]
    crops = {s: [c[s] for c in per_face] for s in predictor.cut_schemes}
    probs = predictor.predict(crops)
    return [FacePrediction([float(v) for v in f.box], float(f.score),
                           np.asarray(f.landmarks, float).round(2).tolist(), p)
            for f, p in zip(faces, probs)]


# ------------------------------------------------------------------ outputs
# ------------------------------------------------------------------ command
def predict_run(args, r) -> int:
    import cv2
    from tqdm import tqdm

    from data_prep.mtcnn import MTCNN

    from g2s_caffe.core import layout
    from g2s_caffe.core.device import select_device
    from g2s_caffe.methods.g2s.evaluate import nets_of_run

    select_device(args.gpu)
    size, schemes, quality = args.image_size, None, 95
    try:
        data = layout.open_prepared(Path(r.data))
        size, schemes = size or data.image_size, data.schemes
        quality = int(data.manifest.get("jpeg_quality", quality))
    except G2SError as e:
        if size is None:
            raise G2SError(f"{e}; or pass --image-size (240 for the paper's nets)") from None
        print(f"note: the run's prepared data is not here ({e}); crops at --image-size {size}, "
              f"JPEG quality {quality}, only the schemes the nets use")
    predictor = Predictor(nets_of_run(r), size, schemes, quality)
    detector = MTCNN(gpu=args.gpu)   # on the attribute nets' device (Caffe's mode is per thread)
    for path in tqdm(args.images, desc="predict", unit="img", disable=len(args.images) < 2):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise G2SError(f"{path}: not a readable image")
        faces = detector.detect(img)
        preds = predict_image(img, faces, predictor)
        print(format_table(str(path), preds), end="")
        files = write_outputs(path, img, preds, args.out, r.run)
        print(f"  wrote {', '.join(str(f) for f in files)}")
    return 0
