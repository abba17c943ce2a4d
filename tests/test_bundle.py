"""pyposert.bundle: the .plan format -- round trip, atomic writes, and every way a file can be
unusable (truncated, corrupt, foreign, newer, incomplete) ending in a PlanError that says so.
No torch needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from pyposert.bundle import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    Bundle,
    HeatmapSpec,
    InputSpec,
    is_bundle,
    read_bundle,
    write_bundle,
)
from pyposert.errors import PlanError


def manifest(**changes: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "model": {"name": "nram", "version": "step-1000", "config": {"name": "nram", "height": 128, "width": 88}},
        "input": {"height": 128, "width": 88, "keypoint_format": "coco18", "keypoint_order": "xy", "image": "rgb",
                  "normalisation": "[-1,1]", "heatmap": {"mode": "gaussian", "sigma": 3.0, "radius": 4.0}},
    }
    m.update(changes)
    return m


def trt_extra(cc: str, version: str, precision: str) -> dict[str, Any]:
    return {"compute_capability": cc, "tensorrt_version": version, "precision": precision}


@pytest.fixture
def payloads(rng) -> dict[str, tuple[str, bytes, dict[str, Any] | None]]:
    return {
        "model.onnx": ("onnx", rng.bytes(3000), {"opset": 18, "precision": "fp32"}),
        "model_pyposert.onnx": ("onnx-pyposert", rng.bytes(2500), {"opset": 18, "precision": "fp32"}),
        "tensorrt/sm90_trt11.4.0.8_fp16.engine": ("tensorrt", rng.bytes(4000), trt_extra("9.0", "11.4.0.8", "fp16")),
        "tensorrt/sm90_trt11.4.0.8_fp32.engine": ("tensorrt", rng.bytes(4100), trt_extra("9.0", "11.4.0.8", "fp32")),
        "tensorrt/sm86_trt11.4.0.8_fp32.engine": ("tensorrt", rng.bytes(1000), trt_extra("8.6", "11.4.0.8", "fp32")),
        "model.pt2": ("torch-export", b"", None),
    }


@pytest.fixture
def plan(tmp_path: Path, payloads) -> Path:
    return write_bundle(tmp_path / "model.plan", manifest(), payloads)


# ---------------------------------------------------------------------------- round trip
def test_round_trip(plan: Path, payloads) -> None:
    b = read_bundle(plan)
    assert isinstance(b, Bundle) and is_bundle(plan)
    m = b.manifest
    assert m["format"] == "pyposert-plan" and m["format_version"] == FORMAT_VERSION
    assert isinstance(m["created_by"], str) and m["created_by"]
    assert (b.model_name, b.model_version, b.model_config["width"]) == ("nram", "step-1000", 88)
    assert b.input_spec == InputSpec(128, 88, "coco18", "xy", "rgb", "[-1,1]", HeatmapSpec("gaussian", 3.0, 4.0))
    assert b.input_spec.pose_channels == 36
    assert b.payload_names() == list(payloads)
    assert b.payload_names("onnx") == ["model.onnx"]
    assert b.payload_names("onnx-pyposert") == ["model_pyposert.onnx"]
    assert b.payload_names("torch-export") == ["model.pt2"]
    assert len(b.payload_names("tensorrt")) == 3
    for name, (kind, data, extra) in payloads.items():
        info = b.payload(name)
        assert (info.kind, info.size) == (kind, len(data))
        assert info.extra == (extra or {})
        assert b.read_payload(name) == data
    b.verify()
    with zipfile.ZipFile(plan) as zf:
        assert zf.namelist()[0] == MANIFEST_NAME  # manifest first
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    with pytest.raises(PlanError, match="has no payload 'nope'"):
        b.read_payload("nope")
    with pytest.raises(ValueError, match="kind must be one of"):
        b.payload_names("engine")


def test_write_is_deterministic_atomic_and_replaces(tmp_path: Path, payloads) -> None:
    a = write_bundle(tmp_path / "a.plan", manifest(), payloads).read_bytes()
    b = write_bundle(tmp_path / "b.plan", manifest(), payloads).read_bytes()
    assert a == b  # same inputs, same bytes (fixed zip timestamps)
    target = tmp_path / "a.plan"
    write_bundle(target, manifest(model={"name": "pona", "version": "v2", "config": {}}), {})
    assert read_bundle(target).model_name == "pona" and read_bundle(target).payload_names() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.plan", "b.plan"]  # no temp files left
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # usual permissions, not a temp file's 0600


def test_invalid_writes_leave_the_old_file(tmp_path: Path, plan: Path) -> None:
    before = plan.read_bytes()
    bad = [
        (manifest(payloads=[]), {}, "must not contain 'payloads'"),
        (manifest(), {"x.onnx": ("onnx2", b"", None)}, "kind must be one of"),
        (manifest(), {"../x.onnx": ("onnx", b"", None)}, "not a valid payload name"),
        (manifest(), {"manifest.json": ("onnx", b"", None)}, "not a valid payload name"),
        (manifest(), {"e.engine": ("tensorrt", b"", {"precision": "fp16"})}, "has no 'compute_capability'"),
        (manifest(), {"x.onnx": ("onnx", "text", None)}, "must be bytes"),
        (manifest(), {"x.onnx": ("onnx", b"", {"sha256": "0" * 64})}, "must not set"),
        (manifest(input={"height": 128}), {}, "input has no 'width'"),
        (manifest(), {"x.onnx": ("onnx", b"", {"psnr_db": float("inf")})}, "JSON values only"),
        (manifest(model={"name": "x", "version": "1", "config": {"path": Path("a")}}), {}, "JSON values only"),
    ]
    for m, p, message in bad:
        with pytest.raises(ValueError, match=message):
            write_bundle(plan, m, p)
        assert plan.read_bytes() == before
    assert sorted(p.name for p in plan.parent.iterdir()) == ["model.plan"]


# ---------------------------------------------------------------------------- damaged files
def test_truncated_files(tmp_path: Path, plan: Path) -> None:
    data = plan.read_bytes()
    cuts = [4, 30, 200, len(data) // 3, len(data) // 2, len(data) - 23, len(data) - 1]
    for cut in cuts:
        damaged = tmp_path / f"cut{cut}.plan"
        damaged.write_bytes(data[:cut])
        with pytest.raises(PlanError, match=r"is truncated or corrupt") as err:
            read_bundle(damaged)
        assert str(damaged) in str(err.value)
        assert not is_bundle(damaged)
    empty = tmp_path / "empty.plan"
    empty.write_bytes(b"")
    with pytest.raises(PlanError, match=r"not a pyposert \.plan bundle: .*empty\.plan \(empty file\)"):
        read_bundle(empty)


def test_flipped_byte_in_a_payload(tmp_path: Path, plan: Path, payloads) -> None:
    data = bytearray(plan.read_bytes())
    target = payloads["model_pyposert.onnx"][1]
    offset = bytes(data).index(target) + len(target) // 2
    data[offset] ^= 0x40
    damaged = tmp_path / "flipped.plan"
    damaged.write_bytes(bytes(data))
    b = read_bundle(damaged)  # the directory and manifest are intact; payloads are checked on read
    assert b.read_payload("model.onnx") == payloads["model.onnx"][1]
    with pytest.raises(PlanError, match=r"payload 'model_pyposert\.onnx' in .*flipped\.plan is corrupt"):
        b.read_payload("model_pyposert.onnx")
    with pytest.raises(PlanError, match="model_pyposert"):
        b.verify()


def test_payload_replaced_behind_the_manifest_fails_the_hash(tmp_path: Path, plan: Path, payloads) -> None:
    # A consistent zip (CRCs fine) whose payload differs from what the manifest hashed.
    forged = tmp_path / "forged.plan"
    with zipfile.ZipFile(plan) as src, zipfile.ZipFile(forged, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "model.onnx":
                body = bytes(reversed(body))
            dst.writestr(info.filename, body)
    b = read_bundle(forged)
    with pytest.raises(PlanError, match=r"payload 'model\.onnx' in .*forged\.plan fails its SHA-256 check"):
        b.read_payload("model.onnx")


def test_flipped_byte_in_the_manifest(tmp_path: Path, plan: Path) -> None:
    data = bytearray(plan.read_bytes())
    data[data.index(b'"format"') + 2] ^= 0x01  # inside manifest.json: its CRC no longer matches
    damaged = tmp_path / "manifest-flip.plan"
    damaged.write_bytes(bytes(data))
    with pytest.raises(PlanError, match="truncated or corrupt"):
        read_bundle(damaged)


def test_foreign_files(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(PlanError, match=r"not a pyposert \.plan bundle: .*foreign\.zip \(a zip archive without manifest\.json\)"):
        read_bundle(foreign)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr(MANIFEST_NAME, json.dumps({"format": "something-else", "format_version": 1}))
    with pytest.raises(PlanError, match=r"not a pyposert \.plan bundle: .*manifest format is 'something-else'"):
        read_bundle(other)
    garbage = tmp_path / "garbage.zip"
    with zipfile.ZipFile(garbage, "w") as zf:
        zf.writestr(MANIFEST_NAME, b"\xff\xfe not json")
    with pytest.raises(PlanError, match="not valid JSON"):
        read_bundle(garbage)
    for name, body in (("model.onnx", b"\x08\x07\x12\x07pytorch" + bytes(100)), ("engine.plan", b"ftrt" * 50),
                       ("text.plan", b"hello world\n")):
        path = tmp_path / name
        path.write_bytes(body)
        with pytest.raises(PlanError, match=rf"not a pyposert \.plan bundle: .*{name} \(not a zip archive\)"):
            read_bundle(path)
        assert not is_bundle(path)
    with pytest.raises(FileNotFoundError, match="no such model bundle"):
        read_bundle(tmp_path / "missing.plan")
    assert not is_bundle(tmp_path / "missing.plan")


def _rewrite_manifest(src: Path, dst: Path, edit: Any) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            body = zin.read(info)
            if info.filename == MANIFEST_NAME:
                m = json.loads(body)
                edit(m)
                body = json.dumps(m).encode()
            zout.writestr(info.filename, body)
    return dst


def test_newer_format_version(tmp_path: Path, plan: Path) -> None:
    def newer(m: dict[str, Any]) -> None:
        m["format_version"] = FORMAT_VERSION + 1
        m["created_by"] = "9.9.0"
        m["input"] = {"something": "new"}  # a newer layout must not be validated as ours

    path = _rewrite_manifest(plan, tmp_path / "newer.plan", newer)
    with pytest.raises(PlanError) as err:
        read_bundle(path)
    msg = str(err.value)
    assert f"written by pyposert 9.9.0 with format {FORMAT_VERSION + 1}" in msg
    assert f"this pyposert reads up to {FORMAT_VERSION}" in msg and "upgrade" in msg


def test_missing_payload_and_wrong_size(tmp_path: Path, plan: Path) -> None:
    missing = tmp_path / "missing-payload.plan"
    with zipfile.ZipFile(plan) as zin, zipfile.ZipFile(missing, "w") as zout:
        for info in zin.infolist():
            if info.filename != "model.onnx":
                zout.writestr(info.filename, zin.read(info))
    with pytest.raises(PlanError, match=r"payload 'model\.onnx' is listed in the manifest of .* but missing"):
        read_bundle(missing)

    def wrong_size(m: dict[str, Any]) -> None:
        m["payloads"][0]["size"] += 1

    with pytest.raises(PlanError, match=r"payload 'model\.onnx' in .* is 3000 bytes, the manifest says 3001"):
        read_bundle(_rewrite_manifest(plan, tmp_path / "size.plan", wrong_size))


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["input"].pop("height"), r"input has no 'height'"),
    (lambda m: m["input"].update(height=True), r"input\.height must be an integer"),
    (lambda m: m["input"].update(keypoint_order="yx"), r"input\.keypoint_order is 'yx'"),
    (lambda m: m["input"]["heatmap"].update(mode="square"), r"heatmap\.mode must be"),
    (lambda m: m["input"]["heatmap"].update(sigma=0), r"sigma must be > 0 for Gaussian"),
    (lambda m: m["input"]["heatmap"].update(radius=float("nan")), r"NaN is not a JSON number"),
    (lambda m: m["model"].pop("version"), r"model has no 'version'"),
    (lambda m: m.update(format_version="1"), r"format_version must be an integer"),
    (lambda m: m["payloads"][2].pop("tensorrt_version"), r"payloads\[2\] has no 'tensorrt_version'"),
    (lambda m: m["payloads"][0].update(sha256="xyz"), r"sha256 must be 64"),
    (lambda m: m["payloads"].append(dict(m["payloads"][0])), r"listed twice"),
])
def test_invalid_manifests(tmp_path: Path, plan: Path, edit: Any, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        read_bundle(_rewrite_manifest(plan, tmp_path / "bad.plan", edit))


# ---------------------------------------------------------------------------- TensorRT engine lookup
def test_tensorrt_engine_for(plan: Path) -> None:
    b = read_bundle(plan)
    assert b.tensorrt_engine_for("9.0", "11.4.0.8") == "tensorrt/sm90_trt11.4.0.8_fp16.engine"  # fp16 preferred
    assert b.tensorrt_engine_for((9, 0), "11.4.0.8", "fp32") == "tensorrt/sm90_trt11.4.0.8_fp32.engine"
    assert b.tensorrt_engine_for("86", "11.4.0.8") == "tensorrt/sm86_trt11.4.0.8_fp32.engine"
    assert b.tensorrt_engine_for("sm_86", "11.4.0.8") == "tensorrt/sm86_trt11.4.0.8_fp32.engine"

    with pytest.raises(PlanError) as err:
        b.tensorrt_engine_for("8.9", "11.4.0.8")
    msg = str(err.value)
    assert "no TensorRT engine for this machine (compute capability 8.9, TensorRT 11.4.0.8)" in msg
    for name in b.payload_names("tensorrt"):
        assert name in msg  # says what the bundle has
    assert "model_pyposert.onnx" in msg  # and what would work

    with pytest.raises(PlanError, match=r"compute capability 9\.0, TensorRT 11\.4\.1\.2\).*TensorRT 11\.4\.0\.8"):
        b.tensorrt_engine_for("9.0", "11.4.1.2")  # engines load only in the exact TensorRT version
    with pytest.raises(PlanError, match=r"compute capability 8\.6, TensorRT 11\.4\.0\.8, fp16"):
        b.tensorrt_engine_for("8.6", "11.4.0.8", precision="fp16")
    with pytest.raises(ValueError, match="compute capability must look like"):
        b.tensorrt_engine_for("hopper", "11.4.0.8")


def test_tensorrt_engine_for_without_engines(tmp_path: Path) -> None:
    b = read_bundle(write_bundle(tmp_path / "cpu.plan", manifest(), {"model.onnx": ("onnx", b"x", None)}))
    with pytest.raises(PlanError, match=r"the bundle has no TensorRT engines\. Use the ONNX Runtime backend"):
        b.tensorrt_engine_for("9.0", "11.4.0.8")


def test_bundle_module_imports_no_torch() -> None:
    code = "import sys, pyposert.bundle; print(sorted(m for m in ('torch', 'onnx', 'tensorrt') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
