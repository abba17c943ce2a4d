"""Fashion image completion on the runtime side: pyposert.completion's helpers, the bundle's
"completion" task, Engine.complete and `pyposert complete`, on a stub ONNX graph
(tests/stub_models.completion_stub_onnx) run by ONNX Runtime on the CPU. No torch needed.

The stub's outputs equal its inputs outside the erase region and depend on the noise, the
pose heatmaps and the garment crops inside it, so the tests see what the engine fed it.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import pyposert
from pyposert import bundle, completion, ops
from pyposert.bundle import read_bundle, write_bundle
from pyposert.cli import main
from pyposert.engine import Completion, Engine
from pyposert.errors import PlanError
from pyposert.poses import STANDING_POSE
from stub_models import completion_stub_onnx, heatmap_max_onnx, run_in_threads

H, W = 64, 48  # stub model frame
S, Z = 16, 8  # stub crop size, latent width
PH, PW = 90, 70  # photo size (another aspect: letterbox bars above and below)


# ------------------------------------------------------------------ data
def _person(rng: np.random.Generator, h: int = PH, w: int = PW) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(photo uint8 [h, w, 3] BGR, parsing uint8 [h, w], pose float32 (18, 2) (x, y)) of a
    blocky synthetic person (drawn for 90 x 70, scaled to h x w)."""
    base = np.zeros((PH, PW), np.uint8)
    base[4:10, 30:40] = 4  # hat
    base[10:22, 30:40] = 1  # face + hair
    base[22:50, 20:50] = 5  # top
    base[25:45, 14:20] = 2  # arms
    base[25:45, 50:56] = 2
    base[50:76, 22:48] = 6  # bottom
    base[76:84, 22:48] = 3  # legs
    base[84:88, 20:50] = 7  # shoes
    rows = np.arange(h) * PH // h
    cols = np.arange(w) * PW // w
    parsing = np.ascontiguousarray(base[rows][:, cols])
    photo = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    pose = STANDING_POSE * np.array([w / 176.0, h / 256.0], np.float32)
    return photo, parsing, pose.astype(np.float32)


def _manifest(crop: int = S, latent: int = Z, **completion_changes: Any) -> dict[str, Any]:
    comp = {"crop_size": crop, "latent": latent, "margin": 0.1, "pad": 2,
            "parsing_classes": list(completion.PARSING_CLASSES), "garments": list(completion.GARMENTS)}
    comp.update(completion_changes)
    return {"task": "completion",
            "model": {"name": "completion-stub", "version": "test", "config": {}},
            "input": {"height": H, "width": W, "keypoint_format": "coco18", "keypoint_order": "xy", "image": "rgb",
                      "normalisation": "[-1,1]", "heatmap": {"mode": "gaussian", "sigma": 1.5, "radius": 4.0},
                      "completion": comp}}


def _rewrite_manifest(src: Path, dst: Path, edit: Callable[[dict[str, Any]], Any]) -> Path:
    """A copy of a bundle whose manifest was edited behind the writer's back."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == bundle.MANIFEST_NAME:
                m = json.loads(data)
                edit(m)
                data = json.dumps(m).encode()
            zout.writestr(info.filename, data)
    return dst


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("completion")
    onnx = completion_stub_onnx(folder / "stub.onnx", H, W, S, Z)
    plan = write_bundle(folder / "stub.plan", _manifest(), {"model.onnx": ("onnx", onnx.read_bytes(), {"opset": 17})})
    fixed = completion_stub_onnx(folder / "stub_b1.onnx", H, W, S, Z, batch=1)
    pose_transfer = heatmap_max_onnx(folder / "pose.onnx", H, W)
    return {"onnx": onnx, "plan": plan, "fixed": fixed, "pose_transfer": pose_transfer, "folder": folder}


@pytest.fixture(scope="module")
def engine(models: dict[str, Path]) -> Engine:
    return Engine(models["plan"], threads=1)


# ------------------------------------------------------------------ completion helpers
def test_vocabulary_matches_the_bundle_reader() -> None:
    assert bundle._PARSING_CLASSES == completion.PARSING_CLASSES
    assert bundle._GARMENTS == completion.GARMENTS
    assert completion.GARMENT_CLASSES == (4, 5, 6, 7) and completion.CROP_CHANNELS == 12


def test_garment_box_and_region_box(rng: np.random.Generator) -> None:
    _, parsing, _ = _person(rng)
    # top: rows 22..49, cols 20..49 (28 x 30 pixels) -> grows by round(0.1 * size) + 2 pixels
    assert completion.garment_box(parsing, "top", 0.0, 0) == completion.Box(22, 20, 50, 50)
    assert completion.garment_box(parsing, "top") == completion.Box(22 - 5, 20 - 5, 50 + 5, 50 + 5)
    assert completion.garment_box(parsing, 5, 0.1, 2) == completion.garment_box(parsing, "top")
    assert completion.garment_box(parsing, "hat", 1.0, 0) == completion.Box(0, 20, 16, 50)  # clipped at the top
    assert completion.garment_box(parsing, "shoes", 0.5, 10) == completion.Box(72, 0, PH, PW)  # clipped below
    with pytest.raises(ValueError, match=r"no 'hat' pixels .* garments present: \['top', 'bottom', 'shoes'\]"):
        completion.garment_box(np.where(parsing == 4, 1, parsing).astype(np.uint8), "hat")
    for bad in ("scarf", 3, True):
        with pytest.raises(ValueError, match="garment must be one of"):
            completion.garment_box(parsing, bad)
    with pytest.raises(ValueError, match="margin and pad must be >= 0"):
        completion.garment_box(parsing, "top", -0.1)

    mask = np.zeros((PH, PW), np.uint8)
    mask[30:33, 10:12] = 7
    mask[40, 60] = 1
    box = completion.region_box(mask, (PH, PW))
    assert box == completion.Box(30, 10, 41, 61) and not box.empty
    np.testing.assert_array_equal(completion.box_mask(box, PH, PW)[box.slices()], 1)
    assert completion.box_mask(box, PH, PW).sum() == 11 * 51
    with pytest.raises(ValueError, match="mask is empty"):
        completion.region_box(np.zeros((PH, PW), bool), (PH, PW))
    with pytest.raises(ValueError, match="must match the image"):
        completion.region_box(mask[1:], (PH, PW))


def test_check_parsing_and_one_hot(rng: np.random.Generator) -> None:
    _, parsing, _ = _person(rng)
    assert completion.check_parsing(parsing.astype(np.int64)).dtype == np.uint8
    assert completion.check_parsing(parsing[:, :, None], (PH, PW)).shape == (PH, PW)
    for bad, message in ((parsing.astype(np.float32), "integer classes"), (parsing[:, :5], "must match the image"),
                         (np.full((PH, PW), 8, np.uint8), r"classes 8\.\.8"), (np.zeros((PH, PW, 3), np.uint8),
                                                                              r"\[h, w\] class map"),
                         ([[0, 1]], "numpy integer")):
        with pytest.raises(ValueError, match=message):
            completion.check_parsing(bad, (PH, PW))
    hot = completion.one_hot(parsing)
    assert hot.shape == (8, PH, PW) and hot.dtype == np.float32
    np.testing.assert_array_equal(hot.sum(0), 1.0)
    np.testing.assert_array_equal(hot.argmax(0), parsing)


@pytest.mark.parametrize("src", [(20, 15), (64, 48), (90, 70), (50, 200), (300, 40)])
def test_letterbox_labels_round_trip_and_pixel_centres(src: tuple[int, int], rng: np.random.Generator) -> None:
    h, w = src
    lb = ops.letterbox(h, w, H, W)
    labels = rng.integers(1, 8, (h, w), dtype=np.uint8)
    model = completion.letterbox_labels(labels, lb)
    assert model.shape == (H, W) and model.dtype == np.uint8
    content = np.zeros((H, W), bool)
    content[lb.box_y:lb.box_y + lb.box_height, lb.box_x:lb.box_x + lb.box_width] = True
    assert (model[~content] == 0).all() and (model[content] > 0).all()  # bars are background
    back = completion.letterbox_labels(model, lb, unletterbox=True)
    assert back.shape == (h, w)
    sx, sy = lb.scale
    if sx >= 1 and sy >= 1:  # enlarged: every photo pixel survives the round trip
        np.testing.assert_array_equal(back, labels)
    if sx <= 1 and sy <= 1:  # shrunk: every model pixel survives the other round trip
        model_labels = np.where(content, rng.integers(1, 8, (H, W)), 0).astype(np.uint8)
        again = completion.letterbox_labels(completion.letterbox_labels(model_labels, lb, unletterbox=True), lb)
        np.testing.assert_array_equal(again, model_labels)

    # Agreement with Letterbox.to_model / to_image at pixel centres: the nearest pixel of the
    # mapped centre is where the label goes (ties -- exactly half-way -- may go either way).
    def nearest_agrees(values: np.ndarray, picked: np.ndarray) -> None:
        near_tie = np.abs(values - np.floor(values) - 0.5) < 1e-3
        np.testing.assert_array_equal(picked[~near_tie], np.floor(values[~near_tie] + 0.5) % 256)  # uint8 labels
        assert (np.abs(picked[near_tie] - values[near_tie] % 256) <= 0.5 + 1e-3).all()

    xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)
    cols = lb.to_model(np.stack([xs, np.zeros(w)], 1))[:, 0]
    rows = lb.to_model(np.stack([np.zeros(h), ys], 1))[:, 1]
    col_index = np.tile(np.arange(W, dtype=np.uint8), (H, 1))
    row_index = np.tile(np.arange(H, dtype=np.uint8)[:, None], (1, W))
    nearest_agrees(cols, completion.letterbox_labels(col_index, lb, unletterbox=True)[0].astype(np.float64))
    nearest_agrees(rows, completion.letterbox_labels(row_index, lb, unletterbox=True)[:, 0].astype(np.float64))
    mx = np.arange(lb.box_x, lb.box_x + lb.box_width, dtype=np.float64)
    my = np.arange(lb.box_y, lb.box_y + lb.box_height, dtype=np.float64)
    src_cols = lb.to_image(np.stack([mx, np.zeros_like(mx)], 1))[:, 0]
    src_rows = lb.to_image(np.stack([np.zeros_like(my), my], 1))[:, 1]
    photo_cols = np.tile(np.arange(w) % 256, (h, 1)).astype(np.uint8)
    photo_rows = np.tile((np.arange(h) % 256)[:, None], (1, w)).astype(np.uint8)
    picked_cols = completion.letterbox_labels(photo_cols, lb)[lb.box_y, lb.box_x:lb.box_x + lb.box_width]
    picked_rows = completion.letterbox_labels(photo_rows, lb)[lb.box_y:lb.box_y + lb.box_height, lb.box_x]
    nearest_agrees(np.minimum(src_cols, w - 1), picked_cols.astype(np.float64))
    nearest_agrees(np.minimum(src_rows, h - 1), picked_rows.astype(np.float64))


def test_garment_crops(rng: np.random.Generator) -> None:
    photo, parsing, _ = _person(rng)
    rgb = np.ascontiguousarray(photo[:, :, ::-1])
    rgb[parsing == 7] = (255, 0, 0)  # red shoes
    crops = completion.garment_crops(rgb, parsing, S)
    assert crops.shape == (12, S, S) and crops.dtype == np.float32
    assert crops.min() >= -1.0 - 1e-5 and crops.max() <= 1.0 + 1e-5
    for g in range(4):
        assert np.abs(crops[3 * g:3 * g + 3]).max() > 0.5, completion.GARMENTS[g]
    # the shoes box (8 x 26, wide) padded to a square: its middle row is the shoes, pure red
    np.testing.assert_allclose(crops[9:12, S // 2, S // 2], (1.0, -1.0, -1.0), atol=0.02)

    without_top = completion.garment_crops(rgb, parsing, S, exclude=5)
    np.testing.assert_array_equal(without_top[3:6], 0.0)
    np.testing.assert_array_equal(np.delete(without_top, [3, 4, 5], 0), np.delete(crops, [3, 4, 5], 0))
    no_hat = np.where(parsing == 4, 0, parsing).astype(np.uint8)
    np.testing.assert_array_equal(completion.garment_crops(rgb, no_hat, S)[0:3], 0.0)
    # only the garment's own pixels matter: repainting everything else changes nothing
    repainted = np.where((parsing == 5)[:, :, None], rgb, np.uint8(3))
    np.testing.assert_array_equal(completion.garment_crops(np.ascontiguousarray(repainted), parsing, S)[3:6],
                                  crops[3:6])


def test_noise_is_reproducible() -> None:
    a = completion.noise(7, 3, Z)
    assert a.shape == (3, 2, Z) and a.dtype == np.float32
    np.testing.assert_array_equal(a, completion.noise(7, 3, Z))
    assert not np.array_equal(a, completion.noise(8, 3, Z))
    # sample k of a seed does not depend on how many samples are drawn
    np.testing.assert_array_equal(completion.noise(7, 1, Z), a[:1])
    np.testing.assert_array_equal(completion.noise(7, 5, Z)[:3], a)
    np.testing.assert_array_equal(completion.noise(np.int64(7), 1, Z), a[:1])
    for bad in (-1, 1.5, True, "3", None):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            completion.noise(bad, 1, Z)


def test_parsing_palette(rng: np.random.Generator) -> None:
    palette = completion.PARSING_PALETTE
    assert palette.shape == (8, 3) and palette.dtype == np.uint8 and not palette.flags.writeable
    assert len({tuple(c) for c in palette}) == 8
    _, parsing, _ = _person(rng)
    picture = completion.colorize_parsing(parsing)
    assert picture.shape == (PH, PW, 3) and picture.dtype == np.uint8
    np.testing.assert_array_equal(picture[30, 30], palette[5])


# ------------------------------------------------------------------ bundle manifest
def test_completion_bundle_reads(models: dict[str, Path]) -> None:
    b = read_bundle(models["plan"])
    assert b.task == "completion"
    assert b.completion_spec == bundle.CompletionSpec(crop_size=S, latent=Z, margin=0.1, pad=2)
    plain = {k: v for k, v in _manifest().items() if k != "task"}
    plain["input"] = {k: v for k, v in plain["input"].items() if k != "completion"}
    old = read_bundle(write_bundle(models["folder"] / "old.plan", plain, {}))
    assert old.task == "pose_transfer" and old.completion_spec is None  # no "task": pose transfer, as before


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["input"].pop("completion"), r"task is 'completion' but input has no 'completion'"),
    (lambda m: m["input"].update(completion=[1]), r"input\.completion must be an object"),
    (lambda m: m["input"]["completion"].update(parsing_classes=["background", "top"]),
     r"input\.completion\.parsing_classes is \['background', 'top'\]; this pyposert supports only"),
    (lambda m: m["input"]["completion"]["garments"].reverse(), r"input\.completion\.garments is"),
    (lambda m: m["input"]["completion"].update(crop_size=0), r"input\.completion\.crop_size must be >= 1"),
    (lambda m: m["input"]["completion"].update(latent=2.0), r"input\.completion\.latent must be an integer"),
    (lambda m: m["input"]["completion"].update(margin=-0.5), r"input\.completion\.margin must be finite and >= 0"),
    (lambda m: m["input"]["completion"].update(pad=True), r"input\.completion\.pad must be an integer"),
    (lambda m: m["input"]["completion"].pop("pad"), r"input\.completion has no 'pad'"),
    (lambda m: m.update(task="inpainting"), r"task must be one of \['pose_transfer', 'completion', 'parsing'\]"),
])
def test_invalid_completion_manifests(models: dict[str, Path], tmp_path: Path, edit: Any, message: str) -> None:
    bad = _rewrite_manifest(models["plan"], tmp_path / "bad.plan", edit)
    with pytest.raises(PlanError, match=message):
        read_bundle(bad)
    with pytest.raises(PlanError, match=message):
        Engine(bad)


def test_writer_refuses_what_the_reader_would(tmp_path: Path) -> None:
    m = _manifest()
    del m["input"]["completion"]
    with pytest.raises(ValueError, match="no 'completion' table"):
        write_bundle(tmp_path / "x.plan", m, {})
    assert not (tmp_path / "x.plan").exists()


def test_manifest_and_graph_must_agree(models: dict[str, Path], tmp_path: Path) -> None:
    onnx = models["onnx"].read_bytes()
    wrong_crop = write_bundle(tmp_path / "crop.plan", _manifest(crop=S * 2), {"model.onnx": ("onnx", onnx, None)})
    with pytest.raises(PlanError, match=r"garment_crops \[\?, 12, 16, 16\] float32 does not match .* crop size 32"):
        Engine(wrong_crop)
    plain = {k: v for k, v in _manifest().items() if k != "task"}
    untagged = write_bundle(tmp_path / "untagged.plan", plain, {"model.onnx": ("onnx", onnx, None)})
    with pytest.raises(PlanError, match=r"the manifest's task is 'pose_transfer' but the network's inputs are"):
        Engine(untagged)
    mislabelled = write_bundle(tmp_path / "mislabelled.plan", _manifest(),
                               {"model.onnx": ("onnx", models["pose_transfer"].read_bytes(), None)})
    with pytest.raises(PlanError, match=r"task is 'completion' .*\(a completion network takes"):
        Engine(mislabelled)


# ------------------------------------------------------------------ Engine.complete
def test_engine_reads_the_task(models: dict[str, Path], engine: Engine) -> None:
    assert engine.task == "completion" and engine.size == (H, W) and engine.spec.contract == "completion"
    assert engine.spec.completion == bundle.CompletionSpec(S, Z, 0.1, 2)
    assert engine.spec.heatmap.sigma == 1.5  # the manifest's, not a default
    assert "task='completion'" in repr(engine)
    bare = Engine(models["onnx"], threads=1)
    assert bare.task == "completion" and bare.manifest is None
    assert bare.spec.completion == bundle.CompletionSpec(S, Z, completion.DEFAULT_MARGIN, completion.DEFAULT_PAD)
    assert bare.spec.heatmap.mode == "gaussian" and bare.spec.heatmap.sigma == pytest.approx(6.0 * H / 256)
    assert Engine(models["pose_transfer"]).task == "pose_transfer"


def test_complete_keeps_everything_outside_the_region(engine: Engine, rng: np.random.Generator) -> None:
    photo, parsing, pose = _person(rng)
    result = engine.complete(photo, parsing, pose, "top", seed=3, samples=2)
    assert isinstance(result, Completion) and isinstance(result, pyposert.Completion)
    assert result.seed == 3 and result.garment == "top" and len(result.images) == len(result.parsings) == 2
    box = completion.garment_box(parsing, "top", 0.1, 2)
    np.testing.assert_array_equal(result.region, completion.box_mask(box, PH, PW))
    outside = result.region == 0
    for image, labels in zip(result.images, result.parsings):
        assert image.shape == (PH, PW, 3) and image.dtype == np.uint8
        assert labels.shape == (PH, PW) and labels.dtype == np.uint8 and labels.max() < 8
        np.testing.assert_array_equal(image[outside], photo[outside])
        np.testing.assert_array_equal(labels[outside], parsing[outside])
        # inside, the network's completion: a smooth noise-coloured fill, not the random photo
        assert np.abs(image[~outside].astype(int) - photo[~outside].astype(int)).mean() > 20
    assert not np.array_equal(result.images[0], result.images[1])


def test_seeds_and_samples(engine: Engine, monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    photo, parsing, pose = _person(rng)
    a = engine.complete(photo, parsing, pose, "bottom", seed=11)
    b = engine.complete(photo, parsing, pose, "bottom", seed=11)
    c = engine.complete(photo, parsing, pose, "bottom", seed=12)
    np.testing.assert_array_equal(a.images[0], b.images[0])
    np.testing.assert_array_equal(a.parsings[0], b.parsings[0])
    assert not np.array_equal(a.images[0], c.images[0])

    three = engine.complete(photo, parsing, pose, "bottom", seed=11, samples=3)
    np.testing.assert_array_equal(three.images[0], a.images[0])  # sample 0 whatever `samples` is
    two = engine.complete(photo, parsing, pose, "bottom", seed=11, samples=2)
    np.testing.assert_array_equal(two.images[1], three.images[1])
    # One batched call equals three separate runs fed the matching noise rows.
    rows = completion.noise(11, 3, Z)
    real_noise = completion.noise
    for k in range(3):
        monkeypatch.setattr(completion, "noise", lambda seed, samples, latent, k=k: rows[k:k + 1])
        single = engine.complete(photo, parsing, pose, "bottom", seed=11)
        monkeypatch.setattr(completion, "noise", real_noise)
        np.testing.assert_array_equal(single.images[0], three.images[k])
        np.testing.assert_array_equal(single.parsings[0], three.parsings[k])


def test_fixed_batch_graph_runs_samples_in_chunks(models: dict[str, Path], engine: Engine,
                                                  rng: np.random.Generator) -> None:
    fixed = Engine(models["fixed"], threads=1)
    assert fixed.max_batch == 1
    photo, parsing, pose = _person(rng)
    got = fixed.complete(photo, parsing, pose, "top", seed=5, samples=3)
    bare = Engine(models["onnx"], threads=1)  # same defaults as the fixed graph (no manifest)
    want = bare.complete(photo, parsing, pose, "top", seed=5, samples=3)
    for x, y in zip(got.images, want.images):
        np.testing.assert_array_equal(x, y)


def test_every_input_matters(engine: Engine, rng: np.random.Generator) -> None:
    photo, parsing, pose = _person(rng)
    base = engine.complete(photo, parsing, pose, "top").images[0]
    moved = pose.copy()
    moved[:, 0] += 6.0
    assert not np.array_equal(engine.complete(photo, parsing, moved, "top").images[0], base)
    repainted = photo.copy()
    repainted[parsing == 6] = 255  # the bottom's crop changes; the top's region does not hold it
    assert not np.array_equal(engine.complete(repainted, parsing, pose, "top").images[0], base)


def test_mask_instead_of_a_garment(engine: Engine, rng: np.random.Generator) -> None:
    photo, parsing, pose = _person(rng)
    mask = np.zeros((PH, PW), bool)
    mask[30:60, 15:35] = True
    mask[62:66, 40:44] = True
    result = engine.complete(photo, parsing, pose, None, mask=mask, seed=1)
    assert result.garment is None
    np.testing.assert_array_equal(result.region, mask.astype(np.uint8))
    np.testing.assert_array_equal(result.images[0][~mask], photo[~mask])
    np.testing.assert_array_equal(result.parsings[0][~mask], parsing[~mask])
    # the garment only decides which crop is left out
    top = engine.complete(photo, parsing, pose, "top", mask=mask.astype(np.uint8) * 255, seed=1)
    assert top.garment == "top"
    np.testing.assert_array_equal(top.region, result.region)
    assert not np.array_equal(top.images[0], result.images[0])
    # a mask too thin to survive the letterbox still erases one model pixel
    dot = np.zeros((PH, PW), np.uint8)
    dot[45, 33] = 1
    tiny = engine.complete(photo, parsing, pose, None, mask=dot, output_size="model")
    assert tiny.region.sum() >= 1
    full = engine.complete(photo, parsing, pose, None, mask=dot)
    np.testing.assert_array_equal(full.images[0][dot == 0], photo[dot == 0])


def test_model_output_size(engine: Engine, rng: np.random.Generator) -> None:
    photo, parsing, pose = _person(rng)
    # framing off: the model frame is the whole photo, letterboxed (what this test checks)
    result = engine.complete(photo, parsing, pose, "top", samples=2, output_size="model", framing=False)
    lb = ops.letterbox(PH, PW, H, W)
    assert result.region.shape == (H, W) and result.region.dtype == np.uint8
    for image, labels in zip(result.images, result.parsings):
        assert image.shape == (H, W, 3) and labels.shape == (H, W)
    # outside the model-frame region the graph returns its inputs: the letterboxed photo
    outside = result.region == 0
    expected = ops.from_model_output(ops.to_model_input(photo, H, W)[0], lb, unletterbox=False)
    np.testing.assert_array_equal(result.images[0][outside], expected[outside])
    np.testing.assert_array_equal(result.parsings[0][outside], completion.letterbox_labels(parsing, lb)[outside])
    # the model region is one rectangle covering every model pixel whose centre lies in the photo box
    ys, xs = np.nonzero(result.region)
    assert result.region.sum() == (np.ptp(ys) + 1) * (np.ptp(xs) + 1)
    box = completion.garment_box(parsing, "top", 0.1, 2)
    yy, xx = np.mgrid[0:H, 0:W]
    centres = lb.to_image(np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float64)).reshape(H, W, 2)
    covered = ((centres[..., 0] >= box.x0) & (centres[..., 0] <= box.x1 - 1) & (centres[..., 1] >= box.y0)
               & (centres[..., 1] <= box.y1 - 1))
    assert result.region[covered].all()


def _bad_calls(photo: np.ndarray, parsing: np.ndarray, pose: np.ndarray) -> list[tuple[str, Callable, str]]:
    no_hat = np.where(parsing == 4, 0, parsing).astype(np.uint8)
    return [
        ("parsing shape", lambda e: e.complete(photo, parsing[:-1], pose), "must match the image"),
        ("parsing dtype", lambda e: e.complete(photo, parsing.astype(np.float32), pose), "integer classes"),
        ("parsing classes", lambda e: e.complete(photo, parsing + 3, pose), r"holds classes 3\.\.10"),
        ("garment absent", lambda e: e.complete(photo, no_hat, pose, "hat"), "no 'hat' pixels"),
        ("unknown garment", lambda e: e.complete(photo, parsing, pose, "scarf"), "garment must be one of"),
        ("neither", lambda e: e.complete(photo, parsing, pose, None), "give the garment to erase"),
        ("empty mask", lambda e: e.complete(photo, parsing, pose, mask=np.zeros(parsing.shape, np.uint8)),
         "mask is empty"),
        ("mask shape", lambda e: e.complete(photo, parsing, pose, mask=np.ones((5, 5), np.uint8)),
         "must match the image"),
        ("mask dtype", lambda e: e.complete(photo, parsing, pose, mask=np.ones(parsing.shape, np.float32)),
         "mask must be uint8 or bool"),
        ("negative seed", lambda e: e.complete(photo, parsing, pose, seed=-1), "seed must be a non-negative"),
        ("float seed", lambda e: e.complete(photo, parsing, pose, seed=0.5), "seed must be a non-negative"),
        ("no samples", lambda e: e.complete(photo, parsing, pose, samples=0), "samples must be an integer >= 1"),
        ("bool samples", lambda e: e.complete(photo, parsing, pose, samples=True), "samples must be an integer"),
        ("grey image", lambda e: e.complete(photo[:, :, 0], parsing, pose), "is grey"),
        ("float image", lambda e: e.complete(photo.astype(np.float32), parsing, pose), "must be uint8"),
        ("pose shape", lambda e: e.complete(photo, parsing, pose[:16]), r"expected .*\(18, 2\)"),
        ("pose missing", lambda e: e.complete(photo, parsing, np.full((18, 2), -1.0)), "no joint present"),
        ("output size", lambda e: e.complete(photo, parsing, pose, output_size="big"), "output_size must be one of"),
    ]


def test_bad_input_raises_and_engine_keeps_working(engine: Engine, rng: np.random.Generator) -> None:
    photo, parsing, pose = _person(rng)
    good = engine.complete(photo, parsing, pose, seed=2).images[0]
    for name, call, message in _bad_calls(photo, parsing, pose):
        with pytest.raises(ValueError, match=message):
            call(engine)
        np.testing.assert_array_equal(engine.complete(photo, parsing, pose, seed=2).images[0], good,
                                      err_msg=f"after {name}")


def test_each_task_has_its_methods(models: dict[str, Path], engine: Engine, rng: np.random.Generator) -> None:
    photo, parsing, pose = _person(rng)
    with pytest.raises(ValueError, match=r"Engine\.run\(\) needs a pose_transfer model; .* use Engine\.complete\(\)"):
        engine.run(photo, pose, source_pose=pose)
    with pytest.raises(ValueError, match=r"Engine\.source\(\) needs a pose_transfer model"):
        engine.source(photo, pose)
    transfer = Engine(models["pose_transfer"], threads=1)
    with pytest.raises(ValueError, match=r"Engine\.complete\(\) needs a completion model; .* use Engine\.run\(\)"):
        transfer.complete(photo, parsing, pose, "top")
    assert transfer.run(photo, pose, source_pose=pose).shape == photo.shape  # still usable
    assert engine.complete(photo, parsing, pose).images[0].shape == photo.shape


def test_threads_give_identical_results(engine: Engine, rng: np.random.Generator) -> None:
    photo, parsing, pose = _person(rng)
    expected = [engine.complete(photo, parsing, pose, g, seed=4).images[0] for g in completion.GARMENTS]

    def work(i: int) -> None:
        for _ in range(3):
            g = i % 4
            got = engine.complete(photo, parsing, pose, completion.GARMENTS[g], seed=4).images[0]
            np.testing.assert_array_equal(got, expected[g])

    run_in_threads(work, 4)


def test_torch_backend_runs_completion_programs(models: dict[str, Path], engine: Engine, tmp_path: Path,
                                                rng: np.random.Generator) -> None:
    """A torch.export program of the stub's math, returning (parsing, image), agrees with ONNX
    Runtime on the CPU (torch's parity path; the CUDA path shares the output handling)."""
    torch = pytest.importorskip("torch")
    import io

    class Stub(torch.nn.Module):
        def forward(self, masked_image: Any, masked_parsing: Any, erase_mask: Any, pose_heatmaps: Any,
                    garment_crops: Any, noise: Any) -> Any:
            pose_max = pose_heatmaps.amax(dim=1, keepdim=True)
            crop_mean = garment_crops.mean(dim=(1, 2, 3), keepdim=True)
            raw = torch.tanh(noise[:, 1, :3, None, None] + pose_max + crop_mean)
            gain = torch.zeros(1, 8, 1, 1)
            gain[0, 5] = 4.0
            logits = noise[:, 0, :8, None, None] + pose_max * gain + crop_mean
            parsing = masked_parsing + erase_mask * torch.softmax(logits, dim=1)
            return parsing, masked_image + erase_mask * raw

    batch = torch.export.Dim("batch", min=1, max=8)
    shapes = [(3, H, W), (8, H, W), (1, H, W), (18, H, W), (12, S, S), (2, Z)]
    example = tuple(torch.zeros((2,) + s) for s in shapes)
    names = completion.COMPLETION_INPUTS
    program = torch.export.export(Stub(), example, dynamic_shapes={n: {0: batch} for n in names})
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    plan = write_bundle(tmp_path / "torch.plan", _manifest(),
                        {"model.onnx": ("onnx", models["onnx"].read_bytes(), None),
                         "model.pt2": ("torch-export", buffer.getvalue(), None)})
    e = Engine(plan, backend="torch", device="cpu")
    assert e.backend == "torch" and e.task == "completion" and e._backend.contract == "completion"
    assert list(e._backend.output_spec) == ["parsing", "image"]
    photo, parsing, pose = _person(rng)
    got = e.complete(photo, parsing, pose, "top", seed=9, samples=3)
    want = engine.complete(photo, parsing, pose, "top", seed=9, samples=3)
    for x, y in zip(got.images, want.images):
        assert np.abs(x.astype(int) - y.astype(int)).max() <= 1
    for x, y in zip(got.parsings, want.parsings):
        np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------ command line
@pytest.fixture
def files(tmp_path: Path, rng: np.random.Generator) -> dict[str, Any]:
    import cv2

    photo, parsing, pose = _person(rng)
    paths = {"photo_png": tmp_path / "photo.png", "parsing_png": tmp_path / "parsing.png",
             "pose_json": tmp_path / "pose.json"}
    cv2.imwrite(str(paths["photo_png"]), photo)
    cv2.imwrite(str(paths["parsing_png"]), parsing)
    keypoints = np.concatenate([pose, np.ones((18, 1), np.float32)], 1)
    paths["pose_json"].write_text(json.dumps({"people": [{"pose_keypoints_2d": keypoints.ravel().tolist()}]}))
    return {"photo": photo, "parsing": parsing, "pose": pose, **paths}


def _args(models: dict[str, Path], files: dict[str, Any], *extra: str) -> list[str]:
    return ["complete", "--model", str(models["plan"]), "--image", str(files["photo_png"]), "--parsing",
            str(files["parsing_png"]), "--pose", str(files["pose_json"]), *extra]


def test_cli_complete_writes_samples_and_grid(models: dict[str, Path], files: dict[str, Any], engine: Engine,
                                              tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    out, grid = tmp_path / "out.png", tmp_path / "grid.png"
    code = main(_args(models, files, "--garment", "top", "--samples", "2", "--seed", "3", "--output", str(out),
                      "--grid", str(grid), "--backend", "onnxruntime", "--device", "cpu"))
    printed = capsys.readouterr()
    assert code == 0, printed.err
    line = printed.out.strip()
    assert "\n" not in line and "stub.plan on onnxruntime (cpu)" in line and "erased top" in line
    assert "2 samples" in line and "ms per sample" in line
    expected = engine.complete(files["photo"], files["parsing"], files["pose"], "top", seed=3, samples=2)
    for k in range(2):
        np.testing.assert_array_equal(cv2.imread(str(tmp_path / f"out_{k}.png")), expected.images[k])
    assert not out.exists()
    picture = cv2.imread(str(grid))
    assert picture.shape == (2 * PH, 4 * PW, 3)
    np.testing.assert_array_equal(picture[:PH, :PW], files["photo"])
    assert (picture[:PH, PW:2 * PW][expected.region == 1] == 128).all()  # erased: grey
    np.testing.assert_array_equal(picture[PH:, 2 * PW:3 * PW], completion.colorize_parsing(expected.parsings[0]))

    mask = np.zeros((PH, PW), np.uint8)
    mask[50:70, 20:40] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    single = tmp_path / "single.png"
    assert main(_args(models, files, "--mask", str(tmp_path / "mask.png"), "--output", str(single))) == 0
    np.testing.assert_array_equal(cv2.imread(str(single))[mask == 0], files["photo"][mask == 0])
    assert "erased mask" in capsys.readouterr().out


@pytest.mark.parametrize("change, message", [
    ("colour_parsing", "has 3 channels; it must be a single-channel PNG"),
    ("no_hat", "no 'hat' pixels"),
    ("missing_model", "model file not found"),
    ("missing_pose", "--pose not found"),
    ("no_garment", "give --garment"),
    ("pose_transfer_model", "is a pose_transfer model"),
])
def test_cli_complete_errors(models: dict[str, Path], files: dict[str, Any], tmp_path: Path, change: str,
                             message: str, capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    args = _args(models, files, "--garment", "hat", "--output", str(tmp_path / "out.png"))
    if change == "colour_parsing":
        cv2.imwrite(str(files["parsing_png"]), np.repeat(files["parsing"][:, :, None], 3, axis=2))
    elif change == "no_hat":
        cv2.imwrite(str(files["parsing_png"]), np.where(files["parsing"] == 4, 0, files["parsing"]).astype(np.uint8))
    elif change == "missing_model":
        args[args.index("--model") + 1] = str(tmp_path / "nope.plan")
    elif change == "missing_pose":
        args[args.index("--pose") + 1] = str(tmp_path / "nope.json")
    elif change == "no_garment":
        args.remove("--garment")
        args.remove("hat")
    elif change == "pose_transfer_model":
        args[args.index("--model") + 1] = str(models["pose_transfer"])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyposert complete: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out.png").exists()


def test_cli_complete_rejects_bad_counts(models: dict[str, Path], files: dict[str, Any], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(_args(models, files, "--garment", "top", "--samples", "0", "--output", str(tmp_path / "o.png")))
    assert exc.value.code == 2 and "--samples: must be >= 1, got 0" in capsys.readouterr().err


def test_cli_info_shows_the_task(models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--model", str(models["plan"])]) == 0
    out = capsys.readouterr().out
    assert "task        : completion (Engine.complete())" in out
    assert f"garment crops {S} x {S}, latent {Z}, erase margin 0.1 + 2 px" in out
    assert main(["info", "--model", str(models["onnx"])]) == 0
    assert "task        : completion" in capsys.readouterr().out
    assert main(["info", "--model", str(models["pose_transfer"])]) == 0
    assert "task        : pose_transfer (Engine.run() / source())" in capsys.readouterr().out
    assert main(["info", "--model", str(tmp_path / "nope.plan")]) == 1
    assert "model file not found" in capsys.readouterr().err


# ------------------------------------------------------------------ keeping the photo, the parser
def test_complete_keeps_the_photo_where_the_garment_is_not(engine: Engine, rng: np.random.Generator) -> None:
    """Inside the erase box only the garment is painted: pixels that neither the photo nor the
    completion gives to the garment (background, arms, the other garments) are the photo's."""
    photo, parsing, pose = _person(rng)
    top = completion.garment_class("top")
    result = engine.complete(photo, parsing, pose, "top", seed=1, samples=2)
    region = result.region.astype(bool)
    grown_top = completion.generated_region(region, np.zeros_like(parsing), parsing, top)
    assert grown_top[parsing == top].all() and not grown_top[~region].any()
    for image, labels in zip(result.images, result.parsings):
        kept = completion.generated_region(region, labels, parsing, top)
        left = region & ~kept
        assert kept.any() and left.any()  # the box holds arms and bottom too
        np.testing.assert_array_equal(image[~kept], photo[~kept])
        np.testing.assert_array_equal(labels[left], parsing[left])
        assert np.abs(image[kept].astype(int) - photo[kept].astype(int)).mean() > 20  # the garment is painted
    # With a mask and no garment nothing tells the garment apart: the whole region is painted.
    mask = np.zeros(parsing.shape, np.uint8)
    mask[20:50, 10:60] = 1
    whole = engine.complete(photo, parsing, pose, None, mask=mask, seed=1)
    assert np.abs(whole.images[0][mask == 1].astype(int) - photo[mask == 1].astype(int)).mean() > 20


def test_generated_region_grows_the_photos_garment() -> None:
    labels = np.zeros((9, 9), np.uint8)
    labels[4, 4] = 5
    region = np.ones((9, 9), bool)
    completed = np.zeros((9, 9), np.uint8)
    completed[0, 0] = 5
    kept = completion.generated_region(region, completed, labels, 5, grow=2)
    assert kept[2:7, 2:7].all() and kept[0, 0] and kept.sum() == 26
    assert not completion.generated_region(np.zeros((9, 9), bool), completed, labels, 5).any()


def parser_stub_onnx(path: Path, height: int, width: int) -> Path:
    """A parser with the parsing contract: logits = bias + 6 x (max pose heatmap) for "top"
    + 0.1 x mean photo for "background", softmax over the 8 classes: "top" near the joints,
    background elsewhere."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    def value(name: str, channels: int) -> Any:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", channels, height, width])

    bias = np.full((1, 8, 1, 1), -3.0, np.float32)
    bias[0, 0] = 1.0
    gain = np.zeros((1, 8, 1, 1), np.float32)
    gain[0, 5] = 6.0
    photo_gain = np.zeros((1, 8, 1, 1), np.float32)
    photo_gain[0, 0] = 0.1
    inits = [numpy_helper.from_array(bias, "bias"), numpy_helper.from_array(gain, "gain"),
             numpy_helper.from_array(photo_gain, "photo_gain")]
    nodes = [helper.make_node("ReduceMax", ["pose_heatmaps"], ["pose_max"], axes=[1], keepdims=1),
             helper.make_node("ReduceMean", ["photo"], ["photo_mean"], axes=[1], keepdims=1),
             helper.make_node("Mul", ["pose_max", "gain"], ["a"]),
             helper.make_node("Mul", ["photo_mean", "photo_gain"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["ab"]),
             helper.make_node("Add", ["ab", "bias"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["parsing"], axis=1)]
    graph = helper.make_graph(nodes, "stub_parser", [value("photo", 3), value("pose_heatmaps", 18)],
                              [value("parsing", 8)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def parser_models(models: dict[str, Path]) -> dict[str, Path]:
    onnx = parser_stub_onnx(models["folder"] / "parser.onnx", H, W)
    manifest = _manifest()
    manifest["task"] = "parsing"
    manifest["model"]["name"] = "parser-stub"
    del manifest["input"]["completion"]
    plan = write_bundle(models["folder"] / "parser.plan", manifest,
                        {"model.onnx": ("onnx", onnx.read_bytes(), {"opset": 17})})
    return {"onnx": onnx, "plan": plan}


def test_parser_task_and_parse(parser_models: dict[str, Path], engine: Engine, rng: np.random.Generator) -> None:
    photo, parsing, pose = _person(rng)
    parser = Engine(parser_models["plan"], threads=1)
    assert parser.task == "parsing" and parser.spec.contract == "parsing" and parser.size == (H, W)
    assert "task='parsing'" in repr(parser) and parser.spec.heatmap.sigma == 1.5
    labels = parser.parse(photo, pose)
    assert labels.shape == (PH, PW) and labels.dtype == np.uint8
    assert set(np.unique(labels)) == {0, 5}
    # "top" where the stub's heatmaps are high: at the joints, background far from them
    for x, y in pose[pose[:, 0] >= 0].round().astype(int):
        assert labels[min(y, PH - 1), min(x, PW - 1)] == 5
    assert labels[0, 0] == 0 and labels[PH - 1, 0] == 0
    np.testing.assert_array_equal(parser.parse(photo, pose, framing=False).shape, (PH, PW))
    bare = Engine(parser_models["onnx"], threads=1)
    assert bare.task == "parsing" and bare.size == (H, W)
    np.testing.assert_array_equal(bare.parse(photo, pose, framing=False), parser.parse(photo, pose, framing=False))
    with pytest.raises(ValueError, match=r"Engine\.run\(\) needs a pose_transfer model; .* use Engine\.parse\(\)"):
        parser.run(photo, pose, source_pose=pose)
    with pytest.raises(ValueError, match=r"Engine\.parse\(\) needs a parsing model; .* use Engine\.complete\(\)"):
        engine.parse(photo, pose)
    with pytest.raises(ValueError, match="pose has no joint present"):
        parser.parse(photo, np.full((18, 2), -1.0, np.float32))
    assert parser.parse(photo, pose).shape == (PH, PW)  # still usable


def test_cli_complete_without_a_parsing_map(models: dict[str, Path], parser_models: dict[str, Path],
                                            files: dict[str, Any], engine: Engine, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    out = tmp_path / "out.png"
    args = _args(models, files, "--garment", "top", "--seed", "2", "--output", str(out), "--parser",
                 str(parser_models["plan"]))
    i = args.index("--parsing")
    del args[i:i + 2]
    code = main(args)
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "(parsing by parser.plan)" in printed.out
    labels = Engine(parser_models["plan"], threads=1).parse(files["photo"], files["pose"])
    expected = engine.complete(files["photo"], labels, files["pose"], "top", seed=2)
    np.testing.assert_array_equal(cv2.imread(str(out)), expected.images[0])
    # a parser that is not one
    args[args.index("--parser") + 1] = str(models["plan"])
    assert main(args) == 2
    assert "is a completion model, not a parsing model" in capsys.readouterr().err


def test_cli_complete_without_a_pose_needs_the_estimator(models: dict[str, Path], files: dict[str, Any],
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pyposert.estimators import default_estimator

    estimator = default_estimator(static_image_mode=True)
    if estimator is not None:
        estimator.close()
        pytest.skip("MediaPipe is installed here: the pose would be estimated")
    args = _args(models, files, "--garment", "top", "--output", str(tmp_path / "out.png"))
    i = args.index("--pose")
    del args[i:i + 2]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "give --pose POSE.json" in err and "MediaPipe" in err and err.count("\n") == 1
