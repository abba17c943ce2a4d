"""python -m export on a tiny warp-guided NRAM checkpoint: both graphs take the contract's
warp inputs (warped_source, warp_coverage), the standard graph rasterises the heatmaps in plain
ONNX ops and runs in ONNX Runtime like torch, and pyposert.Engine runs the bundle on the CPU,
feeding the warp itself. The TensorRT build is tested in tests/test_export.py where TensorRT exists."""

from __future__ import annotations

import contextlib
import io
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("safetensors")

from export import onnx_export as ox  # noqa: E402
from export.__main__ import main  # noqa: E402
from pyposert import Engine, ops  # noqa: E402
from pyposert.bundle import read_bundle  # noqa: E402
from pyposert.model import KEYPOINT_INPUTS, WARP_INPUTS  # noqa: E402
from tests.test_export import write_checkpoint  # noqa: E402
from training.models import model_config  # noqa: E402
from training.ops import heatmaps_pair  # noqa: E402

TINY = dict(ngf=4, n_blocks=1, nram_res_blocks=1, height=32, width=24, warp_guided=True)
WARP_GRAPH_INPUTS = KEYPOINT_INPUTS + WARP_INPUTS


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("export_wg")
    generator = write_checkpoint(root / "run", model="nram", **TINY)
    out = root / "wg.plan"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main([str(root / "run"), "-o", str(out), "--torch-export", "--quiet"]) == 0
    return SimpleNamespace(plan=out, bundle=read_bundle(out), generator=generator, cfg=generator.config,
                           summary=stdout.getvalue())


@pytest.mark.parametrize("mode", ["gaussian", "disk"])
def test_standard_heatmaps_equal_the_kernel(mode: str) -> None:
    cfg = model_config("nram", "rt", heatmap_mode=mode, heatmap_radius=4.0, height=40, width=28)
    rng = np.random.default_rng(0)
    src = rng.uniform(-8, 40, (3, 18, 2)).astype(np.float32)  # some outside the frame, some negative
    tgt = rng.uniform(0, 27, (3, 18, 2)).astype(np.float32)
    src[0, 2], tgt[1, 5], tgt[2, 7] = np.nan, (np.inf, 3.0), (-1.0, -1.0)
    got = ox.standard_heatmaps(torch.from_numpy(src), torch.from_numpy(tgt), cfg)
    want = heatmaps_pair(torch.from_numpy(src), torch.from_numpy(tgt), cfg.height, cfg.width, mode=mode,
                         sigma=cfg.heatmap_sigma, radius=cfg.heatmap_radius)
    assert got.shape == (3, 36, 40, 28)
    torch.testing.assert_close(got, want, rtol=0, atol=2e-6)
    assert float(got[0, 2].abs().sum()) == 0.0 and float(got[1, 18 + 5].abs().sum()) == 0.0


def test_both_graphs_take_the_warp_inputs(exported: SimpleNamespace) -> None:
    h, w = exported.cfg.height, exported.cfg.width
    for name in ("model.onnx", "model_pyposert.onnx"):
        model = onnx.load_from_string(exported.bundle.read_payload(name))
        assert [i.name for i in model.graph.input] == list(WARP_GRAPH_INPUTS), name
        report = ox._report(model)
        assert report.inputs["warped_source"] == ("float32", ("batch", 3, h, w))
        assert report.inputs["warp_coverage"] == ("float32", ("batch", 1, h, w))
        assert report.count("Softmax") == 1  # the blend; NRAM has no attention
    standard = ox._report(onnx.load_from_string(exported.bundle.read_payload("model.onnx")))
    assert not [op for op in standard.op_counts if "::" in op]  # plain ONNX: runs anywhere
    custom = ox._report(onnx.load_from_string(exported.bundle.read_payload("model_pyposert.onnx")))
    assert custom.count("pyposert::PoseHeatmap") == 1 and custom.count("pyposert::Warp") == 0


def test_onnxruntime_matches_torch_on_real_warps(exported: SimpleNamespace) -> None:
    session = ort.InferenceSession(exported.bundle.read_payload("model.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = ox.example_inputs(exported.cfg, batch=batch, seed=7 + batch)
        assert 0.0 < float(x["warp_coverage"].mean()) < 1.0
        (got,) = session.run(["image"], {n: x[n].numpy() for n in WARP_GRAPH_INPUTS})
        parity = ox.compare(ox.torch_reference(exported.generator, x), got)
        assert parity.max_abs_error <= 1e-4, parity
    # The warp is really read: another warp changes the output.
    x = ox.example_inputs(exported.cfg, batch=1, seed=3)
    feeds = {n: x[n].numpy() for n in WARP_GRAPH_INPUTS}
    (a,) = session.run(["image"], feeds)
    feeds["warped_source"] = -feeds["warped_source"]
    (b,) = session.run(["image"], feeds)
    assert np.abs(a - b).max() > 1e-3


def test_engine_runs_the_bundle_and_feeds_the_warp(exported: SimpleNamespace) -> None:
    """Engine(plan).run on a photo equals the torch generator on the engine's own inputs, with
    the warp computed by pyposert.ops.warp from the letterboxed photo."""
    engine = Engine(exported.plan, backend="onnxruntime")
    spec = engine.spec
    assert spec.contract == "keypoints" and all(spec.has(n) for n in WARP_INPUTS)
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (48, 36, 3), dtype=np.uint8)
    kp = rng.uniform(4, 30, (18, 2)).astype(np.float32)
    target = kp[::-1].copy()
    source = engine.source(photo, kp, framing=False)
    feeds = dict(source.feeds(source.to_model(target)[None]))
    warped, coverage = ops.warp(feeds["source_image"], feeds["source_keypoints"], feeds["target_keypoints"],
                                spec.height, spec.width)
    np.testing.assert_array_equal(feeds["warped_source"], warped)
    np.testing.assert_array_equal(feeds["warp_coverage"], coverage)
    maps = heatmaps_pair(torch.from_numpy(feeds["source_keypoints"]), torch.from_numpy(feeds["target_keypoints"]),
                         spec.height, spec.width, mode=exported.cfg.heatmap_mode, sigma=exported.cfg.heatmap_sigma)
    with torch.no_grad():
        want = exported.generator(torch.from_numpy(feeds["source_image"]), maps, torch.from_numpy(warped),
                                  torch.from_numpy(coverage)).numpy()
    got = engine._backend.run(feeds)["image"]
    assert np.abs(got - want).max() <= 1e-4
    image = engine.run(photo, target, kp)
    assert image.shape == photo.shape and image.dtype == np.uint8


def test_torch_export_payload_takes_the_warp(exported: SimpleNamespace) -> None:
    program = torch.export.load(io.BytesIO(exported.bundle.read_payload("model.pt2")))
    x = ox.example_inputs(exported.cfg, batch=2, seed=5)
    with torch.no_grad():
        got = program.module()(*(x[n] for n in WARP_GRAPH_INPUTS))
    assert ox.compare(ox.torch_reference(exported.generator, x), got.numpy()).max_abs_error <= 1e-4
