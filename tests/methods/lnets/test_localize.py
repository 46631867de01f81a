"""LNets' localization on response maps with known answers (no Caffe): exact window scores, the
best window (the image's score), the box of the response's mass (a hot spot inside or below
the face does not take it), density-peak pruning of two peaks, the face threshold, "no face",
the geometry arithmetic, the crops and their coordinate mappings."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from g2s_caffe.core.errors import G2SError
from g2s_caffe.methods.lnets import boxes as bx
from g2s_caffe.methods.lnets import localize as lz


# The moment-equivalent rectangle: a uniform rectangle of side L has spread L / sqrt(12), so
# scale sqrt(3) (side = sqrt(3) x 2 x spread) gives the rectangle itself.
EQUIVALENT = np.sqrt(3.0)


def _gauss(h, w, centre, sigma, height=1.0):
    yy, xx = np.mgrid[0:h, 0:w]
    return height * np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * sigma ** 2))


# ---------------------------------------------------------------- window scores
def test_integral_image_sums_are_exact_for_every_window():
    rng = np.random.default_rng(3)
    v = rng.random((6, 7))
    windows = lz.grid_windows(6, 7, lz.WindowParams(min_cells=1, aspect_range=(0.01, 100)))
    assert len(windows) == (6 * 7 // 2) * (7 * 8 // 2)             # every rectangle of cells
    brute = np.array([v[r0:r1, c0:c1].sum() for r0, c0, r1, c1 in windows])
    assert np.allclose(lz.window_sums(v, windows), brute, rtol=0, atol=1e-12)
    area = np.array([(r1 - r0) * (c1 - c0) for r0, c0, r1, c1 in windows])
    assert np.allclose(lz.window_scores(v, windows, 0.5), brute / np.sqrt(area))


def test_window_set_respects_size_and_aspect():
    w = lz.grid_windows(13, 13)
    h_cells, w_cells = w[:, 2] - w[:, 0], w[:, 3] - w[:, 1]
    assert h_cells.min() == w_cells.min() == 2                       # WINDOW_MIN_CELLS
    ratio = h_cells / w_cells
    assert ratio.min() == pytest.approx(0.5) and ratio.max() == pytest.approx(2.0)
    assert ((w[:, :2] >= 0) & (w[:, 2:] <= 13)).all()
    # a map too small for the minimum still has a window: the whole map
    assert lz.grid_windows(1, 1).tolist() == [[0, 0, 1, 1]]
    assert lz.grid_windows(1, 9).tolist() and all(r == [0, r[1], 1, r[3]] for r in lz.grid_windows(1, 9).tolist())


def _best_scored(values, exponent=lz.hp.SCORE_SIZE_EXPONENT):
    """The rule before issue 23: the grid window of the highest score."""
    windows = lz.grid_windows(*np.shape(values))
    return tuple(int(c) for c in windows[int(np.argmax(lz.window_scores(values, windows, exponent)))])


def test_best_window_of_a_uniform_block_is_the_block():
    v = np.zeros((13, 13))
    v[3:8, 4:10] = 1.0                 # 5 x 6 cells of response 1
    assert _best_scored(v) == (3, 4, 8, 10)
    resp = lz.ResponseMap.uniform(v, (208, 208))                     # 16 px per cell
    assert tuple(resp.boxes([(3, 4, 8, 10)])[0]) == (64.0, 48.0, 160.0, 128.0)
    # why not the plain mean (exponent 1): every sub-window of the block ties, the smallest wins
    r0, c0, r1, c1 = _best_scored(v, 1.0)
    assert (r1 - r0) * (c1 - c0) == 4


def test_box_score_counts_the_share_of_each_cell_the_box_covers():
    v = np.zeros((13, 13))
    v[3:8, 4:10] = 1.0
    resp = lz.ResponseMap.uniform(v, (208, 208))
    assert lz.box_score(resp, (64, 48, 160, 128)) == pytest.approx(30 / np.sqrt(30))   # the block
    # half a cell more on the right: 2.5 more cells, none of them responding
    assert lz.box_score(resp, (64, 48, 168, 128)) == pytest.approx(30 / np.sqrt(32.5))
    # a quarter of one responding cell
    assert lz.box_score(resp, (64, 48, 72, 56)) == pytest.approx(0.25 / np.sqrt(0.25))
    assert lz.box_score(resp, (300, 300, 400, 400)) == 0.0            # outside the map
    loc = lz.localize(resp, lz.BoxShape(EQUIVALENT, 1.2))
    assert loc.score == pytest.approx(lz.box_score(resp, loc.window)) and loc.is_face and not loc.pruned


def _face_map(spot: str):
    """A 16 x 16 map (16 px cells, 256 x 256 image): a face-shaped blob (6 rows x 5 columns of
    response 1, the face box below) and a small hotter spot, an attribute: a 2 x 3 strip
    across the eyes inside the face (4x), or a 2 x 2 tie below it (5x)."""
    v = np.zeros((16, 16))
    v[4:10, 5:10] = 1.0
    if spot == "inside":
        v[5:7, 6:9], spot_cells = 4.0, (5, 6, 7, 9)
    else:
        v[10:12, 6:8], spot_cells = 5.0, (10, 6, 12, 8)
    return lz.ResponseMap.uniform(v, (256, 256)), np.array([80.0, 64.0, 160.0, 160.0]), spot_cells


@pytest.mark.parametrize("spot", ["inside", "below"])
def test_a_hot_spot_inside_or_below_the_face_does_not_take_the_box(spot):
    """Issue 23's failure and its fix: the best-scored window sits on the small hotter spot
    (the eyes' strip, the tie), the box of the response's mass stays on the face."""
    resp, face, spot_cells = _face_map(spot)
    shape = lz.BoxShape(EQUIVALENT, 1.2)                             # the blob's height / width
    loc = lz.localize(resp, shape, prune=False)
    spot_box = resp.boxes([spot_cells])
    assert _best_scored(resp.values) == spot_cells                   # the old answer: the spot
    window = np.array([loc.window])
    on_face, on_spot = bx.iou_matrix(window, face[None])[0, 0], bx.iou_matrix(window, spot_box)[0, 0]
    assert on_face >= 0.5 and on_face > 2 * on_spot                  # the mass box: the face
    cx, cy = (window[0, :2] + window[0, 2:]) / 2
    assert face[0] < cx < face[2] and face[1] < cy < face[3]
    # without the spot: exactly the blob (centre, size and shape)
    v = np.zeros((16, 16))
    v[4:10, 5:10] = 1.0
    assert np.allclose(lz.localize(lz.ResponseMap.uniform(v, (256, 256)), shape).window, face)


def test_mass_box_shape_scale_aspect_shift_and_clipping():
    v = np.zeros((10, 10))
    v[2:6, 3:7] = 1.0                                                # 4 x 4 cells of 10 px: [30, 70) x [20, 60)
    resp = lz.ResponseMap.uniform(v, (100, 100))
    assert np.allclose(lz.mass_box(resp, lz.BoxShape(EQUIVALENT, 1.0)), [30, 20, 70, 60])
    # aspect 1.44 keeps the geometric size (40): width 40 / 1.2, height 40 x 1.2
    assert np.allclose(lz.mass_box(resp, lz.BoxShape(EQUIVALENT, 1.44)), [50 - 40 / 2.4, 40 - 24, 50 + 40 / 2.4, 64])
    # shift: fractions of the box's own width and height; scale: its size
    assert np.allclose(lz.mass_box(resp, lz.BoxShape(EQUIVALENT / 2, 1.0, (0.5, -0.25))), [50, 25, 70, 45])
    # at the border the box is clipped to the image
    edge = np.zeros((10, 10))
    edge[0:2, 0:2] = 1.0
    assert np.allclose(lz.mass_box(lz.ResponseMap.uniform(edge, (100, 100)), lz.BoxShape(2 * EQUIVALENT, 1.0)),
                       [0, 0, 30, 30])
    # the floor: response below floor x max carries no mass (a background of 0.25 is ignored at 0.3)
    bg = np.where(v > 0, 1.0, 0.25)
    assert np.allclose(lz.mass_box(lz.ResponseMap.uniform(bg, (100, 100)), lz.BoxShape(EQUIVALENT, 1.0, floor=0.3)),
                       [30, 20, 70, 60])
    with pytest.raises(G2SError, match="need scale > 0"):
        lz.BoxShape(0.0, 1.0)


def test_mass_box_is_sub_cell_precise_on_a_blob_plus_noise():
    rng = np.random.default_rng(0)
    centre = (6.3, 10.6)                                             # between cells
    v = _gauss(18, 18, centre, 1.5) + 0.02 * rng.random((18, 18))
    resp = lz.ResponseMap.uniform(v, (360, 360))                     # 20 px per cell
    x1, y1, x2, y2 = lz.localize(resp, lz.BoxShape(1.0, 1.0, floor=0.1)).window
    # cell i covers [20 i, 20 i + 20): the blob's centre is at (20 * 10.6 + 10, 20 * 6.3 + 10)
    assert (x1 + x2) / 2 == pytest.approx(222, abs=3) and (y1 + y2) / 2 == pytest.approx(136, abs=3)


def test_refine_moves_the_first_box_towards_the_second_maps_and_scores_both():
    """The cascade's face: the two maps' masses pooled, SECOND_NET_WEIGHT on the second; here two
    equal squares, so the box lies that fraction of the way from the first's to the second's."""
    shape = lz.BoxShape(EQUIVALENT, 1.0)
    first_v, second_v = np.zeros((10, 10)), np.zeros((10, 10))
    first_v[2:6, 2:6], second_v[4:8, 4:8] = 1.0, 2.0                 # [20, 60) and [40, 80) squares
    first_map, second_map = lz.ResponseMap.uniform(first_v, (100, 100)), lz.ResponseMap.uniform(second_v, (100, 100))
    first = lz.localize(first_map, shape)
    assert np.allclose(first.window, [20, 20, 60, 60])
    w = lz.hp.SECOND_NET_WEIGHT
    face = lz.refine(first, first_map, second_map, shape)
    assert np.allclose(face.window, (1 - w) * np.array([20, 20, 60, 60]) + w * np.array([40, 40, 80, 80]))
    both = lz.box_score(first_map, face.window) + lz.box_score(second_map, face.window)
    assert face.score == pytest.approx(both) and face.is_face and face.box == face.window
    below = lz.refine(first, first_map, second_map, shape, threshold=both + 1e-9)
    assert below.box is None and not below.is_face and below.window == face.window
    with pytest.raises(G2SError, match="x.jpg: the response map has non-finite"):
        lz.refine(first, first_map, lz.ResponseMap.uniform(np.full((10, 10), np.inf), (100, 100)), shape, where="x.jpg")


# ---------------------------------------------------------------- density peaks
def test_density_peaks_separate_two_synthetic_peaks():
    v = _gauss(13, 13, (6, 3), 1.2, 1.0) + _gauss(13, 13, (6, 10), 1.2, 0.8)
    found = lz.density_peaks(v, min_density=0.35, min_separation=3.0)
    assert found.peaks == [(6, 3), (6, 10)]                          # densest first
    assert found.labels[6, 1] == 0 and found.labels[6, 12] == 1      # each blob its own cluster
    # delta: distance to the nearest denser cell (on the first blob's flank), brute force
    denser = np.argwhere(found.rho > found.rho[6, 10])
    want = np.sqrt(((denser - [6, 10]) ** 2).sum(1)).min()
    assert found.delta[6, 10] == pytest.approx(want) and want >= 3
    assert found.gamma[6, 10] == pytest.approx(found.rho[6, 10] / found.rho.max() * want)
    # not peaks: a neighbour of the densest cell has delta 1
    assert found.delta[6, 4] == pytest.approx(1.0)


def test_pruning_cuts_a_two_face_map_to_the_densest_peak():
    v = _gauss(13, 13, (6, 3), 1.2, 1.0) + _gauss(13, 13, (6, 9), 1.2, 0.9)
    resp = lz.ResponseMap.uniform(v, (208, 208))
    shape = lz.BoxShape(1.0, 1.0)
    centre_x = lambda loc: (loc.window[0] + loc.window[2]) / 2
    both = lz.localize(resp, shape, prune=False)
    assert 5 * 16 < centre_x(both) < 8 * 16                          # between the two faces (x 56, 152)
    loc = lz.localize(resp, shape)
    assert loc.pruned and loc.peaks == [(6, 3), (6, 9)]
    assert centre_x(loc) == pytest.approx(3 * 16 + 8, abs=6)         # the stronger face alone
    assert loc.window[2] < 6 * 16
    assert loc.score == pytest.approx(lz.box_score(resp, loc.window))
    assert loc.score > both.score                                    # the face alone scores higher
    assert loc.box == loc.window


def test_one_peak_is_not_pruned():
    rng = np.random.default_rng(1)
    v = _gauss(13, 13, (5, 6), 1.5) + 0.03 * rng.random((13, 13))
    loc = lz.localize(lz.ResponseMap.uniform(v, (208, 208)))
    assert len(loc.peaks) == 1 and not loc.pruned


# ---------------------------------------------------------------- the threshold and "no face"
def test_threshold_on_a_separable_set_is_the_middle_of_the_gap(tmp_path):
    faces, backgrounds = [5.0, 6.5, 7.0, 9.0], [0.5, 1.0, 2.0, 3.0, 2.5]
    choice = lz.select_threshold(faces, backgrounds)
    assert choice.threshold == pytest.approx(4.0)                    # (3 + 5) / 2
    assert choice.balanced_accuracy == 1.0 and choice.separable
    assert (choice.faces, choice.backgrounds) == (4, 5)
    png = lz.plot_threshold(faces, backgrounds, choice, tmp_path / "threshold.png")
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 200 and img.std() > 10


def test_threshold_on_an_overlapping_set_maximizes_balanced_accuracy():
    # cuts between sorted scores 0 1 2 2.5 3 4 5: at 2.75 all backgrounds are below and
    # 3 of 4 faces above: (3/4 + 1) / 2 = 0.875, better than any other cut
    choice = lz.select_threshold([2, 3, 4, 5], [0, 1, 2.5])
    assert choice.threshold == pytest.approx(2.75)
    assert choice.balanced_accuracy == pytest.approx(0.875) and not choice.separable
    with pytest.raises(G2SError, match="background-image scores; got none"):
        lz.select_threshold([1.0], [])
    with pytest.raises(G2SError, match="non-finite"):
        lz.select_threshold([1.0, float("nan")], [0.0])


@pytest.mark.parametrize("shape", [(13, 13), (1, 1), (1, 7), (4, 2)])
def test_face_free_map_gives_no_face_never_a_crash(shape):
    """A fine-tuned LNet's map on a background is near zero (Fig. 3(a.3)); ReLU maps can be
    exactly zero, and tiny images give tiny maps."""
    choice = lz.select_threshold([3.0, 4.0], [0.0, 0.5])
    resp = lz.ResponseMap.uniform(np.zeros(shape), (100, 80))
    loc = lz.localize(resp, threshold=choice.threshold)
    assert loc.box is None and not loc.is_face and loc.score == 0.0
    assert len(loc.window) == 4                                      # still defined (training)
    assert lz.localize(resp).is_face                                 # no threshold: always a face


def test_broken_maps_are_clear_errors():
    with pytest.raises(G2SError, match="img_7.jpg: the response map has non-finite values"):
        lz.localize(lz.ResponseMap.uniform(np.full((3, 3), np.nan), (48, 48)), where="img_7.jpg")
    with pytest.raises(G2SError, match="2-D and non-empty"):
        lz.ResponseMap.uniform(np.zeros((0, 3)), (10, 10))


# ---------------------------------------------------------------- geometry, boxes, crops
def test_geometry_arithmetic_of_the_alexnet_trunk():
    # conv1 11/4, pool1 3/2, conv2 5 pad 2, pool2 3/2, conv3-5 3 pad 1 (BVLC AlexNet)
    g = lz.Geometry((lz.Stage("conv", 11, 4), lz.Stage("pool", 3, 2), lz.Stage("conv", 5, 1, 2),
                     lz.Stage("pool", 3, 2), lz.Stage("conv", 3, 1, 1), lz.Stage("conv", 3, 1, 1),
                     lz.Stage("conv", 3, 1, 1)))
    # centre of cell i: pool2 2i+1 -> conv2/pool1 input 2(2i+1)+1 -> conv1 input 4(4i+3)+5 = 16i+17
    assert (g.stride, g.offset, g.receptive_field) == (16, 17.0, 163)
    assert [g.map_size(s) for s in (227, 300, 163, 67)] == [13, 18, 9, 3]
    edges = g.cell_edges(13, 227)
    assert edges[0] == 0 and edges[-1] == 227 and edges[1] == pytest.approx(25.5)
    assert np.allclose(np.diff(edges[1:-1]), 16)


def test_iou():
    b = [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 0, 10]]
    assert bx.iou_matrix(b[:1], b[1:2])[0, 0] == pytest.approx(81 / 119)
    assert bx.iou_matrix(b[:1], b[2:]).tolist() == [[0.0, 0.0]]       # disjoint; empty box


def test_crop_and_letterbox_map_back_to_the_image():
    from g2s_caffe.methods.lnets import infer as li

    img = np.zeros((120, 200, 3), np.uint8)
    img[40:60, 150:170] = 255                                        # a white square
    patch, to_image = li.crop(img, (140, 30, 180, 70), 80)           # 2x enlargement
    ys, xs = np.nonzero(patch[:, :, 0] > 127)
    box = to_image.boxes([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]])[0]
    assert np.allclose(box, [150, 40, 170, 60], atol=1.0)
    patch, to_image = li.crop(img, (100, 0, 220, 120), 40)           # shrink 3x, partly outside
    assert tuple(patch[-1, -1]) == li.hp.PAD_BGR                     # outside: the mean colour
    ys, xs = np.nonzero(patch[:, :, 0] > 127)
    box = to_image.boxes([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]])[0]
    assert np.allclose(box, [150, 40, 170, 60], atol=3.0)
    canvas, to_image = li.letterbox(img, 100)                        # 200 x 120 -> 100 x 60, centred
    assert canvas.shape == (100, 100, 3) and tuple(canvas[0, 0]) == li.hp.PAD_BGR
    ys, xs = np.nonzero(canvas[:, :, 0] > 127)
    box = to_image.boxes([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]])[0]
    assert np.allclose(box, [150, 40, 170, 60], atol=2.0)
    assert li.square_box((10, 20, 30, 60), margin=0.0) == (0.0, 20.0, 40.0, 60.0)
    half = 20 * (1 + 2 * li.hp.HEAD_SHOULDER_MARGIN)                 # the head-shoulder region's
    assert li.square_box((10, 20, 30, 60)) == (20 - half, 40 - half, 20 + half, 40 + half)


def test_response_map_boxes_follow_the_cells_image_area():
    g = lz.Geometry((lz.Stage("conv", 11, 4), lz.Stage("pool", 3, 2), lz.Stage("conv", 5, 1, 2),
                     lz.Stage("pool", 3, 2), lz.Stage("conv", 3, 1, 1)))
    # a 227-px net input showing a 454 x 681 image at half size, shifted by 10 px
    resp = lz.ResponseMap.from_net(np.zeros((13, 13)), g, (227, 227), lz.Affine(2.0, 3.0, 10.0, 0.0), (464, 681))
    box = resp.boxes([[0, 0, 13, 13], [1, 1, 2, 2]])
    assert np.allclose(box[0], [10, 0, 464, 681])
    assert np.allclose(box[1], [25.5 * 2 + 10, 25.5 * 3, 41.5 * 2 + 10, 41.5 * 3])


def test_render_response_paints_the_peak_hot():
    v = np.zeros((4, 4))
    v[1, 2] = 1.0
    img = np.full((64, 64, 3), 128, np.uint8)
    out = lz.render_response(img, lz.ResponseMap.uniform(v, (64, 64)), boxes=[[0, 0, 16, 16]], alpha=1.0)
    assert out.shape == img.shape
    assert out[24, 40, 2] >= 120 and out[24, 40, :2].max() < 30      # JET's red at cell (1, 2)
    assert out[56, 8, 0] >= 120 and out[56, 8, 1:].max() < 30        # JET's blue where the map is 0
    assert tuple(out[0, 5]) == (255, 255, 255)                       # the box


def test_background_crops_stay_clear_of_the_face():
    from g2s_caffe.methods.lnets import backgrounds

    face = (150, 80, 250, 200)
    crops = backgrounds.crops_away_from((400, 300), face)
    assert len(crops) == 4
    enlarged = [125, 50, 275, 230]                                   # 1.5x about the centre
    assert bx.iou_matrix(crops, [enlarged]).max() == 0.0
    assert ((crops[:, 2] - crops[:, 0]) == (crops[:, 3] - crops[:, 1])).all()
    assert (crops[:, 2] - crops[:, 0] >= backgrounds.MIN_CROP_SIDE).all()
    assert ((crops[:, :2] >= 0) & (crops[:, 2] <= 400)[:, None] & (crops[:, 3] <= 300)[:, None]).all()
    assert len(backgrounds.crops_away_from((100, 100), (10, 10, 90, 90))) == 0   # no room: none
    names = [n for n, _ in backgrounds.registry_backgrounds(include_masks=False)]
    assert "skimage:chelsea" in names and not {"skimage:astronaut", "skimage:camera"} & set(names)
