"""Eye alignment, Eq. 3 crops in one warpAffine, padding, face choice, and bad image files."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from data_prep import align as al
from data_prep.images import BadImage, load_image
from g2s_caffe.core.crops import CROP_SCHEMES, crop_box

# The astronaut's face in skimage.data.astronaut() (measured once with an MTCNN): x1 y1 x2 y2, 5 points.
ASTRO_BOX = (179.0, 60.0, 268.0, 173.0)
ASTRO_LM = [(203, 101), (246, 103), (224, 128), (201, 139), (244, 141)]


@dataclass
class Face:
    box: np.ndarray
    score: float
    landmarks: np.ndarray


def rotate_about(points, centre, degrees):
    m = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    return al.apply(m, points), m


@pytest.mark.parametrize("tilt", [-30.0, -7.5, 0.0, 12.0, 40.0])
def test_alignment_levels_the_eyes_and_keeps_the_box_size(tilt):
    lm, _ = rotate_about(ASTRO_LM, (300.0, 200.0), tilt)
    box = (150.0, 40.0, 260.0, 170.0)
    a = al.align(box, lm)
    eyes = al.apply(a.rotation(), lm[:2])
    assert eyes[0, 1] == pytest.approx(eyes[1, 1], abs=1e-6)
    assert eyes[0, 0] < eyes[1, 0]                       # left eye stays on the left
    assert a.box[2:] == pytest.approx((110.0, 130.0))
    centre = al.apply(a.rotation(), [[205.0, 105.0]])[0]
    assert (a.box[0] + a.box[2] / 2, a.box[1] + a.box[3] / 2) == pytest.approx(tuple(centre))
    assert al.Alignment.from_json(a.to_json()) == a


@pytest.mark.parametrize("scheme", list(CROP_SCHEMES))
def test_crop_matrix_maps_the_eq3_square_onto_the_output(scheme):
    a = al.align((100.0, 80.0, 180.0, 160.0), [(120, 100), (160, 108), (140, 120), (125, 140), (155, 146)])
    m = al.crop_matrix(a, scheme, 64)
    x0, y0, side = crop_box(*a.box, scheme)
    inv = cv2.invertAffineTransform(m)
    corners = al.apply(inv, [[0, 0], [64, 64]])           # output corners, back in the original
    rot = a.rotation()
    back = al.apply(rot, corners)                          # ... and in the rotated image
    assert back[0] == pytest.approx((x0, y0), abs=1e-6)
    assert back[1] == pytest.approx((x0 + side, y0 + side), abs=1e-6)


def test_one_warp_equals_rotate_then_crop_then_resize():
    img = skdata.astronaut()[:, :, ::-1].copy()
    tilted = cv2.warpAffine(img, cv2.getRotationMatrix2D((256.0, 256.0), -15.0, 1.0), (512, 512))
    lm_t, _ = rotate_about(ASTRO_LM, (256.0, 256.0), -15.0)
    box_t = (*(np.mean(lm_t, axis=0) - 50), *(np.mean(lm_t, axis=0) + 50))
    a = al.align(box_t, lm_t)
    assert a.angle == pytest.approx(15.0 + np.degrees(np.arctan2(2, 43)), abs=1e-6)
    one = al.crops(tilted, a, ["c"], 96)["c"]
    # Two steps: rotate the whole image, cut the square, resize.
    rotated = cv2.warpAffine(tilted, a.rotation(), (512, 512), flags=cv2.INTER_LINEAR)
    x0, y0, side = crop_box(*a.box, "c")
    cut = rotated[int(round(y0)):int(round(y0 + side)), int(round(x0)):int(round(x0 + side))]
    two = cv2.resize(cut, (96, 96), interpolation=cv2.INTER_LINEAR)
    assert np.mean(np.abs(one.astype(int) - two.astype(int))) < 8   # whole-pixel cut: ~5
    # And the aligned crop of the tilted photo matches the crop of the upright one.
    centre_up = rotate_about([np.mean(lm_t, axis=0)], (256.0, 256.0), 15.0)[0][0]
    box_up = (*(centre_up - 50), *(centre_up + 50))
    upright = al.crops(img, al.align(box_up, ASTRO_LM), ["c"], 96)["c"]
    assert np.mean(np.abs(one.astype(int) - upright.astype(int))) < 4   # unaligned: ~40


def test_crops_leaving_the_image_are_padded_black_not_shifted():
    img = np.full((200, 300, 3), 200, np.uint8)
    # A face at the bottom-left corner: scheme e (enlarged, shifted down) leaves the image.
    a = al.align((0.0, 120.0, 80.0, 200.0), None)
    out = al.crops(img, a, ["e", "a"], 100)
    x0, y0, side = crop_box(*a.box, "e")
    inside_rows = int((200 - y0) / side * 100)   # rows of the crop still inside the image
    inside_cols0 = int(np.ceil(-x0 / side * 100))
    assert (out["e"][inside_rows + 2:] == 0).all()          # below the image: black
    assert (out["e"][:, : max(0, inside_cols0 - 2)] == 0).all()   # left of the image: black
    assert (out["e"][2:inside_rows - 2, inside_cols0 + 2:] == 200).all()   # the image, unshifted
    assert (out["a"][: int(80 / 80 * 100) - 2] == 200).all()


def test_large_faces_are_pre_shrunk_without_moving_the_crop():
    img = cv2.resize(skdata.astronaut()[:, :, ::-1], (2048, 2048), interpolation=cv2.INTER_CUBIC)
    lm = np.asarray(ASTRO_LM, float) * 4
    a = al.align(np.asarray(ASTRO_BOX) * 4, lm)
    small = al.crops(img, a, ["a"], 64)["a"]           # scale 64/356: takes the pre-shrink path
    direct = cv2.warpAffine(img, al.crop_matrix(a, "a", 64), (64, 64), flags=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(direct, (5, 5), 1.5)
    assert np.mean(np.abs(cv2.GaussianBlur(small, (5, 5), 1.5).astype(int) - blurred.astype(int))) < 10


def test_face_choice_prefers_the_dataset_face_over_the_highest_score():
    ref_lm = np.array(ASTRO_LM, float)
    other = Face(np.array([10, 10, 60, 60.0]), 0.99, ref_lm - 150)
    mine = Face(np.array(ASTRO_BOX), 0.90, ref_lm + 2)
    face, why = al.choose_face([other, mine], ref_landmarks=ref_lm)
    assert face is mine and "landmark error" in why
    face, why = al.choose_face([other], ref_landmarks=ref_lm)
    assert face is None and "none at the dataset's landmarks" in why
    face, why = al.choose_face([other, mine], ref_box=(180, 62, 90, 110))
    assert face is mine and "IoU" in why
    assert al.choose_face([], ref_box=(0, 0, 1, 1))[0] is None
    assert al.choose_face([mine, other])[0] is mine   # no reference: best score


def test_box_from_landmarks_matches_a_detector_box():
    x, y, w, h = al.box_from_landmarks(ASTRO_LM)
    det = al.xywh_to_xyxy((ASTRO_BOX[0], ASTRO_BOX[1], ASTRO_BOX[2] - ASTRO_BOX[0], ASTRO_BOX[3] - ASTRO_BOX[1]))
    assert al.iou((x, y, x + w, y + h), det) > 0.7


# ------------------------------------------------------------------ bad image files
def test_bad_images_are_converted_or_refused_with_a_reason(tmp_path):
    rgb = skdata.astronaut()[:200, :200]
    good = tmp_path / "good.jpg"
    Image.fromarray(rgb).save(good, quality=90)
    img, note = load_image(good)
    assert img.shape == (200, 200, 3) and img.dtype == np.uint8 and note == ""

    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    img, note = load_image(tmp_path / "cmyk.jpg")
    assert img.shape == (200, 200, 3) and "CMYK" in note
    assert np.mean(np.abs(img[:, :, ::-1].astype(int) - rgb.astype(int))) < 20   # colours survive

    Image.fromarray(rgb).convert("L").save(tmp_path / "gray.png")
    img, note = load_image(tmp_path / "gray.png")
    assert img.shape == (200, 200, 3) and "converted L" in note

    cv2.imwrite(str(tmp_path / "deep.png"), (rgb[:, :, ::-1].astype(np.uint16) * 257))
    img, note = load_image(tmp_path / "deep.png")
    assert img.dtype == np.uint8 and "16-bit" in note and abs(int(img[0, 0, 2]) - int(rgb[0, 0, 0])) <= 1

    Image.fromarray(np.dstack([rgb, np.full((200, 200), 255, np.uint8)])).save(tmp_path / "alpha.png")
    assert "dropped alpha" in load_image(tmp_path / "alpha.png")[1]

    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "cut.jpg").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "text.jpg").write_text("not an image")
    raw = bytearray(good.read_bytes())
    raw[100:-2] = bytes(len(raw) - 102)   # SOI intact, tables and data destroyed
    (tmp_path / "corrupt.jpg").write_bytes(bytes(raw))
    for name, reason in [("empty.jpg", "empty file"), ("cut.jpg", "truncated JPEG"),
                         ("text.jpg", "not a readable image"), ("corrupt.jpg", "not a readable image"),
                         ("missing.jpg", "cannot read file")]:
        with pytest.raises(BadImage, match=reason):
            load_image(tmp_path / name)
    with pytest.raises(BadImage, match=r"200x200 = 40000 pixels, over the limit of 1000"):
        load_image(good, max_pixels=1000)


def test_a_schemes_crop_does_not_depend_on_the_other_schemes_asked_for():
    img = cv2.resize(skdata.astronaut()[:, :, ::-1], (1024, 1024))
    a = al.align(np.asarray(ASTRO_BOX) * 2, np.asarray(ASTRO_LM, float) * 2)   # pre-shrink path at 64
    alone = al.crops(img, a, ["c"], 64)["c"]
    together = al.crops(img, a, list(CROP_SCHEMES), 64)
    assert np.array_equal(alone, together["c"])
    assert not np.array_equal(together["c"], together["f"])
