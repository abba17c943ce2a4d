"""Keypoint conventions, annotation CSV parsing, pose bank, flips and the PG2 body mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.data import poses as P
from training.data.masks import body_mask

HEADER = "name:keypoints_y:keypoints_x\n"


def _row(name: str, ys: list[int], xs: list[int]) -> str:
    return f"{name}: {ys}: {xs}\n"


def _standing(dx: int = 0) -> tuple[list[int], list[int]]:
    """A frontal standing pose in a 128 x 64 (H x W) frame: (ys, xs), COCO-18 order."""
    xs = [32, 32, 22, 20, 19, 42, 44, 45, 26, 26, 26, 38, 38, 38, 30, 34, 27, 37]
    ys = [14, 24, 25, 42, 58, 25, 42, 58, 62, 88, 114, 62, 88, 114, 12, 12, 13, 13]
    return ys, [x + dx for x in xs]


# ------------------------------------------------------------------ constants


def test_constants():
    assert len(P.JOINT_NAMES) == 18 and P.JOINT_NAMES[4] == "r_wrist" and P.JOINT_NAMES[17] == "l_ear"
    assert len(P.LIMBS) == 23 and P.LIMBS[0] == (1, 2) and P.LIMBS[-1] == (16, 17)
    perm = np.array(P.FLIP_PERMUTATION)
    assert sorted(perm.tolist()) == list(range(18))
    assert (perm[perm] == np.arange(18)).all()  # involution
    for r, l in ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17)):
        assert perm[r] == l and perm[l] == r
    assert perm[0] == 0 and perm[1] == 1


# ------------------------------------------------------------------ annotation CSV


def test_read_annotation_swaps_to_xy(tmp_path: Path):
    ys, xs = _standing()
    ys2, xs2 = list(ys), list(xs)
    ys2[9], xs2[9] = -1, -1  # r_knee missing
    ys2[10] = -1  # r_ankle: y missing only -> the joint is missing
    f = tmp_path / "market-annotation-test.csv"
    f.write_text(HEADER + _row("0001_c1s1_000001_01.jpg", ys, xs) + _row("0002_c1s1_000001_01.jpg", ys2, xs2) + "\n")
    names, kp = P.read_annotation_csv(f)
    assert names == ["0001_c1s1_000001_01.jpg", "0002_c1s1_000001_01.jpg"]
    assert kp.shape == (2, 18, 2) and kp.dtype == np.float32
    np.testing.assert_array_equal(kp[0, :, 0], xs)  # x first ...
    np.testing.assert_array_equal(kp[0, :, 1], ys)  # ... although the file stores y first
    assert (kp[1, 9] == -1).all() and (kp[1, 10] == -1).all()
    assert P.present_mask(kp[1]).sum() == 16


@pytest.mark.parametrize(
    "line, message",
    [
        ("a.jpg: [1, 2, 3]: [1, 2, 3]", "expected 18 integers in keypoints_y"),
        ("a.jpg: " + str([1] * 18) + ": " + str([1] * 17), "expected 18 integers in keypoints_x"),
        ("a.jpg: " + str([1] * 18).replace("[1,", "[x,") + ": " + str([1] * 18),
         "keypoints_y\\[0\\] is not an integer"),
        ("a.jpg: " + str([1] * 18)[1:] + ": " + str([1] * 18), "expected keypoints_y as"),
        ("a.jpg " + str([1] * 18), "expected 'name: \\[18 y values\\]: \\[18 x values\\]'"),
        ("a.jpg: " + str([-3] + [1] * 17) + ": " + str([1] * 18), "expected -1 \\(missing\\) or >= 0"),
        (": " + str([1] * 18) + ": " + str([1] * 18), "empty image name"),
    ],
)
def test_read_annotation_malformed(tmp_path: Path, line: str, message: str):
    ys, xs = _standing()
    f = tmp_path / "bad.csv"
    f.write_text(HEADER + _row("ok.jpg", ys, xs) + line + "\n")
    with pytest.raises(ValueError, match=rf"bad\.csv:3: .*{message}"):
        P.read_annotation_csv(f)


def test_read_annotation_bad_header(tmp_path: Path):
    f = tmp_path / "h.csv"
    f.write_text("name,keypoints\n")
    with pytest.raises(ValueError, match=r"h\.csv:1: expected header"):
        P.read_annotation_csv(f)
    f.write_text("")
    with pytest.raises(ValueError, match="empty file"):
        P.read_annotation_csv(f)


def test_read_pairs(tmp_path: Path):
    f = tmp_path / "pairs.csv"
    f.write_text("from,to\na.jpg,b.jpg\n c.jpg , d.jpg\n\n")
    assert P.read_pairs_csv(f) == [("a.jpg", "b.jpg"), ("c.jpg", "d.jpg")]
    f.write_text("from,to\na.jpg,b.jpg\na.jpg\n")
    with pytest.raises(ValueError, match=r"pairs\.csv:3: expected 'from_name,to_name'"):
        P.read_pairs_csv(f)
    f.write_text("from,to\na.jpg,b.jpg,c.jpg\n")
    with pytest.raises(ValueError, match=r"pairs\.csv:2"):
        P.read_pairs_csv(f)
    f.write_text("src,dst\n")
    with pytest.raises(ValueError, match=r"pairs\.csv:1: expected header"):
        P.read_pairs_csv(f)


# ------------------------------------------------------------------ flips


def test_flip_horizontal():
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 60, (18, 2)).astype(np.float32)
    kp[7] = -1  # l_wrist missing
    kp[12, 0] = np.nan  # l_knee missing (NaN)
    f = P.flip_horizontal(kp, 64)
    assert f.shape == kp.shape and f.dtype == np.float32
    # Left / right channels swap and x mirrors onto pixel centres: x -> W - 1 - x.
    np.testing.assert_allclose(f[5], [63 - kp[2, 0], kp[2, 1]])  # new l_shoulder = old r_shoulder
    np.testing.assert_allclose(f[0], [63 - kp[0, 0], kp[0, 1]])  # nose stays the nose
    assert (f[4] == -1).all()  # missing l_wrist became the missing r_wrist
    assert np.isnan(f[9, 0])
    np.testing.assert_allclose(P.flip_horizontal(f, 64), kp, rtol=0, atol=1e-5)  # twice = identity
    ints = np.round(kp)
    np.testing.assert_array_equal(P.flip_horizontal(P.flip_horizontal(ints, 64), 64), ints)
    batch = np.stack([kp, kp])
    np.testing.assert_array_equal(P.flip_horizontal(batch, 64)[1], f)
    with_conf = np.concatenate([kp, np.arange(18, dtype=np.float32)[:, None]], 1)
    fc = P.flip_horizontal(with_conf, 64)
    assert fc[5, 2] == 2 and fc[2, 2] == 5  # extra channels travel with their joint


def test_flip_normalised_matches_pixel_flip():
    ys, xs = _standing(dx=5)
    kp = np.stack([np.asarray(xs, np.float32), np.asarray(ys, np.float32)], -1)
    kp[3] = -1
    n = P.normalise(kp, (128, 64))
    assert np.isnan(n[3]).all()
    back = P.denormalise(P.flip_normalised(n), (128, 64))
    want = P.flip_horizontal(kp, 64)
    ok = P.present_mask(want)
    np.testing.assert_allclose(back[ok], want[ok], atol=1e-4)
    assert np.isnan(back[~ok]).all()


def test_to_reported_outside_is_missing():
    kp = np.full((18, 2), 10.0, np.float32)
    kp[0] = (-3, 5)  # left of the frame
    kp[1] = (5, 130)  # below a 128-high frame
    kp[2] = (87.4, 127.4)  # last pixel of an 88-wide frame: inside
    present = np.ones(18, bool)
    present[3] = False
    out = P.to_reported(kp, present, (128, 88))
    assert (out[0] == -1).all() and (out[1] == -1).all() and (out[3] == -1).all()
    np.testing.assert_allclose(out[2], kp[2])
    np.testing.assert_allclose(out[4], (10, 10))


# ------------------------------------------------------------------ pose bank


def _write_bank(folder: Path) -> None:
    rows = []
    for s in range(30):
        for v in range(2):
            ys, xs = _standing(dx=v)
            rows.append(_row(f"{s:04d}_c{v + 1}s1_000001_01.jpg", ys, xs))
    ys, xs = _standing()
    rows.append(_row("0000_c1s1_000002_01.jpg", ys, xs))  # distractor: its own subject
    rows.append(_row("-1_c1s1_000003_01.jpg", [-1] * 18, [-1] * 18))  # nobody found
    few_y, few_x = [-1] * 18, [-1] * 18
    few_y[1], few_x[1] = 20, 30
    rows.append(_row("0099_c1s1_000004_01.jpg", few_y, few_x))  # too few joints
    (folder / "market-annotation-train.csv").write_text(HEADER + "".join(rows))
    fy, fx = _standing()
    # DeepFashion annotations live in the uncropped 256 x 256 frame.
    fys = [y * 2 for y in fy]
    fxs = [x * 2 + 64 for x in fx]
    (folder / "fasion-annotation-test.csv").write_text(
        HEADER + _row("fasionWOMENDressesid0000000001_1front.jpg", fys, fxs)
        + _row("fasionWOMENDressesid0000000001_2side.jpg", fys, fxs))
    (folder / "fasion-annotation-test_new_split.csv").write_text(
        HEADER + _row("fasionWOMENDressesid0000000001_1front.jpg", fys, fxs))  # duplicate name


def test_load_pose_bank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _write_bank(tmp_path)
    bank = P.load_pose_bank(tmp_path)
    assert len(bank) == 60 + 1 + 2  # junk rows filtered, duplicate kept once
    assert bank.keypoints.shape == (63, 18, 2) and bank.keypoints.dtype == np.float32
    assert bank.present.all()
    i = bank.names.index("0000_c1s1_000002_01.jpg")
    assert bank.subjects[i] == "market:0000_c1s1_000002_01"
    assert bank.subjects[bank.names.index("0005_c2s1_000001_01.jpg")] == "market:0005"
    j = bank.names.index("fasionWOMENDressesid0000000001_1front.jpg")
    assert bank.subjects[j] == "fasionWOMENDressesid0000000001" and bank.datasets[j] == "fasion"
    # Centred, height-normalised: the same standing pose from both datasets coincides.
    np.testing.assert_allclose(bank.keypoints[j], bank.keypoints[i], atol=0.02)
    np.testing.assert_allclose(bank.keypoints[i, P.NECK], [(32 - 31.5) / 128, (24 - 63.5) / 128], atol=1e-6)
    px = bank.pixels(i, (128, 64))
    np.testing.assert_allclose(px[P.NECK], (32, 24), atol=1e-4)
    # Environment override of the default folder.
    monkeypatch.setenv("POSERT_POSES_DIR", str(tmp_path))
    assert P.default_poses_dir() == tmp_path
    assert len(P.load_pose_bank()) == 63
    with pytest.raises(FileNotFoundError):
        P.load_pose_bank(tmp_path / "nowhere")


def test_split_is_deterministic_and_disjoint(tmp_path: Path):
    _write_bank(tmp_path)
    bank = P.load_pose_bank(tmp_path)
    train, ev = bank.split("train", 0.3), bank.split("eval", 0.3)
    assert len(train) + len(ev) == len(bank) and len(ev) > 0 and len(train) > 0
    assert not set(train.subjects) & set(ev.subjects)
    assert P.is_heldout("market:0007", 0.3) == P.is_heldout("market:0007", 0.3)
    assert ev.names == bank.split("eval", 0.3).names
    with pytest.raises(ValueError):
        bank.split("test")


def test_real_pose_bank_frame():
    """The shipped annotations: DeepFashion x is in the uncropped 256-wide frame."""
    try:
        bank = P.load_pose_bank()
    except FileNotFoundError:
        pytest.skip("real pose annotations not available")
    for ds in ("fasion", "market"):
        m = np.array([d == ds for d in bank.datasets])
        if m.any():
            neck_x = np.median(bank.keypoints[m, P.NECK, 0])
            assert abs(neck_x) < 0.03, (ds, neck_x)  # people are centred in their frame
    train, ev = bank.split("train"), bank.split("eval")
    assert not set(train.subjects) & set(ev.subjects)
    assert 0.05 < len(ev) / len(bank) < 0.2


# ------------------------------------------------------------------ body mask


def _reference_mask(kp: np.ndarray, h: int, w: int) -> np.ndarray:
    """Slow per-pixel transcription of the spec, for comparison."""
    import cv2

    pres = P.present_mask(kp)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    m = np.zeros((h, w), bool)
    for a, b in P.LIMBS:
        if pres[a] and pres[b]:
            pa, pb = kp[a].astype(np.float64), kp[b].astype(np.float64)
            d = pb - pa
            L = np.hypot(*d)
            if L < 1e-9:
                continue
            u = ((xx - pa[0]) * d[0] + (yy - pa[1]) * d[1]) / L
            v = ((xx - pa[0]) * d[1] - (yy - pa[1]) * d[0]) / L
            m |= (u >= 0) & (u <= L) & (np.abs(v) <= 4)
    for j in np.flatnonzero(pres):
        m |= (xx - kp[j, 0]) ** 2 + (yy - kp[j, 1]) ** 2 < 16
    k = np.ones((5, 5), np.uint8)
    m8 = cv2.dilate(m.astype(np.uint8), k, borderType=cv2.BORDER_REFLECT)
    return cv2.erode(m8, k, borderType=cv2.BORDER_REFLECT)


def test_body_mask_hand_made_pose():
    kp = np.full((18, 2), -1.0, np.float32)
    kp[P.NECK] = (40, 20)
    kp[P.R_HIP] = (40, 80)
    kp[P.R_KNEE] = (np.nan, 100)  # NaN = missing
    m = body_mask(kp, 128, 88)
    assert m.shape == (128, 88) and m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1}
    assert m[20:81, 40].all()  # along the limb
    assert m[50, 37] and m[50, 43]  # within the half-width
    assert not m[50, 46] and not m[50, 34]  # beyond it
    assert m[17:25, 40].all() and not m[16, 40]  # joint disk: distance < 4 (strict, as skimage)
    assert not m[100, 40] and not m[5, 40] and not m[50, 10]  # far pixels
    assert body_mask(np.full((18, 2), -1.0), 32, 32).sum() == 0


def test_body_mask_matches_reference():
    rng = np.random.default_rng(1)
    ys, xs = _standing()
    base = np.stack([np.asarray(xs, np.float64), np.asarray(ys, np.float64)], -1)
    for t in range(40):
        kp = base * rng.uniform(0.6, 1.4) + rng.normal(0, 6, (18, 2)) + rng.uniform(-30, 30, 2)
        if t % 2 == 0:
            kp = np.round(kp)  # integer joints: ties at exactly 4 px
            kp[8, 0], kp[5, 1] = kp[1, 0], kp[1, 1]  # axis-aligned limbs
        kp[rng.random(18) < 0.2] = -1
        kp[2] = kp[1]  # a zero-length limb
        np.testing.assert_array_equal(body_mask(kp, 128, 64), _reference_mask(kp, 128, 64))
