"""Datasets: synthetic pairs as tensors, and the PATN-layout loaders (DeepFashion / Market-1501)
on small files in that exact format written here (images with cv2, CSVs by hand)."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np

from pyposert import ops
import pytest
import torch

from training.data import poses as P
from training.data.datasets import (
    PairFolderDataset,
    SyntheticPairDataset,
    build_dataset,
    image_to_tensor,
    letterbox_image,
    parse_data_spec,
    tensor_to_image,
)
from training.data.masks import body_mask

from test_train import write_tiny_pose_bank  # noqa: E402 - the shared tiny real-pose bank


@pytest.fixture(scope="module")
def tiny_bank(tmp_path_factory: pytest.TempPathFactory) -> P.PoseBank:
    folder = write_tiny_pose_bank(tmp_path_factory.mktemp("poses"))
    return P.load_pose_bank(folder)


def test_image_tensor_roundtrip(rng: np.random.Generator) -> None:
    img = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    t = image_to_tensor(img)
    assert t.shape == (3, 5, 7) and t.dtype == torch.float32
    assert t.min() >= -1 and t.max() <= 1
    assert np.array_equal(tensor_to_image(t), img)
    assert np.array_equal(tensor_to_image(t[None])[0], img)
    assert np.array_equal(tensor_to_image(torch.full((3, 1, 1), 3.0)), np.full((1, 1, 3), 255))  # clamped
    with pytest.raises(ValueError, match="uint8"):
        image_to_tensor(img.astype(np.float32))


def test_synthetic_pair_dataset(tiny_bank: P.PoseBank) -> None:
    ds = SyntheticPairDataset(32, 24, "train", seed=3, length=10, pose_bank=tiny_bank)
    assert len(ds) == 10
    item = ds[4]
    assert item["source_image"].shape == (3, 32, 24) and item["source_image"].dtype == torch.float32
    assert item["target_image"].shape == (3, 32, 24)
    assert -1 <= float(item["target_image"].min()) and float(item["target_image"].max()) <= 1
    assert item["source_pose"].shape == (18, 2) and item["target_pose"].dtype == torch.float32
    assert item["target_mask"].shape == (1, 32, 24)
    assert set(item["target_mask"].unique().tolist()) <= {0.0, 1.0}
    assert int(item["index"]) == 4
    # The mask is the PG2 body mask of the target pose; keypoints are (x, y) inside the frame.
    expected = body_mask(item["target_pose"].numpy(), 32, 24)
    assert np.array_equal(item["target_mask"][0].numpy(), expected)
    kp = item["target_pose"].numpy()
    present = P.present_mask(kp)
    assert present.any() and (kp[present, 0] < 24).all() and (kp[present, 1] < 32).all()
    again = ds[4]
    assert all(torch.equal(item[k], again[k]) for k in item)  # deterministic per index
    other = SyntheticPairDataset(32, 24, "eval", seed=3, length=10, pose_bank=tiny_bank)[4]
    assert not torch.equal(item["source_image"], other["source_image"])
    with pytest.raises(IndexError):
        ds[10]


def test_letterbox_is_the_runtime_preprocessing() -> None:
    # Market 128 x 64 into the rt model frame 128 x 88: 12 white columns each side.
    img = np.zeros((128, 64, 3), np.uint8)
    out, box = letterbox_image(img, 128, 88)
    assert (box.box_x, box.box_y, box.box_width, box.box_height) == (12, 0, 64, 128)
    kp = np.array([[0.0, 0.0], [63.0, 127.0], [-1.0, -1.0]])
    np.testing.assert_allclose(box.to_model(kp), [[12, 0], [75, 127], [-1, -1]])
    assert out.shape == (128, 88, 3) and out.dtype == np.uint8
    assert (out[:, :12] == 255).all() and (out[:, 12:76] == 0).all() and (out[:, 76:] == 255).all()
    # The same pixels as pyposert's runtime input, quantised.
    photo = np.random.default_rng(0).integers(0, 256, (256, 176, 3), dtype=np.uint8)
    out, half = letterbox_image(photo, 128, 88)
    x, _ = ops.to_model_input(photo, 128, 88, bgr=False)
    assert np.abs(out / 127.5 - 1.0 - x.transpose(1, 2, 0)).max() <= 0.5 / 127.5 + 1e-6
    # DeepFashion 256 x 176 into 128 x 88: a pure 2x shrink, pixel centres preserved.
    assert (half.box_x, half.box_y, half.box_width, half.box_height) == (0, 0, 88, 128)
    np.testing.assert_allclose(half.to_model(np.array([[1.0, 1.0], [175.0, 255.0]])), [[0.25, 0.25], [87.25, 127.25]])


# -- PATN layout ------------------------------------------------------------------------

def _kp_row(seed: int, h: int, w: int) -> tuple[list[int], list[int]]:
    """(ys, xs) of 18 joints inside an h x w image, a couple missing (-1)."""
    r = np.random.default_rng(seed)
    ys = r.integers(2, h - 2, 18).tolist()
    xs = r.integers(2, w - 2, 18).tolist()
    ys[16] = xs[16] = -1
    ys[17] = -1  # one coordinate -1 is enough for "missing"
    return ys, xs


def make_patn_folder(root: Path, h: int = 32, w: int = 16, prefix: str = "market", ext: str = ".png",
                     split: str = "train") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """ROOT/<split>/*.png + <prefix>-annotation-<split>.csv + <prefix>-pairs-<split>.csv.

    Returns {name: (RGB image uint8 [h, w, 3], keypoints float [18, 2] (x, y))}.
    """
    (root / split).mkdir(parents=True, exist_ok=True)
    truth: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    lines = [P.ANNOTATION_HEADER]
    for k in range(4):
        name = f"000{k}_c1s1_00000{k}_01{ext}"
        img = np.zeros((h, w, 3), np.uint8)
        img[..., 0] = 40 * k
        img[..., 1] = np.arange(w, dtype=np.uint8)[None, :] * 8
        img[..., 2] = np.arange(h, dtype=np.uint8)[:, None] * 4
        cv2.imwrite(str(root / split / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        ys, xs = _kp_row(k, h, w)
        lines.append(f"{name}: {ys}: {xs}")
        kp = np.stack([np.array(xs, float), np.array(ys, float)], -1)
        kp[(kp < 0).any(-1)] = -1
        truth[name] = (img, kp)
    (root / f"{prefix}-annotation-{split}.csv").write_text("\n".join(lines) + "\n")
    names = list(truth)
    pairs = ["from,to", f"{names[0]},{names[1]}", f"{names[2]},{names[3]}", f"{names[1]},{names[0]}"]
    (root / f"{prefix}-pairs-{split}.csv").write_text("\n".join(pairs) + "\n")
    return truth


def test_pair_folder_same_size(tmp_path: Path) -> None:
    truth = make_patn_folder(tmp_path, 32, 16)
    ds = PairFolderDataset(tmp_path, "train", 32, 16)
    assert len(ds) == 3
    item = ds[0]
    names = list(truth)
    src_img, src_kp = truth[names[0]]
    tgt_img, tgt_kp = truth[names[1]]
    assert np.array_equal(tensor_to_image(item["source_image"]), src_img)  # PNG, RGB order kept
    assert np.array_equal(tensor_to_image(item["target_image"]), tgt_img)
    # y-first CSV -> (x, y) keypoints; -1 in either coordinate -> joint missing.
    np.testing.assert_allclose(item["source_pose"].numpy(), src_kp)
    np.testing.assert_allclose(item["target_pose"].numpy(), tgt_kp)
    assert (item["target_pose"][16] == -1).all() and (item["target_pose"][17] == -1).all()
    assert np.array_equal(item["target_mask"][0].numpy(), body_mask(tgt_kp, 32, 16))


def test_pair_folder_letterboxes_into_the_model_size(tmp_path: Path) -> None:
    truth = make_patn_folder(tmp_path, 32, 16, ext=".jpg")
    ds = PairFolderDataset(tmp_path, "train", 32, 24)  # 32 x 16 images -> 4 white columns each side
    item = ds[1]
    src = tensor_to_image(item["source_image"])
    assert src.shape == (32, 24, 3)
    assert (src[:, :4] == 255).all() and (src[:, 20:] == 255).all()
    kp = list(truth.values())[2][1]
    expected = np.where(kp >= 0, kp + np.array([4.0, 0.0]), -1)
    np.testing.assert_allclose(item["source_pose"].numpy(), expected)
    assert np.array_equal(item["target_mask"][0].numpy(), body_mask(item["target_pose"].numpy(), 32, 24))


def test_pair_folder_drops_unusable_pairs(tmp_path: Path) -> None:
    truth = make_patn_folder(tmp_path)
    names = list(truth)
    (tmp_path / "train" / names[3]).unlink()  # pair 2 loses its target image
    with open(tmp_path / "market-pairs-train.csv", "a") as f:
        f.write(f"{names[0]},not_annotated.png\n")
    with pytest.warns(UserWarning, match="dropped 1 pairs without annotation and 1 without an image"):
        ds = PairFolderDataset(tmp_path, "train", 32, 16)
    assert len(ds) == 2 and ds.dropped == 2


@pytest.mark.parametrize(
    "row, message",
    [
        ("a.png: [1, 2, 3]: [1, 2, 3]", "expected 18 integers"),
        ("a.png: [" + ", ".join(["x"] * 18) + "]: [" + ", ".join(["1"] * 18) + "]", "not an integer"),
        ("a.png [1, 2]", "expected 'name"),
        ("a.png: [" + ", ".join(["-5"] * 18) + "]: [" + ", ".join(["1"] * 18) + "]", "expected -1"),
    ],
)
def test_malformed_annotation_rows_name_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    make_patn_folder(tmp_path)
    ann = tmp_path / "market-annotation-train.csv"
    ann.write_text(ann.read_text() + row + "\n")
    with pytest.raises(ValueError, match=message) as e:
        PairFolderDataset(tmp_path, "train", 32, 16)
    assert "market-annotation-train.csv:6" in str(e.value)


def test_malformed_headers_and_pairs(tmp_path: Path) -> None:
    make_patn_folder(tmp_path)
    pairs = tmp_path / "market-pairs-train.csv"
    original = pairs.read_text()
    pairs.write_text(original + "only_one_name.png\n")
    with pytest.raises(ValueError, match="market-pairs-train.csv:5"):
        PairFolderDataset(tmp_path, "train", 32, 16)
    pairs.write_text("source,target\n" + original.split("\n", 1)[1])
    with pytest.raises(ValueError, match="expected header"):
        PairFolderDataset(tmp_path, "train", 32, 16)
    pairs.write_text("from,to\n")
    with pytest.raises(ValueError, match="no usable pairs"):
        PairFolderDataset(tmp_path, "train", 32, 16)
    (tmp_path / "test").mkdir()
    with pytest.raises(FileNotFoundError, match="annotation CSV"):
        PairFolderDataset(tmp_path, "test", 32, 16)
    with pytest.raises(FileNotFoundError, match="dataset folder"):
        PairFolderDataset(tmp_path / "nope", "train", 32, 16)


def test_data_specs(tmp_path: Path, tiny_bank: P.PoseBank) -> None:
    assert parse_data_spec("synthetic") == ("synthetic", None)
    assert parse_data_spec("market:/data/market") == ("market", Path("/data/market"))
    for bad in ("imagenet:/x", "market", "market:", "synthetic:/x"):
        with pytest.raises(ValueError, match="--data"):
            parse_data_spec(bad)
    make_patn_folder(tmp_path / "m", split="train")
    make_patn_folder(tmp_path / "m", split="test")
    train = build_dataset(f"market:{tmp_path / 'm'}", "train", 32, 24)
    test = build_dataset(f"deepfashion:{tmp_path / 'm'}", "eval", 32, 24)  # eval -> the test files
    assert isinstance(train, PairFolderDataset) and train.split == "train" and test.split == "test"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(train[0]) == 6
