"""python -m export on a tiny PoNA checkpoint: the bundle, both ONNX graphs (checker, structure,
ONNX Runtime parity with torch, dynamic batch), the torch.export payload, the plugin kernels'
PTX, and --tensorrt without TensorRT. The real TensorRT build is tested where TensorRT exists."""

from __future__ import annotations

import contextlib
import io
import json
import py_compile
import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("safetensors")

from export import onnx_export as ox  # noqa: E402
from export.__main__ import main, resolve_checkpoint  # noqa: E402
from export.torch_ops import pose_heatmaps  # noqa: E402
from pyposert.bundle import read_bundle  # noqa: E402
from pyposert.errors import BackendUnavailable  # noqa: E402
from training.ops import heatmaps_pair  # noqa: E402

# C = ngf * 4 = 16 at 8 x 6 tokens: fusion attention Dk 4 / Dv 32, pose attention Dk 2 / Dv 16.
TINY = dict(ngf=4, n_blocks=1, height=32, width=24)
TOKENS = (32 // 4) * (24 // 4)

TRT_SKIP = ("TensorRT is not installed (its PyPI -libs packages download the libraries from NVIDIA's own "
            "package index at install time; install it where that index can be reached)")


def write_checkpoint(folder: Path, model: str = "pona", step: int = 123, **overrides: Any) -> torch.nn.Module:
    """A run folder exactly as training/train.py's save_checkpoint lays it out (generator part):
    generator.safetensors (metadata: step, model_config JSON, format) + checkpoint.json."""
    from safetensors.torch import save_file

    from training.models import build_generator
    from training.train import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, TrainConfig

    cfg = TrainConfig(model=model, size="rt", model_overrides=dict(overrides))
    mcfg = cfg.model_config()
    torch.manual_seed(0)
    generator = build_generator(mcfg).eval()
    with torch.no_grad():  # gamma = beta = 0 at init would hide the attentions from every parity check
        for name, p in generator.named_parameters():
            if name.endswith(("gamma", "beta")):
                p.fill_(0.7)
    folder.mkdir(parents=True)
    meta = {"step": str(step), "model_config": json.dumps(mcfg.to_dict()), "format": CHECKPOINT_FORMAT}
    save_file({k: v.detach().contiguous().clone() for k, v in generator.state_dict().items()},
              str(folder / "generator.safetensors"), metadata=meta)
    sidecar = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": step, "config": cfg.to_dict(),
               "model_config": mcfg.to_dict(),
               "files": {"generator": "generator.safetensors", "discriminators": "discriminators.safetensors",
                         "optimizer": "optimizer.pt"}}
    (folder / "checkpoint.json").write_text(json.dumps(sidecar, indent=1))
    return generator


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("export")
    generator = write_checkpoint(root / "run", **TINY)
    out = root / "tiny.plan"
    stdout = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(stdout):
        rc = main([str(root / "run" / "generator.safetensors"), "-o", str(out), "--fp16", "--torch-export", "--quiet"])
    print(stdout.getvalue(), f"export took {time.perf_counter() - start:.1f} s")
    assert rc == 0
    bundle = read_bundle(out)
    return SimpleNamespace(plan=out, bundle=bundle, generator=generator, cfg=generator.config,
                           summary=stdout.getvalue())


def random_inputs(rng: np.random.Generator, cfg: Any, batch: int) -> dict[str, Any]:
    h, w = cfg.height, cfg.width
    image = torch.from_numpy(rng.uniform(-1, 1, (batch, 3, h, w)).astype(np.float32))
    kp = lambda: torch.from_numpy(np.where(rng.random((batch, 18, 1)) < 0.2, -1.0,  # noqa: E731
                                           rng.uniform(0, 1, (batch, 18, 2)) * [w - 1, h - 1]).astype(np.float32))
    src, tgt = kp(), kp()
    maps = heatmaps_pair(src, tgt, h, w, mode=cfg.heatmap_mode, sigma=cfg.heatmap_sigma, radius=cfg.heatmap_radius)
    return {"source_image": image, "source_keypoints": src, "target_keypoints": tgt, "pose_heatmaps": maps}


def dims(value: Any) -> list[Any]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


# ---------------------------------------------------------------------------- the bundle
def test_bundle_manifest_and_summary(exported: SimpleNamespace) -> None:
    b, cfg = exported.bundle, exported.cfg
    assert b.payload_names() == ["model.onnx", "model_pyposert.onnx", "model_pyposert_fp16.onnx", "model.pt2"]
    assert [b.payload(n).kind for n in b.payload_names()] == ["onnx", "onnx-pyposert", "onnx-pyposert",
                                                              "torch-export"]
    assert b.payload("model_pyposert_fp16.onnx").precision == "fp16"
    assert b.payload("model.onnx").extra["opset"] == 18
    assert b.payload("model.onnx").extra["parity"]["max_abs_error"] <= 1e-4
    assert (b.model_name, b.model_version) == ("pona", "step-123")
    assert b.model_config == cfg.to_dict()
    spec = b.input_spec
    assert (spec.height, spec.width, spec.keypoint_format, spec.keypoint_order) == (32, 24, "coco18", "xy")
    assert (spec.heatmap.mode, spec.heatmap.sigma, spec.heatmap.radius) == ("gaussian", 3.0, 4.0)
    b.verify()
    s = exported.summary
    for text in ("model.onnx", "KiB", "max abs error", "PSNR", "included:", "skipped:", "--tensorrt"):
        assert text in s


# ---------------------------------------------------------------------------- model.onnx
def test_standard_graph_checker_and_onnxruntime_parity(exported: SimpleNamespace, rng: np.random.Generator) -> None:
    data = exported.bundle.read_payload("model.onnx")
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model, full_check=True)
    assert [(i.name, dims(i)) for i in model.graph.input] == [("source_image", ["batch", 3, 32, 24]),
                                                              ("pose_heatmaps", ["batch", 36, 32, 24])]
    assert [(o.name, dims(o)) for o in model.graph.output] == [("image", ["batch", 3, 32, 24])]
    ops = [n.op_type for n in model.graph.node]
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
    assert ops.count("Softmax") == 2 and ops.count("MatMul") == 4  # two attentions, plain math

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    for batch in (1, 3):  # dynamic batch (exported with batch 2)
        x = random_inputs(rng, exported.cfg, batch)
        (got,) = session.run(["image"], {"source_image": x["source_image"].numpy(),
                                         "pose_heatmaps": x["pose_heatmaps"].numpy()})
        with torch.no_grad():
            want = exported.generator(x["source_image"], x["pose_heatmaps"]).numpy()
        parity = ox.compare(want, got)
        print(f"ONNX Runtime vs torch, batch {batch}: {parity}")
        assert got.shape == (batch, 3, 32, 24)
        assert parity.max_abs_error <= 1e-4
        assert parity.psnr_db > 80
        assert np.abs(want).max() > 0.05  # a real image, not a constant


# ---------------------------------------------------------------------------- model_pyposert*.onnx
def _custom_nodes(model: Any, op: str) -> list[Any]:
    return [n for n in model.graph.node if n.domain == "pyposert" and n.op_type == op]


@pytest.mark.parametrize("name, elem", [("model_pyposert.onnx", onnx.TensorProto.FLOAT),
                                        ("model_pyposert_fp16.onnx", onnx.TensorProto.FLOAT16)])
def test_custom_node_graph_structure(exported: SimpleNamespace, name: str, elem: int) -> None:
    data = exported.bundle.read_payload(name)
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model, full_check=True)  # with the pyposert schemas: node types/attributes too
    assert [(i.name, i.type.tensor_type.elem_type, dims(i)) for i in model.graph.input] == [
        ("source_image", onnx.TensorProto.FLOAT, ["batch", 3, 32, 24]),
        ("source_keypoints", onnx.TensorProto.FLOAT, ["batch", 18, 2]),
        ("target_keypoints", onnx.TensorProto.FLOAT, ["batch", 18, 2])]
    assert [(o.name, o.type.tensor_type.elem_type, dims(o)) for o in model.graph.output] == [
        ("image", onnx.TensorProto.FLOAT, ["batch", 3, 32, 24])]
    assert {(o.domain, o.version) for o in model.opset_import} >= {("", 18), ("pyposert", 1)}

    (heat,) = _custom_nodes(model, "PoseHeatmap")
    assert list(heat.input) == ["source_keypoints", "target_keypoints"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in heat.attribute}
    assert attrs == {"mode": 0, "sigma": 3.0, "radius": 4.0, "height": 32, "width": 24}

    attention_calls = ox.count_attention_calls(exported.generator, exported.cfg)
    assert attention_calls == 2 * TINY["n_blocks"]  # PoNA: self-attention + pose-guided attention per block
    fused = _custom_nodes(model, "FusedAttention")
    assert len(fused) == attention_calls
    assert not [n for n in model.graph.node if n.op_type == "Softmax"]
    values = {v.name: v for v in list(model.graph.value_info) + list(model.graph.output)}
    shapes = set()
    for node in fused:
        assert {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute} == {"scale": 1.0}
        q, k, v = (values[i] for i in node.input)
        assert {t.type.tensor_type.elem_type for t in (q, k, v)} == {elem}
        assert dims(q) == dims(k) and dims(q)[:2] == dims(v)[:2] == ["batch", TOKENS]
        shapes.add((dims(q)[2], dims(v)[2]))
    assert shapes == {(4, 32), (2, 16)}  # (Dk, Dv) of the fusion and the pose-guided attention

    # ONNX Runtime has no kernels for the pyposert domain: this graph is for TensorRT only.
    with pytest.raises(Exception, match="PoseHeatmap|FusedAttention|pyposert"):
        ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def test_custom_graph_torch_semantics(exported: SimpleNamespace, rng: np.random.Generator) -> None:
    """What the custom nodes stand for, in torch: keypoints -> PoseHeatmap == heatmaps_pair, and
    the keypoint graph == the generator on heatmaps."""
    cfg = exported.cfg
    x = random_inputs(rng, cfg, 2)
    with torch.no_grad():
        got = ox.KeypointGraph(exported.generator, cfg)(x["source_image"], x["source_keypoints"],
                                                        x["target_keypoints"])
        want = exported.generator(x["source_image"], x["pose_heatmaps"])
    assert torch.equal(got, want)
    src, tgt = x["source_keypoints"], x["target_keypoints"]
    src[0, 3] = float("nan")
    for mode in ("gaussian", "disk"):
        a = pose_heatmaps(src, tgt, 32, 24, mode=mode, sigma=2.5, radius=4.0)
        b = heatmaps_pair(src, tgt, 32, 24, mode=mode, sigma=2.5, radius=4.0)
        assert a.shape == (2, 36, 32, 24) and torch.equal(a, b)
        assert not a[0, 3].any()  # NaN joint -> empty channel


def test_torch_export_payload(exported: SimpleNamespace, rng: np.random.Generator) -> None:
    program = torch.export.load(io.BytesIO(exported.bundle.read_payload("model.pt2")))
    x = random_inputs(rng, exported.cfg, 3)
    with torch.no_grad():
        got = program.module()(x["source_image"], x["pose_heatmaps"])
        want = exported.generator(x["source_image"], x["pose_heatmaps"])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    # What the torch backend loads: the program rebuilt by the loading policy (no pickled
    # example inputs, operators only) computes the same.
    from pyposert.safety import sanitize_torch_program

    safe = torch.export.load(io.BytesIO(sanitize_torch_program(exported.bundle.read_payload("model.pt2"), "model.pt2")))
    with torch.no_grad():
        torch.testing.assert_close(safe.module()(x["source_image"], x["pose_heatmaps"]), want, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------- CLI errors
def test_tensorrt_without_tensorrt_fails_first(tmp_path: Path) -> None:
    try:
        import tensorrt  # noqa: F401
    except Exception:
        pass
    else:
        pytest.skip("TensorRT is installed here")
    write_checkpoint(tmp_path / "run", **TINY)
    out = tmp_path / "x.plan"
    with pytest.raises(BackendUnavailable) as err:
        main([str(tmp_path / "run"), "-o", str(out), "--tensorrt", "--quiet"])
    msg = str(err.value)
    assert "TensorRT is not available" in msg and "pip install tensorrt-cu12" in msg
    assert "without --tensorrt" in msg
    assert not out.exists()  # failed before exporting anything


def test_cli_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no training checkpoint"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="no training checkpoint"):
        main([str(tmp_path / "nope"), "-o", str(tmp_path / "x.plan"), "--quiet"])
    write_checkpoint(tmp_path / "run", **TINY)
    assert resolve_checkpoint(tmp_path / "run" / "checkpoint.json") == tmp_path / "run"
    with pytest.raises(ValueError, match="--opset must be >= 18"):  # not a silent fallback to 18
        main([str(tmp_path / "run"), "-o", str(tmp_path / "x.plan"), "--opset", "17", "--quiet"])
    assert not (tmp_path / "x.plan").exists()


# ---------------------------------------------------------------------------- plugins
def test_plugin_kernels_compile_to_ptx(tmp_path: Path) -> None:
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc not found")
    from export.plugins import PLUGINS, compile_all

    ptx = compile_all("compute_75", cache_dir=tmp_path)
    for plugin_id, source in PLUGINS.items():
        text = ptx[plugin_id]
        assert ".target sm_75" in text
        for kernel in source.kernels:
            assert f".visible .entry {kernel}(" in text
    cached = sorted(tmp_path.glob("*.ptx"))
    assert len(cached) == len(PLUGINS)
    stamps = [p.stat().st_mtime_ns for p in cached]
    assert compile_all("compute_75", cache_dir=tmp_path) == ptx  # served from the cache
    assert [p.stat().st_mtime_ns for p in sorted(tmp_path.glob("*.ptx"))] == stamps


def test_plugin_definitions_are_valid_python() -> None:
    # They import tensorrt, so without it they can only be byte-compiled.
    for path in sorted(Path(ox.__file__).parent.glob("plugins/*/plugin.py")):
        py_compile.compile(str(path), doraise=True, cfile=None)


@pytest.mark.tensorrt
@pytest.mark.cuda
@pytest.mark.slow
@pytest.mark.parametrize("model, overrides", [
    ("pona", TINY),
    # warp-guided: the engine's inputs include warped_source / warp_coverage
    ("nram", dict(ngf=4, n_blocks=1, nram_res_blocks=1, height=32, width=24, warp_guided=True))])
def test_tensorrt_build_and_parity(tmp_path: Path, model: str, overrides: dict[str, Any]) -> None:
    pytest.importorskip("tensorrt", reason=TRT_SKIP)
    if not torch.cuda.is_available():
        pytest.skip("TensorRT is installed but torch sees no CUDA device")
    write_checkpoint(tmp_path / "run", model=model, **overrides)
    out = tmp_path / "trt.plan"
    assert main([str(tmp_path / "run"), "-o", str(out), "--fp16", "--tensorrt", "--quiet",
                 "--ptx-cache", str(tmp_path / "ptx")]) == 0
    import tensorrt as trt

    b = read_bundle(out)
    cc = torch.cuda.get_device_capability()
    name = b.tensorrt_engine_for(cc, trt.__version__)
    info = b.payload(name)
    assert info.precision == "fp16" and info.extra["source"] == "model_pyposert_fp16.onnx"
    assert info.extra["parity"]["psnr_db"] >= 35.0
    assert list(tmp_path.glob("trt.plan.*.timing-cache"))
