"""Run LNets on images: the preprocessing both stages share, one deploy net -> its averaged C5
response map over the image, and the cascade LNet_o -> LNet_s -> face window (§2.1, Fig. 2).

    o = LNet(prototxt/celeba/lnets/lnet_o_deploy.prototxt, "lnet_o.caffemodel", FULL_LNET)
    s = LNet(prototxt/celeba/lnets/lnet_s_deploy.prototxt, "lnet_s.caffemodel", FULL_LNET)
    cascade = LNetsCascade(o, s, threshold=t)
    result = cascade.face(img_bgr)          # result.face.box: [x1, y1, x2, y2) or None ("no face")
    patch, hs = cascade.head_shoulder_crop(img_bgr)   # LNet_s's training input (data.py)

Inputs.  LNet_o sees the whole image resized so that its longer side is ``shape.input_size``
(the scale of its letterboxed training images, ``letterbox``), not padded at test (the deploy
net takes any size; images too small for a map are padded up with the mean colour).  LNet_s
sees the head-shoulder region: LNet_o's box made square around its centre and enlarged
(``square_box``, params.HEAD_SHOULDER_MARGIN), cropped (pixels outside the image: the mean
colour) and resized to ``input_size`` (227: the paper).  Every
response map carries its cells' image coordinates (localize.ResponseMap), so windows come out
in the original image's pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from g2s_caffe.core.errors import G2SError
from g2s_caffe.methods.lnets import params as hp
from g2s_caffe.methods.lnets.localize import (FACE_BOX, LNET_O_BOX, Affine, BoxShape, Geometry, Localization,
                                              ResponseMap, localize, refine)


# ---------------------------------------------------------------- preprocessing
def as_bgr(img, where: str = "image") -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 2:
        a = cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise G2SError(f"{where}: expected an H x W x 3 BGR image, got shape {a.shape}")
    if a.shape[2] == 4:
        a = a[:, :, :3]
    if a.dtype != np.uint8:
        raise G2SError(f"{where}: expected 8-bit pixels, got {a.dtype}")
    return np.ascontiguousarray(a)


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    shrink = w * h < img.shape[0] * img.shape[1]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def resize_longer(img: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """The image with its longer side ``size`` (aspect kept) and the factor image px / new px."""
    h, w = img.shape[:2]
    f = size / max(h, w)
    nw, nh = max(1, round(w * f)), max(1, round(h * f))
    return _resize(img, nw, nh), max(h, w) / size


def letterbox(img, size: int, fill=hp.PAD_BGR) -> tuple[np.ndarray, Affine]:
    """LNet_o's training input: the longer side resized to ``size``, centred on a size x size
    canvas of ``fill``; and the mapping canvas px -> image px."""
    img = as_bgr(img)
    small, _ = resize_longer(img, size)
    canvas = np.empty((size, size, 3), np.uint8)
    canvas[:] = np.asarray(fill, np.uint8)
    h, w = small.shape[:2]
    y, x = (size - h) // 2, (size - w) // 2
    canvas[y:y + h, x:x + w] = small
    fx, fy = img.shape[1] / w, img.shape[0] / h          # canvas px u -> image px (u - x) * fx
    return canvas, Affine(fx, fy, -x * fx, -y * fy)


def square_box(box, margin: float = hp.HEAD_SHOULDER_MARGIN) -> tuple[float, float, float, float]:
    """The square around ``box``'s centre with side max(width, height) * (1 + 2 margin)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 1.0) * (1 + 2 * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def crop(img, box, size: int, fill=hp.PAD_BGR) -> tuple[np.ndarray, Affine]:
    """``box`` (any, in image px) resized to size x size, outside pixels ``fill``; and the
    mapping patch px -> image px."""
    img = as_bgr(img)
    x1, y1, x2, y2 = (float(v) for v in box)
    sx, sy = (x2 - x1) / size, (y2 - y1) / size
    if not (sx > 0 and sy > 0):
        raise G2SError(f"crop of an empty box {box}")
    # patch pixel centre u + 0.5 samples image point x1 + (u + 0.5) * sx
    m = np.array([[sx, 0, x1 + 0.5 * sx - 0.5], [0, sy, y1 + 0.5 * sy - 0.5]], np.float64)
    interp = cv2.INTER_AREA if max(sx, sy) > 1 else cv2.INTER_LINEAR
    if interp == cv2.INTER_AREA:   # warpAffine has no area filter: pre-shrink the source
        k = max(sx, sy)
        small = _resize(img, max(1, round(img.shape[1] / k)), max(1, round(img.shape[0] / k)))
        fx, fy = img.shape[1] / small.shape[1], img.shape[0] / small.shape[0]
        m = np.array([[sx / fx, 0, (x1 + 0.5 * sx) / fx - 0.5], [0, sy / fy, (y1 + 0.5 * sy) / fy - 0.5]])
        img = small
    patch = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(int(v) for v in fill))
    return patch, Affine(sx, sy, x1, y1)


def to_blob(img: np.ndarray, shape: hp.LNetShape) -> np.ndarray:
    """BGR uint8 (h, w, 3) -> (1, 3, h, w) float32 as the Data layers give it: (x - mean) * scale."""
    x = (img.astype(np.float32) - np.asarray(hp.IMAGENET_MEAN_BGR, np.float32)) * np.float32(shape.input_scale)
    return x.transpose(2, 0, 1)[None]


# ---------------------------------------------------------------- one net
class LNet:
    """A deploy net (nets.deploy_net) with its weights: image -> averaged C5 response map.

    ``weights=None`` keeps the fillers' random init (benchmarks, tests, `--weights none`)."""

    def __init__(self, deploy: Path, weights: Path | None, shape: hp.LNetShape, name: str = "lnet"):
        import caffe
        from caffe.proto import caffe_pb2

        from g2s_caffe.core.nets.protofiles import read_text_proto
        from g2s_caffe.methods.lnets.nets import set_response_weights

        self.deploy, self.weights, self.shape, self.name = Path(deploy), weights, shape, name
        net_param = read_text_proto(self.deploy, caffe_pb2.NetParameter())
        self.geometry = Geometry.from_net(net_param)
        if weights is not None and not Path(weights).is_file():
            raise G2SError(f"{weights}: no such {name} caffemodel (train LNets first, or pass the right path)")
        self.net = caffe.Net(str(self.deploy), caffe.TEST, **({"weights": str(weights)} if weights else {}))
        if hp.RESPONSE_BLOB not in self.net.blobs:
            raise G2SError(f"{deploy}: no {hp.RESPONSE_BLOB!r} output; not an LNet deploy net (run `g2s gen`)")
        widths = tuple(self.net.params[f"conv{i}"][0].data.shape[0] for i in range(1, hp.CONV_LAYERS + 1))
        if widths != tuple(shape.widths):
            raise G2SError(f"{deploy}: conv widths {widths}, but the {name} variant given has {shape.widths} "
                           "(its input size and scale would be wrong); pass the matching variant")
        set_response_weights(self.net)
        self.min_side = self.geometry.min_input_side(1)

    def values(self, net_input: np.ndarray) -> np.ndarray:
        """(h', w') response of one preprocessed BGR uint8 input."""
        blob = to_blob(net_input, self.shape)
        data = self.net.blobs["data"]
        if data.data.shape != blob.shape:
            data.reshape(*blob.shape)
            self.net.reshape()
        data.data[...] = blob
        out = self.net.forward()[hp.RESPONSE_BLOB]
        return np.array(out[0, 0], dtype=np.float64)

    def _padded(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        if h >= self.min_side and w >= self.min_side:
            return img
        out = np.empty((max(h, self.min_side), max(w, self.min_side), 3), np.uint8)
        out[:] = np.asarray(hp.PAD_BGR, np.uint8)
        out[:h, :w] = img
        return out

    def on_whole(self, img) -> ResponseMap:
        """LNet_o's view: the whole image at the training scale (module docstring)."""
        img = as_bgr(img, self.name)
        small, _ = resize_longer(img, self.shape.input_size)
        x = self._padded(small)
        to_image = Affine(img.shape[1] / small.shape[1], img.shape[0] / small.shape[0])
        return ResponseMap.from_net(self.values(x), self.geometry, x.shape[:2], to_image,
                                    (img.shape[1], img.shape[0]))

    def on_crop(self, img, box, margin: float = hp.HEAD_SHOULDER_MARGIN) -> tuple[ResponseMap, np.ndarray, Affine]:
        """LNet_s's view: ``box`` made square and enlarged by ``margin``, cropped, resized to
        input_size: (map in image coordinates, the patch, patch px -> image px)."""
        img = as_bgr(img, self.name)
        patch, to_image = crop(img, square_box(box, margin), self.shape.input_size)
        resp = ResponseMap.from_net(self.values(patch), self.geometry, patch.shape[:2], to_image,
                                    (img.shape[1], img.shape[0]))
        return resp, patch, to_image


# ---------------------------------------------------------------- the cascade
@dataclass(frozen=True, eq=False)
class CascadeResult:
    face: Localization              # the last stage's: face box in image px, or no face
    head_shoulder: Localization     # LNet_o's
    face_map: ResponseMap
    head_shoulder_map: ResponseMap


def head_shoulder_rule() -> dict:
    """The settings that make LNet_s's input region from LNet_o's map (a training image's)."""
    from dataclasses import asdict

    return {"lnet_o_box": asdict(LNET_O_BOX), "head_shoulder_margin": hp.HEAD_SHOULDER_MARGIN}


def cascade_rule() -> dict:
    """The settings that turn the cascade's maps into boxes and scores (for stage inputs and
    tags: results made under other settings are redone)."""
    from dataclasses import asdict

    return {**head_shoulder_rule(), "face_box": asdict(FACE_BOX), "second_net_weight": hp.SECOND_NET_WEIGHT,
            "score_size_exponent": hp.SCORE_SIZE_EXPONENT,
            "peaks": [hp.DENSITY_SIGMA_CELLS, hp.PEAK_MIN_DENSITY, hp.PEAK_MIN_SEPARATION, hp.POINT_MIN_DENSITY]}


class LNetsCascade:
    """LNet_o -> head-shoulder region -> LNet_s -> face box (``lnet_s=None``: LNet_o alone).

    ``threshold`` applies to the last stage's image score; None = every image holds a face.
    ``shapes``: how response mass becomes a box: LNet_o's alone (its box, the head-shoulder
    region's centre), both nets' pooled (the face, localize.refine)."""

    def __init__(self, lnet_o: LNet, lnet_s: LNet | None = None, threshold: float | None = None,
                 shapes: tuple[BoxShape, BoxShape] = (LNET_O_BOX, FACE_BOX)):
        self.lnet_o, self.lnet_s, self.threshold, self.shapes = lnet_o, lnet_s, threshold, shapes

    def head_shoulder(self, img, prune: bool = False, where: str = "image") -> tuple[Localization, ResponseMap]:
        """LNet_o's box (no threshold: it only proposes where LNet_s looks)."""
        resp = self.lnet_o.on_whole(img)
        return localize(resp, self.shapes[0], None, prune, where), resp

    def head_shoulder_crop(self, img, where: str = "image") -> tuple[np.ndarray, Localization]:
        """LNet_s's input for a training image (each holds one face: no pruning, as §2.1
        trains): the square head-shoulder patch, input_size x input_size."""
        if self.lnet_s is None:
            raise G2SError("head_shoulder_crop needs LNet_s's shape: build the cascade with lnet_s")
        hs, _ = self.head_shoulder(img, prune=False, where=where)
        patch, _ = crop(as_bgr(img, where), square_box(hs.window), self.lnet_s.shape.input_size)
        return patch, hs

    def face(self, img, prune: bool = True, where: str = "image") -> CascadeResult:
        """Test time: LNet_o (with density-peak pruning: one face per head-shoulder region),
        then LNet_s on that region; the face box and score in image coordinates, "no face"
        below the threshold."""
        hs, hs_map = self.head_shoulder(img, prune=prune, where=where)
        if self.lnet_s is None:
            return CascadeResult(localize(hs_map, self.shapes[0], self.threshold, prune, where), hs, hs_map, hs_map)
        resp, _, _ = self.lnet_s.on_crop(img, hs.window)
        return CascadeResult(refine(hs, hs_map, resp, self.shapes[1], self.threshold, where), hs, resp, hs_map)

    def max_score(self, img, where: str = "image") -> float:
        """An image's score for threshold selection (the last stage's face box's)."""
        return self.face(img, where=where).face.score
