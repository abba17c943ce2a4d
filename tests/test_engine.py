"""pyposert.Engine end to end on real (tiny) ONNX models, with ONNX Runtime on the CPU.

Fixtures build everything here: a tiny PoNA generator exported to ONNX (dynamic batch),
bundles written with pyposert.bundle.write_bundle, and two stub graphs made with onnx.helper
whose outputs expose what the engine fed them (heatmap maxima, keypoint values), so the
letterbox and keypoint mapping are checked where the joints land.

GPU backends (TensorRT, torch on CUDA) have tests marked ``tensorrt`` / ``cuda`` that skip
with the reason where those are missing; nothing fakes their results.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import pyposert
from pyposert import ops
from pyposert.backends import backends_report, tensorrt_backend
from pyposert.bundle import write_bundle
from pyposert.engine import Engine
from pyposert.errors import BackendUnavailable, PlanError
from stub_models import export_generator_onnx, heatmap_pair_onnx, keypoint_x_onnx, run_in_threads, torch_cuda

H, W = 32, 24  # tiny generator's model frame
SH, SW = 64, 48  # stub graphs' model frame


# ------------------------------------------------------------------ fixtures
def _manifest(height: int, width: int, heatmap: dict[str, Any], config: dict[str, Any] | None = None) -> dict:
    return {"model": {"name": "pona", "version": "test", "config": config or {}},
            "input": {"height": height, "width": width, "keypoint_format": "coco18", "keypoint_order": "xy",
                      "image": "rgb", "normalisation": "[-1,1]", "heatmap": heatmap}}


DEFAULT_HEATMAP = {"mode": "gaussian", "sigma": 6.0 * H / 256.0, "radius": 4.0}  # DESIGN.md's, as a bare ONNX gets


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny PoNA generator (32 x 24) and its standard-op ONNX export (dynamic batch)."""
    torch = pytest.importorskip("torch")
    from training.models import build_generator

    torch.manual_seed(0)
    generator = build_generator("pona", "rt", ngf=4, n_blocks=1, height=H, width=W).eval()
    with torch.no_grad():  # non-zero attention gains, so every path of the block matters
        for block in generator.blocks:
            block.gamma.fill_(0.5)
            block.fusion_attention.gamma.fill_(0.5)
    folder = tmp_path_factory.mktemp("tiny")
    path = folder / "tiny.onnx"
    export_generator_onnx(generator, path, H, W)
    bundle = write_bundle(folder / "tiny.plan", _manifest(H, W, DEFAULT_HEATMAP, generator.config.to_dict()),
                          {"model.onnx": ("onnx", path.read_bytes(), {"opset": 17})})
    return {"generator": generator, "onnx": path, "bundle": bundle, "folder": folder}


@pytest.fixture(scope="module")
def engine(tiny: dict[str, Any]) -> Engine:
    return Engine(tiny["bundle"], threads=2, framing=False)  # these tests check the letterbox path


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx")
    return heatmap_pair_onnx(tmp_path_factory.mktemp("stub") / "stub.onnx", SH, SW)


def _image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _pose(rng: np.random.Generator, h: int, w: int, margin: float = 0.1) -> np.ndarray:
    """(18, 2) (x, y) inside the central part of an h x w image."""
    return np.stack([rng.uniform(margin * w, (1 - margin) * w, 18),
                     rng.uniform(margin * h, (1 - margin) * h, 18)], 1).astype(np.float32)


def _only(joint: int, x: float, y: float) -> np.ndarray:
    """A pose with one joint present at (x, y), the rest missing."""
    pose = np.full((18, 2), -1.0, np.float32)
    pose[joint] = (x, y)
    return pose


# ------------------------------------------------------------------ correctness
def test_bare_onnx_and_bundle_match_torch(tiny: dict[str, Any], engine: Engine, rng: np.random.Generator) -> None:
    """The engine's output equals the generator run by torch on the same letterboxed inputs."""
    import torch
    from training.ops import heatmaps_pair

    image, src, tgt = _image(rng, 70, 45), _pose(rng, 70, 45), _pose(rng, 70, 45)
    x, box = ops.to_model_input(image, H, W)
    kp_src = torch.from_numpy(box.to_model(src))[None]
    kp_tgt = torch.from_numpy(box.to_model(tgt))[None]
    pose = heatmaps_pair(kp_src, kp_tgt, H, W, sigma=DEFAULT_HEATMAP["sigma"])
    with torch.no_grad():
        y = tiny["generator"](torch.from_numpy(x)[None], pose)[0].numpy()
    expected = ops.from_model_output(y, box)

    bare = Engine(tiny["onnx"], framing=False)
    assert bare.backend == "onnxruntime" and bare.device == "cpu" and bare.size == (H, W)
    assert engine.backend == "onnxruntime" and engine.manifest["model"]["name"] == "pona"
    for e in (bare, engine):
        out = e.run(image, tgt, source_pose=src)
        assert out.shape == (70, 45, 3) and out.dtype == np.uint8
        assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    np.testing.assert_array_equal(bare.run(image, tgt, source_pose=src), engine.run(image, tgt, source_pose=src))


def test_output_sizes_and_source_cache(engine: Engine, rng: np.random.Generator) -> None:
    image, src = _image(rng, 50, 90), _pose(rng, 50, 90)
    poses = [_pose(rng, 50, 90) for _ in range(3)]
    assert engine.run(image, poses[0], src).shape == (50, 90, 3)
    assert engine.run(image, poses[0], src, output_size="model").shape == (H, W, 3)
    source = engine.source(image, src)
    assert source.image_size == (50, 90) and source.keypoints.shape == (18, 2)
    for pose in poses:
        np.testing.assert_array_equal(source.run(pose), engine.run(image, pose, src))
        np.testing.assert_array_equal(source.run(pose, output_size="model"),
                                      engine.run(image, pose, src, output_size="model"))
    batch = source.run_batch(poses)
    assert len(batch) == 3
    for pose, out in zip(poses, batch):
        np.testing.assert_array_equal(out, source.run(pose))
    np.testing.assert_array_equal(source.run_batch(np.stack(poses), output_size="model")[2],
                                  source.run(poses[2], output_size="model"))


def test_keypoints_land_through_the_letterbox(stub: Path, rng: np.random.Generator) -> None:
    """Stub graph: R shows the source heatmaps' max, G the target's, B the photo's blue."""
    e = Engine(stub, framing=False, required_joints=())  # the whole photo, letterboxed; single-joint poses
    assert e.size == (SH, SW) and e.spec.heatmap.sigma == pytest.approx(6.0 * SH / 256)
    h, w = 90, 200  # wide photo: letterbox bars above and below
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = (xx * 255 // (w - 1)).astype(np.uint8)  # blue ramp (BGR order)
    image[..., 1], image[..., 2] = 30, 200
    src, tgt = _only(0, 150.0, 30.0), _only(4, 40.0, 70.0)
    box = ops.letterbox(h, w, SH, SW)
    assert box.box_y > 0  # the case being tested: content box below a bar

    model = e.run(image, tgt, source_pose=src, output_size="model")
    for channel, pose in ((2, src), (1, tgt)):  # BGR: R = source maps, G = target maps
        row, col = np.unravel_index(np.argmax(model[..., channel]), model.shape[:2])
        mx, my = box.to_model(pose)[0 if channel == 2 else 4]
        assert abs(col - mx) <= 0.5 and abs(row - my) <= 0.5
    # Letterbox bars hold no image: blue there is the pad value (white, 255).
    assert (model[: box.box_y - 1, :, 0] == 255).all()

    full = e.run(image, tgt, source_pose=src)
    assert full.shape == (h, w, 3)
    # Back at the photo's size the target blob is centred on the joint (one model pixel is
    # 1 / 0.24 = 4.2 photo pixels, yet the centroid lands within a tenth of a photo pixel).
    green = full[..., 1].astype(np.float64)
    cx, cy = (green * xx).sum() / green.sum(), (green * yy).sum() / green.sum()
    assert abs(cx - 40) <= 0.1 and abs(cy - 70) <= 0.1
    # The photo's blue comes back where it was (resampled down to 48 px wide and up again).
    assert np.abs(full[..., 0].astype(int) - image[..., 0].astype(int)).max() <= 3

    # A driving frame of another size: its keypoints go through its own letterbox.
    frame_h, frame_w = 300, 400
    driver = _only(4, 200.0, 150.0)
    model = e.run(image, driver, source_pose=src, target_size=(frame_h, frame_w), output_size="model")
    mx, my = ops.letterbox(frame_h, frame_w, SH, SW).to_model(driver)[4]
    row, col = np.unravel_index(np.argmax(model[..., 1]), model.shape[:2])
    assert abs(col - mx) <= 0.5 and abs(row - my) <= 0.5
    np.testing.assert_array_equal(e.source(image, src).run(driver, pose_size=(frame_h, frame_w), output_size="model"),
                                  model)

    # Missing joints (negative, or confidence below 0.05) draw nothing.
    low = np.concatenate([tgt, np.full((18, 1), 0.01, np.float32)], 1)
    for pose in (np.full((18, 2), -1.0, np.float32), low):
        assert (e.run(image, pose, source_pose=src, output_size="model")[..., 1] == 0).all()
    # A joint on the photo's first column (mapped a fraction of a pixel below 0) still draws.
    edge = e.run(image, _only(2, 0.0, 45.0), source_pose=src, output_size="model")
    assert edge[..., 1].max() > 200


def test_bundle_heatmap_convention_is_used(stub: Path, tmp_path: Path, rng: np.random.Generator) -> None:
    """The manifest, not a default, decides the heatmaps: disks of radius 3 here."""
    bundle = write_bundle(tmp_path / "disk.plan", _manifest(SH, SW, {"mode": "disk", "sigma": 0.0, "radius": 3.0}),
                          {"model.onnx": ("onnx", stub.read_bytes(), None)})
    e = Engine(bundle, framing=False, required_joints=())
    assert e.spec.heatmap.mode == "disk" and e.spec.heatmap.radius == 3.0
    image = _image(rng, SH, SW)  # model size: identity letterbox
    out = e.run(image, _only(5, 20.0, 30.0), source_pose=_only(0, 10.0, 10.0), output_size="model")
    green = out[..., 1]
    assert set(np.unique(green)) == {0, 255}
    yy, xx = np.mgrid[0:SH, 0:SW]
    np.testing.assert_array_equal(green == 255, (xx - 20) ** 2 + (yy - 30) ** 2 <= 9)


def test_keypoint_contract_gets_model_pixels(tmp_path: Path, rng: np.random.Generator) -> None:
    """A keypoint-contract graph receives (x, y) model pixels for both poses."""
    pytest.importorskip("onnx")
    e = Engine(keypoint_x_onnx(tmp_path / "kp.onnx", SH, SW), framing=False, required_joints=())
    assert e.spec.contract == "keypoints"
    image = _image(rng, 120, 100)
    box = ops.letterbox(120, 100, SH, SW)
    src, tgt = _only(0, 60.0, 50.0), _only(0, 30.0, 80.0)
    for out in (e.run(image, tgt, source_pose=src, output_size="model"),
                e.source(image, src).run_batch([src, tgt], output_size="model")[1]):
        tx, sx = box.to_model(tgt)[0, 0], box.to_model(src)[0, 0]
        assert abs(int(out[0, 0, 2]) - 255 * tx / SW) <= 0.51  # R: target x
        assert abs(int(out[0, 0, 1]) - 255 * sx / SW) <= 0.51  # G: source x


def test_fixed_batch_graph_runs_batches_in_chunks(tmp_path: Path, rng: np.random.Generator) -> None:
    pytest.importorskip("onnx")
    e = Engine(heatmap_pair_onnx(tmp_path / "b1.onnx", SH, SW, batch=1))
    assert e.max_batch == 1
    image, src = _image(rng, 40, 40), _pose(rng, 40, 40)
    source = e.source(image, src)
    poses = [_pose(rng, 40, 40) for _ in range(3)]
    for pose, out in zip(poses, source.run_batch(poses)):
        np.testing.assert_array_equal(out, source.run(pose))


def test_openpose_input_end_to_end(engine: Engine, rng: np.random.Generator) -> None:
    image, src, tgt = _image(rng, 60, 40), _pose(rng, 60, 40), _pose(rng, 60, 40)
    conf = np.ones((18, 1), np.float32)
    coco = {"people": [{"pose_keypoints_2d": np.concatenate([tgt, conf], 1).ravel().tolist()}]}
    body25 = np.zeros((25, 3), np.float32)
    body25[[0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]] = np.concatenate([tgt, conf], 1)
    body = {"people": [{"pose_keypoints_2d": body25.ravel().tolist()}]}
    expected = engine.run(image, tgt, source_pose=src)
    np.testing.assert_array_equal(engine.run(image, coco, source_pose=src), expected)
    np.testing.assert_array_equal(engine.run(image, body, source_pose=src), expected)


# ------------------------------------------------------------------ errors
def _bad_calls(image: np.ndarray, pose: np.ndarray) -> list[tuple[str, Callable[[Engine], Any], str]]:
    no_hips = pose.copy()
    no_hips[[8, 11]] = np.nan  # NaN is missing (the one convention); the hips are required
    no_neck = pose.copy()
    no_neck[[1, 2]] = -1  # without a shoulder the neck cannot be put between the shoulders either
    return [
        ("empty", lambda e: e.run(np.zeros((0, 0, 3), np.uint8), pose, pose), "empty"),
        ("grey", lambda e: e.run(image[..., 0], pose, pose), "grey"),
        ("grey1", lambda e: e.run(image[..., :1], pose, pose), "grey"),
        ("rgba", lambda e: e.run(np.dstack([image, image[..., :1]]), pose, pose), "4 channels"),
        ("16-bit", lambda e: e.run(image.astype(np.uint16) * 257, pose, pose), "16-bit"),
        ("float", lambda e: e.run(image.astype(np.float32) / 255, pose, pose), "floating point"),
        ("small", lambda e: e.run(image[:7], pose, pose), "at least 8 x 8"),
        ("list", lambda e: e.run(image.tolist(), pose, pose), "numpy"),
        ("count", lambda e: e.run(image, pose[:16], pose), r"COCO-17.*\(18, 2\).*got shape \(16, 2\)"),
        ("source count", lambda e: e.run(image, pose, np.ones((26, 2))), "source_pose"),
        ("no hips", lambda e: e.run(image, no_hips, pose), r"pose: too few joints.*r_hip, l_hip are missing"),
        ("no neck", lambda e: e.run(image, pose, no_neck), r"source_pose: too few joints.*neck is missing"),
        ("all missing", lambda e: e.run(image, pose, np.full((18, 2), -1.0)), r"source_pose: too few joints.*0 of 18"),
        ("bad minimum", lambda e: Engine(e._model.path, required_joints=(18,)), "required_joints"),
        ("openpose", lambda e: e.run(image, {"people": [{"pose_keypoints_2d": [1.0] * 10}]}, pose), "54 numbers"),
        ("no people", lambda e: e.run(image, {"people": []}, pose), "no person"),
        ("no source pose", lambda e: e.run(image, pose), r"source_pose=.*pose_estimator="),
        ("output size", lambda e: e.run(image, pose, pose, output_size="big"), "output_size"),
        ("target size", lambda e: e.run(image, pose, pose, target_size=(0, 5)), "positive"),
        ("target size 3", lambda e: e.run(image, pose, pose, target_size=(1, 2, 3)), "height, width"),
        ("target size float", lambda e: e.run(image, pose, pose, target_size=(10.5, 20)), "integers"),
        ("empty batch", lambda e: e.source(image, pose).run_batch([]), "at least one"),
        ("batch of one dict", lambda e: e.source(image, pose).run_batch({"people": []}), "sequence of poses"),
    ]


def test_bad_input_raises_and_engine_keeps_working(engine: Engine, rng: np.random.Generator) -> None:
    image, pose = _image(rng, 40, 30), _pose(rng, 40, 30)
    good = engine.run(image, pose, pose)
    for name, call, message in _bad_calls(image, pose):
        with pytest.raises(ValueError, match=message):
            call(engine)
        np.testing.assert_array_equal(engine.run(image, pose, pose), good, err_msg=f"after {name}")


def test_strided_image_views_are_accepted(engine: Engine, rng: np.random.Generator) -> None:
    big = _image(rng, 80, 60)
    pose = _pose(rng, 40, 30)
    crop = big[10:50, 5:35]  # padded rows: used as is
    np.testing.assert_array_equal(engine.run(crop, pose, pose), engine.run(crop.copy(), pose, pose))
    for view in (big[:40, :30][:, ::-1], big[:40, :30][::-1], big[:40, :30, ::-1]):  # negative strides: copied
        np.testing.assert_array_equal(engine.run(view, pose, pose), engine.run(view.copy(), pose, pose))


def test_pose_estimator_hook(tiny: dict[str, Any], rng: np.random.Generator) -> None:
    image, pose = _image(rng, 40, 30), _pose(rng, 40, 30)
    seen: list[tuple[int, ...]] = []

    def estimate(img: np.ndarray) -> np.ndarray:
        seen.append(img.shape)
        return pose

    e = Engine(tiny["onnx"], pose_estimator=estimate)
    np.testing.assert_array_equal(e.run(image, pose), e.run(image, pose, source_pose=pose))
    assert seen == [(40, 30, 3)]


def _corrupt_variants(bundle: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    data = bundle.read_bytes()
    out: dict[str, tuple[Path, str]] = {}

    def put(name: str, payload: bytes, message: str) -> None:
        path = folder / name
        path.write_bytes(payload)
        out[name] = (path, message)

    put("truncated.plan", data[: len(data) // 2], "truncated or corrupt")
    put("empty.plan", b"", "empty file")
    put("foreign.plan", bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)),
        "neither a pyposert bundle nor an ONNX")
    put("garbage.onnx", b"not a protobuf at all" * 50, "cannot load garbage.onnx")
    # A payload byte flipped: the manifest hash no longer matches.
    with zipfile.ZipFile(bundle) as zf:
        entries = {i.filename: zf.read(i) for i in zf.infolist()}
    onnx_bytes = bytearray(entries["model.onnx"])
    onnx_bytes[len(onnx_bytes) // 2] ^= 0xFF
    newer = json.loads(entries["manifest.json"])
    newer["format_version"] = 99
    foreign = dict(newer, format="someone-elses-format", format_version=1)
    for name, replaced, message in (
            ("flipped.plan", {"model.onnx": bytes(onnx_bytes)}, "SHA-256"),
            ("newer.plan", {"manifest.json": json.dumps(newer).encode()}, "upgrade pyposert"),
            ("foreign-zip.plan", {"manifest.json": json.dumps(foreign).encode()}, "not a pyposert .plan bundle")):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            for entry, payload in {**entries, **replaced}.items():
                zf.writestr(entry, payload)
        put(name, buffer.getvalue(), message)
    return out


def test_unusable_files_raise_plan_error(engine: Engine, tiny: dict[str, Any], tmp_path: Path,
                                         rng: np.random.Generator) -> None:
    image, pose = _image(rng, 40, 30), _pose(rng, 40, 30)
    good = engine.run(image, pose, pose)
    for name, (path, message) in _corrupt_variants(tiny["bundle"], tmp_path).items():
        with pytest.raises(PlanError, match=message):
            Engine(path)
        np.testing.assert_array_equal(engine.run(image, pose, pose), good, err_msg=f"after {name}")
    with pytest.raises(FileNotFoundError):
        Engine(tmp_path / "missing.plan")
    with pytest.raises(PlanError, match="directory"):
        Engine(tmp_path)
    with pytest.raises(PlanError, match="neither"):
        Engine(_corrupt_variants(tiny["bundle"], tmp_path)["foreign.plan"][0], backend="onnxruntime")


def test_manifest_must_match_the_graph(tiny: dict[str, Any], tmp_path: Path) -> None:
    wrong = write_bundle(tmp_path / "wrong.plan", _manifest(64, 48, DEFAULT_HEATMAP),
                         {"model.onnx": ("onnx", tiny["onnx"].read_bytes(), None)})
    with pytest.raises(PlanError, match="does not match the model spec"):
        Engine(wrong)


# ------------------------------------------------------------------ threads
def test_threads_give_identical_results(engine: Engine, rng: np.random.Generator) -> None:
    image, src = _image(rng, 64, 48), _pose(rng, 64, 48)
    poses = [_pose(rng, 64, 48) for _ in range(3)]
    source = engine.source(image, src)
    expected = [source.run(p) for p in poses]
    results: dict[int, list[np.ndarray]] = {}

    def work(index: int) -> None:
        mine = [source.run(p) for p in poses]  # shared Source: per-thread buffers
        mine += [engine.run(image, p, src) for p in poses]
        mine += source.run_batch(poses)
        results[index] = mine

    run_in_threads(work, 4)
    for index in range(4):
        for out, want in zip(results[index], expected * 3):
            np.testing.assert_array_equal(out, want)


# ------------------------------------------------------------------ backends
def test_backend_selection_and_messages(tiny: dict[str, Any]) -> None:
    assert Engine(tiny["bundle"], backend="auto", device="cpu").backend == "onnxruntime"
    assert Engine(tiny["onnx"], backend="onnxruntime", threads=1).backend == "onnxruntime"
    with pytest.raises(ValueError, match="backend must be one of"):
        Engine(tiny["onnx"], backend="tflite")
    with pytest.raises(ValueError, match="device must be"):
        Engine(tiny["onnx"], device="gpu")
    with pytest.raises(ValueError, match="threads"):
        Engine(tiny["onnx"], threads=0)
    with pytest.raises(BackendUnavailable, match="bare file"):
        Engine(tiny["onnx"], backend="torch")
    with pytest.raises(BackendUnavailable, match="no torch program"):
        Engine(tiny["bundle"], backend="torch")
    with pytest.raises(BackendUnavailable, match="TensorRT runs on a CUDA device"):
        Engine(tiny["bundle"], backend="tensorrt", device="cpu")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(BackendUnavailable, match="CUDAExecutionProvider"):
            Engine(tiny["onnx"], backend="onnxruntime", device="cuda")


def test_tensorrt_missing_is_reported(tiny: dict[str, Any]) -> None:
    _, ok, reason = tensorrt_backend.availability()
    if ok:
        pytest.skip("TensorRT is available here: the missing-TensorRT message cannot be checked")
    with pytest.raises(BackendUnavailable) as info:
        Engine(tiny["bundle"], backend="tensorrt")
    assert str(info.value) == reason and reason  # e.g. "TensorRT is not installed. ... pip install ..."
    # auto falls through to ONNX Runtime, and says nothing about it
    assert Engine(tiny["bundle"]).backend == "onnxruntime"


def test_backends_report() -> None:
    report = backends_report()
    assert [r["name"] for r in report] == ["tensorrt", "torch", "onnxruntime"]
    for row in report:
        assert isinstance(row["available"], bool) and isinstance(row["reason"], str) and row["reason"]
    onnxruntime = report[2]
    assert onnxruntime["available"] and "CPUExecutionProvider" in onnxruntime["reason"]


@pytest.fixture(scope="module")
def torch_bundle(tiny: dict[str, Any]) -> Path:
    """The tiny model as a bundle with a torch.export program next to the ONNX graph. The
    program keeps the custom op pyposert::attention (not plain_attention), so loading it
    where the training package is absent exercises the runtime's kernel-backed op."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=16)
    example = (torch.zeros(2, 3, H, W), torch.zeros(2, 36, H, W))
    with torch.no_grad():
        program = torch.export.export(tiny["generator"], example,
                                      dynamic_shapes={"source_image": {0: batch}, "pose_heatmaps": {0: batch}})
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return write_bundle(tiny["folder"] / "tiny_torch.plan",
                        _manifest(H, W, DEFAULT_HEATMAP, tiny["generator"].config.to_dict()),
                        {"model.onnx": ("onnx", tiny["onnx"].read_bytes(), None),
                         "model.pt2": ("torch-export", buffer.getvalue(), None)})


def test_torch_backend_cpu_parity(torch_bundle: Path, engine: Engine, rng: np.random.Generator) -> None:
    """torch on the CPU (parity checks) agrees with ONNX Runtime; auto still picks ONNX
    Runtime on a machine without CUDA."""
    import torch

    if not torch.cuda.is_available():
        assert Engine(torch_bundle).backend == "onnxruntime"
    e = Engine(torch_bundle, backend="torch", device="cpu", framing=False)  # like the `engine` fixture
    assert e.backend == "torch" and e.device == "cpu"
    image, src = _image(rng, 50, 40), _pose(rng, 50, 40)
    poses = [_pose(rng, 50, 40) for _ in range(2)]
    for pose, out in zip(poses, e.source(image, src).run_batch(poses)):
        assert np.abs(out.astype(int) - engine.run(image, pose, src).astype(int)).max() <= 1


_FRESH_PROCESS = """
import sys
import numpy as np
from pyposert.engine import Engine
bundle = sys.argv[1]
rng = np.random.default_rng(5)
image = rng.integers(0, 256, (50, 40, 3), dtype=np.uint8)
src, tgt = (np.stack([rng.uniform(5, 35, 18), rng.uniform(5, 45, 18)], 1) for _ in range(2))
torch_out = Engine(bundle, backend="torch", device="cpu").run(image, tgt, source_pose=src)
ort_out = Engine(bundle, backend="onnxruntime").run(image, tgt, source_pose=src)
assert "training" not in sys.modules, "the runtime must not need the training package"
print(int(np.abs(torch_out.astype(int) - ort_out.astype(int)).max()))
"""


def test_runtime_runs_without_torch(stub: Path) -> None:
    """The runtime (Engine, every backend module, the report) never imports torch by itself."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "import pyposert.engine, pyposert.backends.onnxruntime_backend as a, pyposert.backends.torch_backend as b\n"
            "import pyposert.backends.tensorrt_backend as c\n"
            "e = pyposert.engine.Engine(sys.argv[1])\n"
            "e.run(np.zeros((20, 20, 3), np.uint8), np.full((18, 2), 5.0), np.full((18, 2), 5.0))\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code, str(stub)], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent)
    assert done.returncode == 0, done.stderr[-2000:]


def test_torch_program_with_custom_op_loads_without_training(torch_bundle: Path) -> None:
    """A fresh interpreter (no training package) loads a program that calls
    pyposert::attention: the runtime registers it with pyposert's fused kernel."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", _FRESH_PROCESS, str(torch_bundle)], capture_output=True, text=True,
                          cwd=repo / "tests", timeout=120)  # cwd: keep the repo root (training/) off sys.path
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip().splitlines()[-1]) <= 1


# ------------------------------------------------------------------ GPU (skip without one)
def assert_batched_close(batched: np.ndarray, single: np.ndarray) -> None:
    """A GPU backend's batched frame against the same frame rendered alone.

    Not bitwise equal, and not expected to be: cuDNN/cuBLAS (and TensorRT's tactics) choose
    their convolution and matrix kernels per batch size, so sums are accumulated in another
    order, and in fp16 the last-bit differences grow through the layers. The bound is the
    same order as the fp16 network's own difference from fp32 (see
    test_torch_cuda_frames_match_cpu); on the CPU backends batched frames are bitwise equal
    (test_output_sizes_and_source_cache)."""
    diff = np.abs(batched.astype(int) - single.astype(int))
    assert diff.mean() < 0.5 and diff.max() <= 12, (float(diff.mean()), int(diff.max()))


@pytest.mark.cuda
@pytest.mark.skipif(not torch_cuda(), reason="needs torch with CUDA and pyposert's CUDA kernels on a CUDA device")
def test_torch_cuda_frames_match_cpu(torch_bundle: Path, engine: Engine, rng: np.random.Generator) -> None:
    e = Engine(torch_bundle)  # auto: torch on CUDA (no TensorRT engine in this bundle)
    assert e.backend == "torch" and e.device.startswith("cuda")
    image, src = _image(rng, 50, 40), _pose(rng, 50, 40)
    source = e.source(image, src)
    poses = [_pose(rng, 50, 40) for _ in range(3)]
    for _ in range(2):  # the second pass replays the captured CUDA graph
        for pose in poses:
            diff = np.abs(source.run(pose).astype(int) - engine.run(image, pose, src).astype(int))
            assert diff.mean() < 1.0 and diff.max() <= 12  # fp16 network
    for pose, out in zip(poses, source.run_batch(poses)):
        assert_batched_close(out, source.run(pose))


class _HostMemoryRuntime:
    """Stands in for cuda.bindings.runtime's allocation calls with host memory, to check the
    TensorRT backend's address arithmetic (views, pinned wrapping) on any machine. It runs no
    CUDA and no TensorRT: no inference result is involved."""

    class cudaError_t:  # noqa: N801 - mirrors cuda-python's enum name
        cudaSuccess = 0

    def __init__(self) -> None:
        self.blocks: dict[int, Any] = {}
        self.freed: list[int] = []

    def _alloc(self, nbytes: int) -> tuple[int, int]:
        block = np.zeros(nbytes, np.uint8)
        self.blocks[block.ctypes.data] = block
        return 0, block.ctypes.data

    def cudaMalloc(self, nbytes: int) -> tuple[int, int]:  # noqa: N802
        return self._alloc(nbytes)

    cudaMallocHost = cudaMalloc

    def cudaFree(self, ptr: int) -> tuple[int]:  # noqa: N802
        self.freed.append(ptr)
        return (0,)

    cudaFreeHost = cudaFree


def test_tensorrt_device_views_and_pinned_buffers() -> None:
    import gc

    rt = _HostMemoryRuntime()
    pose = tensorrt_backend.DeviceArray(rt, (3, 36, 5, 4), np.float16)
    assert pose.nbytes == 3 * 36 * 5 * 4 * 2
    interface = pose.__cuda_array_interface__
    assert interface["shape"] == (3, 36, 5, 4) and interface["typestr"] == "<f2" and interface["data"][0] == pose.ptr
    reference = rt.blocks[pose.ptr].view(np.float16).reshape(pose.shape)
    half = pose.view((2, 18), (1, 18, 5, 4))  # sample 2's target channels
    assert half.ptr == reference[2:3, 18:].ctypes.data and half.shape == (1, 18, 5, 4)
    assert pose.view((1,), (36, 5, 4)).ptr == reference[1].ctypes.data
    pinned = tensorrt_backend.pinned_empty(rt, (2, 18, 2), np.float32)
    assert pinned.shape == (2, 18, 2) and pinned.dtype == np.float32 and pinned.flags.writeable
    address = pinned.ctypes.data
    pinned[...] = 7.0
    assert (rt.blocks[address].view(np.float32) == 7.0).all()
    row = pinned[1]
    del pinned
    gc.collect()
    assert address not in rt.freed  # a view still uses the memory
    del row, half, pose
    gc.collect()
    assert address in rt.freed and len(rt.freed) == 2


_TRT_OK, _TRT_REASON = tensorrt_backend.availability()[1:]


@pytest.mark.tensorrt
@pytest.mark.cuda
@pytest.mark.skipif(not _TRT_OK, reason=f"TensorRT backend unavailable: {_TRT_REASON}")
def test_tensorrt_engine_matches_onnxruntime(stub: Path, tmp_path: Path, rng: np.random.Generator) -> None:
    """Builds a real engine from the stub graph (standard ops) and runs it from a bundle (a bare
    engine file is refused: engines are native code, loaded only from bundles whose hashes check)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(stub.read_bytes()), [parser.get_error(i) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for name, channels in (("source_image", 3), ("pose_heatmaps", 36)):
        profile.set_shape(name, (1, channels, SH, SW), (1, channels, SH, SW), (4, channels, SH, SW))
    config.add_optimization_profile(profile)
    engine_path = tmp_path / "stub.engine"
    engine_path.write_bytes(bytes(builder.build_serialized_network(network, config)))

    with pytest.raises(PlanError, match="native code"):
        Engine(engine_path, backend="tensorrt")
    from pyposert.bundle import normalise_compute_capability

    cc = normalise_compute_capability(str(pyposert.build_info()["cuda"]["compute_capability"]))  # e.g. 90 -> "9.0"
    plan = write_bundle(tmp_path / "stub_trt.plan",
                        _manifest(SH, SW, {"mode": "gaussian", "sigma": 6.0 * SH / 256.0, "radius": 4.0}),
                        {"model.onnx": ("onnx", stub.read_bytes(), None),
                         "tensorrt/stub.engine": ("tensorrt", engine_path.read_bytes(),
                                                  {"compute_capability": cc,
                                                   "tensorrt_version": trt.__version__, "precision": "fp32"})})
    e = Engine(plan, backend="tensorrt")
    reference = Engine(stub)
    image, src = _image(rng, 90, 60), _pose(rng, 90, 60)
    source = e.source(image, src)
    poses = [_pose(rng, 90, 60) for _ in range(3)]
    for _ in range(2):  # warm-up + capture, then graph replays
        for pose in poses:
            diff = np.abs(source.run(pose).astype(int) - reference.run(image, pose, src).astype(int))
            assert diff.max() <= 1
    for pose, out in zip(poses, source.run_batch(poses)):
        assert_batched_close(out, source.run(pose))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, -3.0])
def test_nan_inf_and_negative_are_the_same_missing_joint(stub: Path, rng: np.random.Generator, bad: float) -> None:
    """One missing-joint convention (README, ops.heatmaps, pose files): NaN, infinite and
    negative coordinates all mean "missing" -- the Engine renders them identically to (-1, -1),
    in the target pose and in the photo's pose. Stub graph: R = source heatmaps' max, G = the
    target's, so a dropped joint is a missing blob."""
    e = Engine(stub)
    image, src, tgt = _image(rng, SH, SW), _pose(rng, SH, SW), _pose(rng, SH, SW)
    marked_src, marked_tgt, reference_src, reference_tgt = src.copy(), tgt.copy(), src.copy(), tgt.copy()
    marked_tgt[4, 0] = bad
    marked_src[7, 1] = bad
    reference_tgt[4] = -1
    reference_src[7] = -1
    expected = e.run(image, reference_tgt, source_pose=reference_src, output_size="model")
    np.testing.assert_array_equal(e.run(image, marked_tgt, source_pose=marked_src, output_size="model"), expected)
    # And the joints really are dropped: with them present, both heatmap channels differ.
    present = e.run(image, tgt, source_pose=src, output_size="model")
    assert not np.array_equal(present[..., 1], expected[..., 1])
    assert not np.array_equal(present[..., 2], expected[..., 2])
