"""Localization from an LNet's averaged C5 response map (§2.1, Fig. 3): pure numpy/scipy.

    geometry = Geometry.from_net(deploy_net_param)        # receptive-field centres, from the layers
    resp = ResponseMap.from_net(values, geometry, (h_in, w_in), to_image, (W, H))
    loc = localize(resp, LNET_O_BOX, threshold=t)          # -> Localization (box or "no face", score)
    face = refine(loc, resp, lnet_s_resp, FACE_BOX, t)     # the cascade: LNet_s's mass joins LNet_o's
    choice = select_threshold(face_max_scores, background_max_scores); plot_threshold(..., png)

Geometry.  Each C5 cell has a receptive-field centre ``offset + stride * i`` (input pixel index),
composed from every convolution and pooling layer's kernel, stride, pad and dilation (stride
16 and offset 17 for the AlexNet trunk; ``Geometry`` computes them, nothing is hard-coded).  A
cell represents the input pixels nearest its centre: cell i covers [e_i, e_{i+1}) with e_i the
midpoints between neighbouring centres, the first and last cell reaching the image border.
Map sizes follow Caffe's rounding (convolutions floor, pools ceil).

The box.  The box of the response's mass: each cell's response (above MASS_FLOOR x the
maximum) is mass spread evenly over the image area the cell represents; the box is centred on
the mass's centroid moved by a shift, its side a scale times twice the mass's spread (the
geometric mean over the two axes of the root of the mass-weighted positional variance), its
height / width the face's aspect (``BoxShape``; the constants per net in params.py, chosen on
the val split).  Sub-cell precise, and a small hot spot inside or below the face moves it
little.  Not the best of all grid windows by score (the rule before issue 23): that window
sits on the map's densest part, not around the face (params.py, docs/baseline.md).

The score.  The paper's window score of the box: the response inside it divided by (its area
in cells) ** SCORE_SIZE_EXPONENT ("no face" below the threshold).  The window set (every
rectangle of whole cells, scored exactly at once with an integral image) stays for measuring
the rule before.

The cascade (``refine``).  LNet_o's mass and LNet_s's (in the head-shoulder region) are pooled:
their centroids and spreads averaged, SECOND_NET_WEIGHT on LNet_s's; the face box is made from
the pooled moments, and its score is the sum of both maps' scores of that box.

Density peaks (Rodriguez & Laio 2014), at test only, on LNet_o's map: rho = the response
smoothed by a Gaussian, delta = distance to the nearest denser cell, gamma = rho * delta; peaks
have large rho and large delta.  With two or more peaks (several faces) the box's mass is cut
to the densest peak's cluster ("cropping the region with the highest density").

Threshold (Fig. 3(b)).  Each image is represented by its face's score; the threshold is the
cut that maximizes balanced accuracy between face and background images (midpoint cuts).
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from g2s_caffe.core.errors import G2SError
from g2s_caffe.methods.lnets import boxes as bx
from g2s_caffe.methods.lnets import params as hp

# Layers that keep the spatial size (and so the geometry) of their input.
SHAPE_PRESERVING = ("ReLU", "PReLU", "LRN", "Dropout", "BatchNorm", "Scale", "Sigmoid", "TanH", "Split")


# ---------------------------------------------------------------- geometry
@dataclass(frozen=True)
class Stage:
    """One spatial layer: Caffe's convolution (floor) or pooling (ceil) arithmetic."""
    kind: str           # "conv" | "pool"
    kernel: int
    stride: int = 1
    pad: int = 0
    dilation: int = 1

    @property
    def extent(self) -> int:
        return self.dilation * (self.kernel - 1) + 1

    def out_size(self, n: int) -> int:
        """Output side for input side ``n`` (0 = the layer has no output)."""
        span = n + 2 * self.pad - self.extent
        if n < 1 or span < (0 if self.kind == "conv" else -self.stride + 1):
            return 0
        if self.kind == "conv":
            return span // self.stride + 1
        out = math.ceil(span / self.stride) + 1                       # PoolingLayer::Reshape
        if self.pad and (out - 1) * self.stride >= n + self.pad:
            out -= 1
        return max(out, 0)


@dataclass(frozen=True)
class Geometry:
    """Where each cell of a response map sits in the net's input."""
    stages: tuple[Stage, ...]

    @property
    def stride(self) -> int:
        return int(np.prod([s.stride for s in self.stages], dtype=np.int64))

    @property
    def offset(self) -> float:
        """Receptive-field centre of cell 0, in input pixel indices (pixel centres are integers)."""
        off, step = 0.0, 1
        for s in self.stages:
            off += step * ((s.extent - 1) / 2 - s.pad)
            step *= s.stride
        return off

    @property
    def receptive_field(self) -> int:
        rf, step = 1, 1
        for s in self.stages:
            rf += (s.extent - 1) * step
            step *= s.stride
        return rf

    def map_size(self, side: int) -> int:
        for s in self.stages:
            side = s.out_size(side)
        return side

    def min_input_side(self, cells: int = 1) -> int:
        """The smallest input side whose map has at least ``cells`` cells per side."""
        side = 1
        while self.map_size(side) < cells:
            side += 1
            if side > 1 << 16:
                raise G2SError(f"no input side up to {1 << 16} px gives a {cells}-cell map")
        return side

    def cell_edges(self, cells: int, side: int) -> np.ndarray:
        """(cells + 1,) boundaries, in continuous input coordinates, of the pixels each cell
        represents: midpoints between neighbouring receptive-field centres, from 0 to ``side``."""
        centres = self.offset + 0.5 + self.stride * np.arange(cells, dtype=np.float64)
        edges = np.concatenate([[0.0], (centres[:-1] + centres[1:]) / 2, [float(side)]])
        return np.maximum.accumulate(np.clip(edges, 0.0, float(side)))

    @classmethod
    def from_net(cls, net, top: str = hp.RESPONSE_LAYER) -> "Geometry":
        """From a caffe_pb2.NetParameter (a chain from the input to layer ``top``)."""
        stages = []
        for layer in net.layer:
            if layer.type == "Convolution":
                p = layer.convolution_param
                stages.append(Stage("conv", _square(layer, list(p.kernel_size), p.kernel_h, p.kernel_w),
                                    _one(layer, p.stride, p.stride_h, p.stride_w, 1),
                                    _one(layer, p.pad, p.pad_h, p.pad_w, 0),
                                    _one(layer, p.dilation, 0, 0, 1)))
            elif layer.type == "Pooling":
                p = layer.pooling_param
                if p.global_pooling:
                    raise G2SError(f"layer {layer.name}: global pooling before {top!r} leaves no map")
                stages.append(Stage("pool", _square(layer, [p.kernel_size] if p.kernel_size else [],
                                                    p.kernel_h, p.kernel_w),
                                    _one(layer, [p.stride] if p.HasField("stride") else [], p.stride_h,
                                         p.stride_w, 1),
                                    _one(layer, [p.pad] if p.pad else [], p.pad_h, p.pad_w, 0)))
            elif layer.type not in SHAPE_PRESERVING + ("Input", "Data"):
                raise G2SError(f"layer {layer.name} ({layer.type}) before {top!r}: not a layer whose "
                               "geometry is known (convolution, pooling, or size-preserving)")
            if layer.name == top:
                return cls(tuple(stages))
        raise G2SError(f"net {net.name!r} has no layer {top!r}")


def _square(layer, values: list[int], h: int, w: int) -> int:
    if h or w:
        values = [h, w]
    if not values or len(set(values)) != 1:
        raise G2SError(f"layer {layer.name}: kernel {values or 'unset'}; the geometry needs square kernels")
    return int(values[0])


def _one(layer, values, h: int, w: int, default: int) -> int:
    values = [h, w] if (h or w) else list(values)
    if not values:
        return default
    if len(set(values)) != 1:
        raise G2SError(f"layer {layer.name}: different values per axis {values}; the geometry needs them equal")
    return int(values[0])


@dataclass(frozen=True)
class Affine:
    """Net-input pixels -> image pixels, per axis: image = input * scale + shift."""
    scale_x: float = 1.0
    scale_y: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0

    def boxes(self, b) -> np.ndarray:
        b = bx.as_boxes(b).copy()
        b[:, [0, 2]] = b[:, [0, 2]] * self.scale_x + self.shift_x
        b[:, [1, 3]] = b[:, [1, 3]] * self.scale_y + self.shift_y
        return b

    def then(self, outer: "Affine") -> "Affine":
        """This mapping followed by ``outer`` (e.g. crop -> image after net input -> crop)."""
        return Affine(self.scale_x * outer.scale_x, self.scale_y * outer.scale_y,
                      self.shift_x * outer.scale_x + outer.shift_x, self.shift_y * outer.scale_y + outer.shift_y)


# ---------------------------------------------------------------- the response map
@dataclass(frozen=True, eq=False)
class ResponseMap:
    """An averaged C5 response map and the image area of each of its cells.

    values: (h, w) float; x_edges (w + 1,), y_edges (h + 1,): cell boundaries in the image's
    continuous pixel coordinates; image_size: (width, height) of that image."""
    values: np.ndarray
    x_edges: np.ndarray
    y_edges: np.ndarray
    image_size: tuple[int, int]

    def __post_init__(self):
        v = np.asarray(self.values)
        if v.ndim != 2 or v.shape[0] < 1 or v.shape[1] < 1:
            raise G2SError(f"a response map must be 2-D and non-empty, got shape {v.shape}")
        if len(self.x_edges) != v.shape[1] + 1 or len(self.y_edges) != v.shape[0] + 1:
            raise G2SError(f"response map {v.shape}: {len(self.x_edges)} x edges / {len(self.y_edges)} y edges")

    @classmethod
    def from_net(cls, values, geometry: Geometry, input_hw: tuple[int, int], to_image: Affine,
                 image_size: tuple[int, int]) -> "ResponseMap":
        """``values`` (h, w) computed on a net input of ``input_hw`` pixels; ``to_image`` maps
        net-input pixels to the image of ``image_size`` (width, height)."""
        v = np.asarray(values, dtype=np.float64)
        v = v.reshape(v.shape[-2:])
        xe = geometry.cell_edges(v.shape[1], input_hw[1]) * to_image.scale_x + to_image.shift_x
        ye = geometry.cell_edges(v.shape[0], input_hw[0]) * to_image.scale_y + to_image.shift_y
        return cls(v, xe, ye, (int(image_size[0]), int(image_size[1])))

    @classmethod
    def uniform(cls, values, image_size: tuple[int, int]) -> "ResponseMap":
        """A map whose cells tile the image evenly (synthetic maps, tests)."""
        v = np.asarray(values, dtype=np.float64)
        w, h = image_size
        return cls(v, np.linspace(0, w, v.shape[1] + 1), np.linspace(0, h, v.shape[0] + 1), (int(w), int(h)))

    def boxes(self, cells) -> np.ndarray:
        """(K, 4) image boxes [x1, y1, x2, y2) of windows given as cell ranges [r0, c0, r1, c1)."""
        c = np.asarray(cells, dtype=np.int64).reshape(-1, 4)
        out = np.stack([self.x_edges[c[:, 1]], self.y_edges[c[:, 0]], self.x_edges[c[:, 3]],
                        self.y_edges[c[:, 2]]], axis=1)
        return bx.clip_boxes(out, *self.image_size)


# ---------------------------------------------------------------- the window set
# Every rectangle of whole cells, scored exactly at once: the rule before issue 23 took the
# best-scored one as the box.  Kept for what measures that rule and the window set's ceiling
# (bench/bench_lnet_boxes.py, bench/bench_lnet_windows.py).
@dataclass(frozen=True)
class WindowParams:
    min_cells: int = hp.WINDOW_MIN_CELLS
    aspect_range: tuple[float, float] = hp.WINDOW_ASPECT_RANGE
    size_exponent: float = hp.SCORE_SIZE_EXPONENT


@lru_cache(maxsize=64)
def _grid_windows(h: int, w: int, min_cells: int, lo: float, hi: float) -> np.ndarray:
    min_h, min_w = min(min_cells, h), min(min_cells, w)     # tiny maps: the whole map at least
    r0, r1 = np.triu_indices(h + 1, 1)
    c0, c1 = np.triu_indices(w + 1, 1)
    rows = np.stack([r0, r1], 1)[(r1 - r0) >= min_h]
    cols = np.stack([c0, c1], 1)[(c1 - c0) >= min_w]
    ri, ci = np.meshgrid(np.arange(len(rows)), np.arange(len(cols)), indexing="ij")
    ri, ci = ri.ravel(), ci.ravel()
    height = (rows[ri, 1] - rows[ri, 0]).astype(np.float64)
    width = (cols[ci, 1] - cols[ci, 0]).astype(np.float64)
    ok = (height >= lo * width - 1e-9) & (height <= hi * width + 1e-9)
    if not ok.any():
        return np.array([[0, 0, h, w]], dtype=np.int64)
    win = np.stack([rows[ri, 0], cols[ci, 0], rows[ri, 1], cols[ci, 1]], 1)[ok]
    win.setflags(write=False)
    return win


def grid_windows(h: int, w: int, params: WindowParams = WindowParams()) -> np.ndarray:
    """Every candidate window of an h x w map: (K, 4) int [r0, c0, r1, c1) cell ranges."""
    lo, hi = params.aspect_range
    if params.min_cells < 1 or not 0 < lo <= hi:
        raise G2SError(f"window parameters {params}: need min_cells >= 1 and 0 < aspect min <= max")
    return _grid_windows(int(h), int(w), int(params.min_cells), float(lo), float(hi))


def window_sums(values, windows) -> np.ndarray:
    """Exact sums of ``values`` over every window, by one integral image."""
    v = np.asarray(values, dtype=np.float64)
    s = np.zeros((v.shape[0] + 1, v.shape[1] + 1))
    s[1:, 1:] = v.cumsum(0).cumsum(1)
    r0, c0, r1, c1 = np.asarray(windows).T
    return s[r1, c1] - s[r0, c1] - s[r1, c0] + s[r0, c0]


def window_scores(values, windows, size_exponent: float = hp.SCORE_SIZE_EXPONENT) -> np.ndarray:
    """Sum of the response inside / (area in cells) ** size_exponent (module docstring)."""
    w = np.asarray(windows)
    area = ((w[:, 2] - w[:, 0]) * (w[:, 3] - w[:, 1])).astype(np.float64)
    return window_sums(values, w) / area ** size_exponent


# ---------------------------------------------------------------- density peaks
@dataclass(frozen=True, eq=False)
class DensityPeaks:
    """The decision-graph quantities on a map (cells with rho < POINT_MIN_DENSITY * max are not
    points: rho is kept, delta and gamma are 0 and their label is -1)."""
    rho: np.ndarray         # (h, w) density: the response smoothed by a Gaussian
    delta: np.ndarray       # (h, w) distance (cells) to the nearest point of higher density
    gamma: np.ndarray       # (h, w) rho / max rho * delta
    peaks: list[tuple[int, int]]    # (row, col), densest first
    labels: np.ndarray      # (h, w) index into ``peaks`` of each point's cluster, -1 elsewhere


def density_peaks(values, sigma: float = hp.DENSITY_SIGMA_CELLS, min_density: float = hp.PEAK_MIN_DENSITY,
                  min_separation: float = hp.PEAK_MIN_SEPARATION,
                  point_min: float = hp.POINT_MIN_DENSITY) -> DensityPeaks:
    from scipy.ndimage import gaussian_filter

    v = np.clip(np.asarray(values, dtype=np.float64), 0, None)
    rho = gaussian_filter(v, sigma, mode="constant") if sigma > 0 else v.copy()
    h, w = rho.shape
    delta, gamma = np.zeros_like(rho), np.zeros_like(rho)
    labels = np.full(rho.shape, -1, dtype=np.int64)
    top = rho.max() if rho.size else 0.0
    if not top > 0:
        return DensityPeaks(rho, delta, gamma, [], labels)
    flat = rho.ravel()
    points = np.flatnonzero(flat >= point_min * top)
    order = points[np.lexsort((points, -flat[points]))]      # densest first, ties by position
    yx = np.stack(np.unravel_index(order, rho.shape), 1).astype(np.float64)
    dist = np.sqrt(((yx[:, None, :] - yx[None, :, :]) ** 2).sum(-1))
    nearest = np.zeros(len(order), dtype=np.int64)
    d = np.zeros(len(order))
    d[0] = dist[0].max()                                     # R&L: the densest point's delta
    for k in range(1, len(order)):
        j = int(np.argmin(dist[k, :k]))
        nearest[k], d[k] = j, dist[k, j]
    is_peak = (flat[order] >= min_density * top) & (d >= min_separation)
    is_peak[0] = True
    cluster = np.full(len(order), -1, dtype=np.int64)
    peaks = []
    for k in range(len(order)):                              # R&L's assignment, densest first
        if is_peak[k]:
            cluster[k] = len(peaks)
            peaks.append((int(yx[k, 0]), int(yx[k, 1])))
        else:
            cluster[k] = cluster[nearest[k]]
    delta.ravel()[order] = d
    gamma.ravel()[order] = flat[order] / top * d
    labels.ravel()[order] = cluster
    return DensityPeaks(rho, delta, gamma, peaks, labels)


# ---------------------------------------------------------------- the box of the response's mass
@dataclass(frozen=True)
class BoxShape:
    """How a map's response mass becomes a box (module docstring): centred on the mass's
    centroid moved by ``shift`` (fractions of the box's width and height), its side ``scale``
    times twice the mass's spread, height / width ``aspect``; cells below ``floor`` x the map's
    maximum carry no mass."""
    scale: float
    aspect: float
    shift: tuple[float, float] = (0.0, 0.0)
    floor: float = hp.MASS_FLOOR

    def __post_init__(self):
        if not (self.scale > 0 and self.aspect > 0 and 0 <= self.floor < 1):
            raise G2SError(f"box shape {self}: need scale > 0, aspect > 0 and 0 <= floor < 1")


LNET_O_BOX = BoxShape(hp.LNET_O_BOX_SCALE, hp.FACE_BOX_ASPECT, hp.LNET_O_BOX_SHIFT)   # the face as LNet_o sees it
FACE_BOX = BoxShape(hp.FACE_BOX_SCALE, hp.FACE_BOX_ASPECT, hp.FACE_BOX_SHIFT)   # the cascade's (both nets' mass)


def response_mass(values, floor: float = hp.MASS_FLOOR) -> np.ndarray:
    """Each cell's mass: its response above ``floor`` x the map's maximum (0 elsewhere)."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0, None)
    return np.clip(v - floor * v.max(), 0, None) if v.size else v


def mass_moments(resp: ResponseMap, mass) -> tuple[float, float, float]:
    """(centroid x, centroid y, spread) of per-cell ``mass`` in image coordinates: each cell's
    mass spread evenly over the image area it represents; the spread is the geometric mean over
    the two axes of the root of the mass-weighted positional variance.  A map without mass
    counts as uniform (its whole area's moments)."""
    m = np.asarray(mass, dtype=np.float64)
    if not m.sum() > 0:
        m = np.ones(m.shape)
    centre, spread = [], []
    for edges, weights in ((resp.x_edges, m.sum(0)), (resp.y_edges, m.sum(1))):
        lo, hi = edges[:-1], edges[1:]
        w = weights * (hi - lo)                         # mass per unit length x the cell's length
        if not w.sum() > 0:                             # cells of zero length: their midpoints
            w = np.ones_like(w)
        mid = (lo + hi) / 2
        mean = float((w * mid).sum() / w.sum())
        centre.append(mean)
        spread.append(math.sqrt(float((w * ((mid - mean) ** 2 + (hi - lo) ** 2 / 12)).sum() / w.sum())))
    return centre[0], centre[1], math.sqrt(spread[0] * spread[1])


def shaped_box(cx: float, cy: float, size: float, shape: BoxShape) -> np.ndarray:
    """(4,) box of geometric size ``shape.scale * size`` and ``shape.aspect`` about (cx, cy),
    moved by ``shape.shift`` (fractions of its width and height); not clipped."""
    side = shape.scale * size
    bw, bh = side / math.sqrt(shape.aspect), side * math.sqrt(shape.aspect)
    cx, cy = cx + shape.shift[0] * bw, cy + shape.shift[1] * bh
    return np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])


def moments_box(resp: ResponseMap, moments, shape: BoxShape) -> np.ndarray:
    """(4,) image box [x1, y1, x2, y2) of mass ``moments`` (centroid x, y, spread): ``shape``
    about the centroid, its size twice the spread, clipped to ``resp``'s image."""
    cx, cy, spread = moments
    return bx.clip_boxes(shaped_box(cx, cy, 2 * spread, shape), *resp.image_size)[0]


def mass_box(resp: ResponseMap, shape: BoxShape, mass=None) -> np.ndarray:
    """The box of the response's mass (``mass``: per-cell weights; None = ``response_mass`` of
    the whole map)."""
    m = response_mass(resp.values, shape.floor) if mass is None else mass
    return moments_box(resp, mass_moments(resp, m), shape)


def box_score(resp: ResponseMap, box, exponent: float = hp.SCORE_SIZE_EXPONENT) -> float:
    """The paper's window score of ``box``: the response inside it (each cell counted by the
    share of its image area the box covers) over (the box's area in cells) ** exponent; 0 for
    a box that covers no cell."""
    x1, y1, x2, y2 = (float(v) for v in box)
    share = []
    for edges, lo, hi in ((resp.x_edges, x1, x2), (resp.y_edges, y1, y2)):
        size = np.diff(edges)
        inside = np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0, None)
        share.append(np.divide(inside, size, out=np.zeros_like(size), where=size > 0))
    cover = np.outer(share[1], share[0])
    cells = float(cover.sum())
    return float((np.asarray(resp.values, dtype=np.float64) * cover).sum() / cells ** exponent) if cells > 0 else 0.0


# ---------------------------------------------------------------- localization
@dataclass(frozen=True, eq=False)
class Localization:
    """What one response map says.

    window: the box of the response's mass (``mass_box``), in image coordinates, whether or not
    it passed the threshold (a training image's face); box: the same, or None for "no face".
    score: the image's score, the window's (``box_score``), compared with the threshold.
    moments: the mass's (centroid x, centroid y, spread) in image px (``mass_moments``) the
    window was made from.  peaks: the density peaks of the map (map (row, col), densest
    first); pruned: whether the mass was cut to the densest peak's cluster (several faces)."""
    box: tuple[float, float, float, float] | None
    window: tuple[float, float, float, float]
    score: float
    is_face: bool
    threshold: float | None
    moments: tuple[float, float, float]
    peaks: list[tuple[int, int]] = field(default_factory=list)
    pruned: bool = False


def _finite(resp: ResponseMap, where: str) -> np.ndarray:
    values = np.asarray(resp.values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise G2SError(f"{where}: the response map has non-finite values (broken weights?)")
    return values


def _decided(window, score: float, threshold: float | None, moments, peaks=(), pruned: bool = False) -> Localization:
    window = tuple(float(v) for v in window)
    is_face = threshold is None or score >= threshold
    return Localization(window if is_face else None, window, float(score), is_face, threshold,
                        tuple(float(v) for v in moments), list(peaks), pruned)


def localize(resp: ResponseMap, shape: BoxShape = LNET_O_BOX, threshold: float | None = None, prune: bool = True,
             where: str = "image") -> Localization:
    """The box of ``resp``'s response mass shaped by ``shape``; its score decides face / no
    face against ``threshold`` (None = always a face: training images, which each hold one
    face); ``prune`` (the test stage): with two or more density peaks the mass is cut to the
    densest peak's cluster."""
    values = _finite(resp, where)
    mass = response_mass(values, shape.floor)
    peaks, pruned = [], False
    if prune:
        found = density_peaks(values)
        peaks = found.peaks
        if len(peaks) >= 2:
            mass, pruned = np.where(found.labels == 0, mass, 0.0), True
    moments = mass_moments(resp, mass)
    window = moments_box(resp, moments, shape)
    return _decided(window, box_score(resp, window), threshold, moments, peaks, pruned)


def refine(first: Localization, first_map: ResponseMap, second_map: ResponseMap, shape: BoxShape = FACE_BOX,
           threshold: float | None = None, where: str = "image") -> Localization:
    """The cascade's face (LNet_s after LNet_o): the two maps' response masses pooled -- their
    centroids and spreads averaged, SECOND_NET_WEIGHT on ``second_map``'s -- make the box
    (``shape``), scored by both maps' response inside it (the sum of their ``box_score``s),
    which decides face / no face against ``threshold``.  ``first``'s peaks and pruning are
    kept (pruning is LNet_o's)."""
    second = mass_moments(second_map, response_mass(_finite(second_map, where), shape.floor))
    w = hp.SECOND_NET_WEIGHT
    pooled = tuple((1 - w) * a + w * b for a, b in zip(first.moments, second))
    window = moments_box(second_map, pooled, shape)
    score = box_score(first_map, window) + box_score(second_map, window)
    return _decided(window, score, threshold, pooled, first.peaks, first.pruned)


# ---------------------------------------------------------------- the threshold (Fig. 3(b))
@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    balanced_accuracy: float
    face_rate: float            # face images at or above the threshold
    background_rate: float      # background images below it
    faces: int
    backgrounds: int
    separable: bool
    rule: str = hp.THRESHOLD_RULE

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _scores(values, what: str) -> np.ndarray:
    s = np.asarray(values, dtype=np.float64).reshape(-1)
    if s.size == 0:
        raise G2SError(f"threshold selection needs {what} scores; got none")
    if not np.isfinite(s).all():
        raise G2SError(f"threshold selection: non-finite {what} score(s)")
    return s


def select_threshold(face_scores, background_scores) -> ThresholdChoice:
    """The cut between the two sets of image scores that maximizes balanced accuracy."""
    pos, neg = _scores(face_scores, "face-image"), _scores(background_scores, "background-image")
    u = np.unique(np.concatenate([pos, neg]))
    gap = (u[-1] - u[0]) if u.size > 1 else 1.0
    cuts = np.concatenate([[u[0] - gap], (u[:-1] + u[1:]) / 2, [u[-1] + gap]])
    pos_s, neg_s = np.sort(pos), np.sort(neg)
    tpr = 1 - np.searchsorted(pos_s, cuts, side="left") / pos.size     # score >= cut: face
    tnr = np.searchsorted(neg_s, cuts, side="left") / neg.size
    ba = (tpr + tnr) / 2
    best = np.flatnonzero(ba >= ba.max() - 1e-12)
    k = int(best[len(best) // 2])
    return ThresholdChoice(float(cuts[k]), float(ba[k]), float(tpr[k]), float(tnr[k]), int(pos.size),
                           int(neg.size), bool(pos.min() > neg.max()))


def plot_threshold(face_scores, background_scores, choice: ThresholdChoice, png: Path,
                   title: str = "LNets: the face's score per image") -> Path:
    """Fig. 3(b): histograms (percentage of images) of the face and background images' scores
    (the paper's "maximum score": here the face box's) and the chosen threshold, written
    atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from g2s_caffe.core.atomic import write_atomic

    pos, neg = _scores(face_scores, "face-image"), _scores(background_scores, "background-image")
    lo, hi = min(pos.min(), neg.min()), max(pos.max(), neg.max())
    bins = np.linspace(lo, hi if hi > lo else lo + 1, hp.HISTOGRAM_BINS + 1)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for s, label, colour in ((pos, f"Response on face images ({pos.size})", "tab:red"),
                             (neg, f"Response on background images ({neg.size})", "tab:blue")):
        ax.hist(s, bins=bins, weights=np.full(s.size, 100.0 / s.size), alpha=0.6, label=label, color=colour)
    ax.axvline(choice.threshold, color="k", linestyle="--",
               label=f"threshold {choice.threshold:.4g} (balanced accuracy {choice.balanced_accuracy:.3f})")
    ax.set_xlabel("Score of the face box")
    ax.set_ylabel("Percentage of images")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return write_atomic(Path(png), buf.getvalue())


# ---------------------------------------------------------------- pictures (Fig. 3(a), Fig. 6)
def render_response(image_bgr: np.ndarray, resp: ResponseMap, boxes=(), alpha: float = 0.5) -> np.ndarray:
    """The image with its averaged response map laid over it (each cell painted over the image
    area it represents, JET colours, 0 = blue, the map's maximum = red) and ``boxes`` drawn."""
    import cv2

    img = np.asarray(image_bgr)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    h, w = img.shape[:2]
    v = np.clip(resp.values, 0, None)
    v = v / v.max() if v.max() > 0 else v
    col = np.clip(np.searchsorted(resp.x_edges[1:-1], np.arange(w) + 0.5, side="right"), 0, v.shape[1] - 1)
    row = np.clip(np.searchsorted(resp.y_edges[1:-1], np.arange(h) + 0.5, side="right"), 0, v.shape[0] - 1)
    heat = cv2.applyColorMap(np.round(v[row][:, col] * 255).astype(np.uint8), cv2.COLORMAP_JET)
    out = cv2.addWeighted(img.astype(np.uint8), 1 - alpha, heat, alpha, 0)
    for b in bx.as_boxes(boxes):
        x1, y1, x2, y2 = (int(round(c)) for c in b)
        cv2.rectangle(out, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), (255, 255, 255), 2)
    return out
