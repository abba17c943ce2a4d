"""The model bundle (``*.plan``): one file with a manifest and the model in every form it ships.

Layout: a zip archive, every entry stored (no compression: ONNX weights and TensorRT engines
barely compress, and stored entries can be read without inflating), holding

    manifest.json                 what the model is and how to feed it (below)
    model.onnx                    standard-op graph (ONNX Runtime, any CPU)        kind "onnx"
    model_pyposert.onnx           graph with pyposert::PoseHeatmap/FusedAttention  kind "onnx-pyposert"
    model_pyposert_fp16.onnx      the same in half precision (optional)            kind "onnx-pyposert"
    tensorrt/<key>.engine         serialized TensorRT engines (optional)            kind "tensorrt"
    model.pt2                     torch.export program (optional)                   kind "torch-export"

Manifest (``format_version`` 1)::

    {"format": "pyposert-plan", "format_version": 1, "created_by": "<pyposert version>",
     "task": "pose_transfer",
     "model": {"name": "nram", "version": "step-1000", "config": {...ModelConfig fields...}},
     "input": {"height": 128, "width": 88, "keypoint_format": "coco18", "keypoint_order": "xy",
               "image": "rgb", "normalisation": "[-1,1]",
               "heatmap": {"mode": "gaussian", "sigma": 3.0, "radius": 4.0}},
     "payloads": [{"name": "model.onnx", "kind": "onnx", "sha256": "<hex>", "size": 123, ...extra},
                  {"name": "tensorrt/sm90_trt11.4.0.8_fp16.engine", "kind": "tensorrt", ...,
                   "compute_capability": "9.0", "tensorrt_version": "11.4.0.8", "precision": "fp16"}]}

``task`` (optional) says what the network does: "pose_transfer" (the default when absent, so
bundles written before the key existed stay valid) or "completion" (fashion image completion,
:mod:`pyposert.completion`). A completion manifest also has ``input.completion``::

    "completion": {"crop_size": 64, "latent": 8, "margin": 0.1, "pad": 2,
                   "parsing_classes": ["background", "face_hair", "upper_skin", "lower_skin",
                                       "hat", "top", "bottom", "shoes"],
                   "garments": ["hat", "top", "bottom", "shoes"]}

(crop_size S >= 1: side of the garment crops; latent Z >= 1: noise width; margin >= 0 and
pad >= 0: how a garment's box grows into the erase region; the two lists must equal
``pyposert.completion.PARSING_CLASSES`` / ``GARMENTS``, so a model trained on another
labelling is refused instead of misread). Its ``input.heatmap`` rasterises the 18 channels
of the person's own pose.

Network I/O, pose transfer (see DESIGN.md "Contracts"): ``source_image`` float32
[B, 3, H, W] RGB in [-1, 1]; ``pose_heatmaps`` float32 [B, 36, H, W] (model.onnx: 18 source
then 18 target channels) or ``source_keypoints`` / ``target_keypoints`` float32 [B, 18, 2]
(x, y) model pixels, missing = -1 (model_pyposert*.onnx and the TensorRT engines); output
``image`` float32 [B, 3, H, W] RGB in [-1, 1]. Completion: ``masked_image``,
``masked_parsing``, ``erase_mask``, ``pose_heatmaps`` [B, 18, H, W], ``garment_crops``,
``noise`` -> ``parsing``, ``image`` (shapes in :mod:`pyposert.completion`).

Reading executes nothing from the file: the manifest is bounded JSON, payloads are returned as
bytes after their SHA-256 is checked, and the archive itself must pass the loading policy of
:mod:`pyposert.safety` (regular file; plain, stored, listed entries). An optional
``manifest.sig`` entry holds an Ed25519 signature of the manifest (:mod:`pyposert.signing`). Everything that makes a file unusable raises
:class:`pyposert.errors.PlanError` saying what is wrong. This module imports only the standard
library (no numpy, no torch).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from .errors import PlanError
from .safety import check_zip, load_json, open_regular
from .signing import SIGNATURE_NAME, parse_trusted_keys, verify_manifest

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "PAYLOAD_KINDS",
    "PayloadKind",
    "TASKS",
    "Bundle",
    "CompletionSpec",
    "HeatmapSpec",
    "InputSpec",
    "PayloadInfo",
    "is_bundle",
    "looks_like_bundle",
    "read_bundle",
    "write_bundle",
]

FORMAT = "pyposert-plan"
FORMAT_VERSION = 1  # the newest manifest layout this code reads and the one it writes
MANIFEST_NAME = "manifest.json"
PayloadKind = Literal["onnx", "onnx-pyposert", "tensorrt", "torch-export"]
PAYLOAD_KINDS: tuple[str, ...] = ("onnx", "onnx-pyposert", "tensorrt", "torch-export")
PRECISIONS: tuple[str, ...] = ("fp16", "fp32")  # preference order of tensorrt_engine_for

# A manifest is a few kB; refusing huge ones keeps a hostile file from exhausting memory.
_MAX_MANIFEST_BYTES = 1 << 20
_MAX_MANIFEST_DEPTH = 32  # real manifests nest 4 levels (input.completion.parsing_classes)
_MAX_FRAME_SIDE = 4096  # model frame sides (pixels; the paper size is 256 x 176): more is a typo or an attack on memory
_MAX_COMPLETION_SIDE = 1024  # crop_size, latent (64 and 8 in the shipped model)
# Payload names are archive paths: relative, '/'-separated, no '..', portable characters.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
# What a network does (manifest "task"; Engine.task); the first is the default of manifests
# without the key. The one definition: pyposert.model and pyposert.engine re-export it.
TASKS: tuple[str, ...] = ("pose_transfer", "completion", "parsing")
# The completion labelling, spelled out here because this module imports only the standard
# library; tests/test_completion_runtime.py checks they equal pyposert.completion's.
_PARSING_CLASSES: tuple[str, ...] = ("background", "face_hair", "upper_skin", "lower_skin", "hat", "top",
                                     "bottom", "shoes")
_GARMENTS: tuple[str, ...] = ("hat", "top", "bottom", "shoes")
_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"

PathLike = Union[str, "os.PathLike[str]"]


# ------------------------------------------------------------------ typed views
@dataclass(frozen=True)
class HeatmapSpec:
    """How pose heatmaps are rasterised for this model (model pixels).

    mode: "gaussian" (exp(-d^2 / (2 sigma^2)), PATN/PoNA/NRAM) or "disk" (1 within radius, PG2).
    The one definition of the convention: :mod:`pyposert.model` and the backends use it too.
    """

    mode: str = "gaussian"
    sigma: float = 6.0
    radius: float = 4.0


@dataclass(frozen=True)
class InputSpec:
    """What the network expects, from the manifest's ``input`` table.

    height, width: model frame H x W in pixels (fixed; batch is dynamic).
    keypoint_format: "coco18" (18 joints, OpenPose COCO order); keypoint_order: "xy" (x first).
    image: "rgb" channel order; normalisation: "[-1,1]" (pixel / 127.5 - 1).
    """

    height: int
    width: int
    keypoint_format: str
    keypoint_order: str
    image: str
    normalisation: str
    heatmap: HeatmapSpec

    @property
    def joints(self) -> int:
        """Joints per pose (18 for coco18)."""
        return 18

    @property
    def pose_channels(self) -> int:
        """Channels of ``pose_heatmaps``: source joints then target joints (36)."""
        return 2 * self.joints


@dataclass(frozen=True)
class CompletionSpec:
    """A completion network's extra inputs, from the manifest's ``input.completion``.

    crop_size: side S of the garment crops [B, 12, S, S]; latent: Z of the noise [B, 2, Z];
    margin, pad: the erase region is a garment's bounding box grown by ``margin`` x its
    height / width plus ``pad`` pixels on each side (see ``pyposert.completion.garment_box``).
    """

    crop_size: int
    latent: int
    margin: float
    pad: int


@dataclass(frozen=True)
class PayloadInfo:
    """One manifest ``payloads`` entry. ``extra`` holds the kind-specific fields (for
    "tensorrt": compute_capability, tensorrt_version, precision; for ONNX: opset, precision)."""

    name: str
    kind: str
    sha256: str
    size: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def precision(self) -> str | None:
        value = self.extra.get("precision")
        return str(value) if value is not None else None


# ------------------------------------------------------------------ validation
def _bad_manifest(path: str, what: str) -> PlanError:
    return PlanError(f"invalid manifest in pyposert .plan bundle {path}: {what}")


def _require(table: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str, path: str) -> Any:
    if key not in table:
        raise _bad_manifest(path, f"{where} has no {key!r}")
    value = table[key]
    # bool is an int subclass; a manifest saying height=true is broken, not 1.
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise _bad_manifest(path, f"{where}.{key} must be {_type_names(types)}, got {value!r}")
    if not isinstance(value, types):
        raise _bad_manifest(path, f"{where}.{key} must be {_type_names(types)}, got {value!r}")
    return value


def _type_names(types: type | tuple[type, ...]) -> str:
    ts = types if isinstance(types, tuple) else (types,)
    return " or ".join({dict: "an object", list: "a list", str: "a string", int: "an integer",
                        float: "a number"}.get(t, t.__name__) for t in ts)


def normalise_compute_capability(value: Any) -> str:
    """'9.0', '90', (9, 0), 9.0 -> '9.0'. Raises ValueError for anything else."""
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}.{value[1]}"
    text = str(value).strip()
    m = re.fullmatch(r"(?:sm_?)?(\d+)\.(\d+)", text)
    if m:
        return f"{int(m.group(1))}.{int(m.group(2))}"
    m = re.fullmatch(r"(?:sm_?)?(\d+)(\d)", text)  # "90", "sm90", "sm_120"
    if m:
        return f"{int(m.group(1))}.{int(m.group(2))}"
    raise ValueError(f"compute capability must look like '9.0' or (9, 0), got {value!r}")


def _check_manifest(manifest: Any, path: str) -> dict[str, Any]:
    """Validate a complete manifest (payloads included); returns it. Raises PlanError."""
    if not isinstance(manifest, dict):
        raise PlanError(f"not a pyposert .plan bundle: {path} (manifest.json is not a JSON object)")
    if manifest.get("format") != FORMAT:
        raise PlanError(f"not a pyposert .plan bundle: {path} "
                        f"(manifest format is {manifest.get('format')!r}, expected {FORMAT!r})")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _bad_manifest(path, f"format_version must be an integer >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise PlanError(
            f"{path} was written by pyposert {manifest.get('created_by', '(unknown version)')} with format "
            f"{version}; this pyposert reads up to {FORMAT_VERSION} — upgrade pyposert to load it")
    _require(manifest, "created_by", str, "manifest", path)
    model = _require(manifest, "model", dict, "manifest", path)
    _require(model, "name", str, "model", path)
    _require(model, "version", str, "model", path)
    _require(model, "config", dict, "model", path)
    inp = _require(manifest, "input", dict, "manifest", path)
    for key in ("height", "width"):
        if _require(inp, key, int, "input", path) < 1:
            raise _bad_manifest(path, f"input.{key} must be >= 1, got {inp[key]}")
        if inp[key] > _MAX_FRAME_SIDE:
            raise _bad_manifest(path, f"input.{key} must be <= {_MAX_FRAME_SIDE}, got {inp[key]}")
    expected = {"keypoint_format": "coco18", "keypoint_order": "xy", "image": "rgb", "normalisation": "[-1,1]"}
    for key, value in expected.items():
        # Only one convention exists today; anything else is a file this code would misread.
        if _require(inp, key, str, "input", path) != value:
            raise _bad_manifest(path, f"input.{key} is {inp[key]!r}; this pyposert supports only {value!r}")
    heat = _require(inp, "heatmap", dict, "input", path)
    if _require(heat, "mode", str, "input.heatmap", path) not in ("gaussian", "disk"):
        raise _bad_manifest(path, f"input.heatmap.mode must be 'gaussian' or 'disk', got {heat['mode']!r}")
    for key in ("sigma", "radius"):
        value = _require(heat, key, (int, float), "input.heatmap", path)
        if not (value >= 0 and value != float("inf")):
            raise _bad_manifest(path, f"input.heatmap.{key} must be finite and >= 0, got {value}")
    if heat["mode"] == "gaussian" and not heat["sigma"] > 0:
        raise _bad_manifest(path, f"input.heatmap.sigma must be > 0 for Gaussian heatmaps, got {heat['sigma']}")
    task = manifest.get("task", TASKS[0])
    if not isinstance(task, str) or task not in TASKS:
        raise _bad_manifest(path, f"task must be one of {list(TASKS)}, got {task!r}")
    if task == "completion":
        _check_completion(inp, path)
    payloads = _require(manifest, "payloads", list, "manifest", path)
    seen: set[str] = set()
    for i, entry in enumerate(payloads):
        where = f"payloads[{i}]"
        if not isinstance(entry, dict):
            raise _bad_manifest(path, f"{where} must be an object, got {entry!r}")
        name = _require(entry, "name", str, where, path)
        if not _NAME_RE.match(name) or name in (MANIFEST_NAME, SIGNATURE_NAME):
            raise _bad_manifest(path, f"{where}.name {name!r} is not a valid payload name")
        if name in seen:
            raise _bad_manifest(path, f"payload {name!r} is listed twice")
        seen.add(name)
        kind = _require(entry, "kind", str, where, path)
        if kind not in PAYLOAD_KINDS:
            raise _bad_manifest(path, f"{where}.kind must be one of {PAYLOAD_KINDS}, got {kind!r}")
        sha = _require(entry, "sha256", str, where, path)
        if not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise _bad_manifest(path, f"{where}.sha256 must be 64 lowercase hex digits, got {sha!r}")
        if _require(entry, "size", int, where, path) < 0:
            raise _bad_manifest(path, f"{where}.size must be >= 0")
        if kind == "tensorrt":
            for key in ("compute_capability", "tensorrt_version", "precision"):
                _require(entry, key, str, where, path)
            try:
                normalise_compute_capability(entry["compute_capability"])
            except ValueError as exc:
                raise _bad_manifest(path, f"{where}.{exc}") from None
    return manifest


def _check_completion(inp: Mapping[str, Any], path: str) -> None:
    """``input.completion`` of a completion manifest (PlanError naming the bad field)."""
    if "completion" not in inp:
        raise _bad_manifest(path, "task is 'completion' but input has no 'completion' table (crop_size, latent, "
                                  "margin, pad, parsing_classes, garments)")
    comp = _require(inp, "completion", dict, "input", path)
    where = "input.completion"
    for key in ("crop_size", "latent"):
        if _require(comp, key, int, where, path) < 1:
            raise _bad_manifest(path, f"{where}.{key} must be >= 1, got {comp[key]}")
        if comp[key] > _MAX_COMPLETION_SIDE:
            raise _bad_manifest(path, f"{where}.{key} must be <= {_MAX_COMPLETION_SIDE}, got {comp[key]}")
    margin = _require(comp, "margin", (int, float), where, path)
    if not (margin >= 0 and margin != float("inf")):
        raise _bad_manifest(path, f"{where}.margin must be finite and >= 0, got {margin}")
    if _require(comp, "pad", int, where, path) < 0:
        raise _bad_manifest(path, f"{where}.pad must be >= 0, got {comp['pad']}")
    if comp["pad"] > _MAX_FRAME_SIDE:
        raise _bad_manifest(path, f"{where}.pad must be <= {_MAX_FRAME_SIDE}, got {comp['pad']}")
    for key, expected in (("parsing_classes", _PARSING_CLASSES), ("garments", _GARMENTS)):
        value = _require(comp, key, list, where, path)
        if tuple(value) != expected:
            # Another labelling would be silently misread (class 5 would not be "top"): refuse it.
            raise _bad_manifest(path, f"{where}.{key} is {value!r}; this pyposert supports only {list(expected)}")


# ------------------------------------------------------------------ reading
class Bundle:
    """A validated ``.plan`` bundle. Opening it reads only the manifest and the zip directory;
    payload bytes are read (and hash-checked) on demand by :meth:`read_payload`."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        # The Ed25519 public key whose signature was checked (read_bundle with trusted_keys).
        self.signed_by: bytes | None = None
        self._payloads = {
            p["name"]: PayloadInfo(p["name"], p["kind"], p["sha256"], p["size"],
                                   {k: v for k, v in p.items() if k not in ("name", "kind", "sha256", "size")})
            for p in manifest["payloads"]
        }
        inp = manifest["input"]
        heat = inp["heatmap"]
        self.input_spec = InputSpec(
            height=int(inp["height"]), width=int(inp["width"]), keypoint_format=inp["keypoint_format"],
            keypoint_order=inp["keypoint_order"], image=inp["image"], normalisation=inp["normalisation"],
            heatmap=HeatmapSpec(str(heat["mode"]), float(heat["sigma"]), float(heat["radius"])))

    def __repr__(self) -> str:
        model = self.manifest["model"]
        return (f"Bundle({str(self.path)!r}, model={model['name']!r} {model['version']!r}, "
                f"payloads={list(self._payloads)})")

    @property
    def task(self) -> str:
        """What the network does: "pose_transfer" (also for manifests without ``task``) or
        "completion"."""
        return str(self.manifest.get("task", TASKS[0]))

    @property
    def completion_spec(self) -> CompletionSpec | None:
        """``input.completion`` of a completion bundle (None for pose transfer)."""
        if self.task != "completion":
            return None
        comp = self.manifest["input"]["completion"]
        return CompletionSpec(int(comp["crop_size"]), int(comp["latent"]), float(comp["margin"]), int(comp["pad"]))

    @property
    def model_name(self) -> str:
        return str(self.manifest["model"]["name"])

    @property
    def model_version(self) -> str:
        return str(self.manifest["model"]["version"])

    @property
    def model_config(self) -> dict[str, Any]:
        """The training ModelConfig fields (plain dict)."""
        return dict(self.manifest["model"]["config"])

    @property
    def payloads(self) -> list[PayloadInfo]:
        """Every payload, in manifest order."""
        return list(self._payloads.values())

    def payload(self, name: str) -> PayloadInfo:
        """The manifest entry of ``name``; PlanError if the bundle has no such payload."""
        try:
            return self._payloads[name]
        except KeyError:
            raise PlanError(f"{self.path} has no payload {name!r}; it has {sorted(self._payloads)}") from None

    def payload_names(self, kind: str | None = None) -> list[str]:
        """Names of the payloads of one kind ("onnx", "onnx-pyposert", "tensorrt",
        "torch-export"), or of all payloads when kind is None, in manifest order."""
        if kind is not None and kind not in PAYLOAD_KINDS:
            raise ValueError(f"kind must be one of {PAYLOAD_KINDS}, got {kind!r}")
        return [p.name for p in self._payloads.values() if kind is None or p.kind == kind]

    def read_payload(self, name: str) -> bytes:
        """The payload's bytes after checking its size and SHA-256 against the manifest."""
        info = self.payload(name)
        try:
            # Reopened per read (bundles are read once, at load); the same checks as read_bundle
            # so a file swapped for a named pipe since then cannot hang this.
            with open_regular(self.path, "model bundle") as f, zipfile.ZipFile(f) as zf:
                try:
                    entry = zf.getinfo(name)
                except KeyError:
                    raise PlanError(f"payload {name!r} is listed in the manifest of {self.path} but missing "
                                    "from the archive (incomplete or edited file)") from None
                if entry.file_size != info.size or entry.compress_type != zipfile.ZIP_STORED:
                    raise PlanError(f"payload {name!r} in {self.path} is {entry.file_size} bytes, the manifest "
                                    f"says {info.size} (corrupt or edited file)")
                data = zf.read(entry)
        except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise PlanError(f"payload {name!r} in {self.path} is corrupt or truncated ({exc})") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != info.sha256:
            raise PlanError(f"payload {name!r} in {self.path} fails its SHA-256 check (manifest {info.sha256[:16]}…, "
                            f"file {digest[:16]}…): the file is corrupt or was modified")
        return data

    def verify(self) -> None:
        """Read every payload once and check its hash (raises PlanError on the first bad one)."""
        for name in self._payloads:
            self.read_payload(name)

    def tensorrt_engine_for(self, compute_capability: Any, tensorrt_version: str,
                            precision: str | None = None) -> str:
        """Name of the TensorRT engine built for this GPU and TensorRT, or PlanError.

        Args:
            compute_capability: the GPU's, e.g. "9.0" or (9, 0).
            tensorrt_version: ``tensorrt.__version__`` of this machine. Engines load only in the
                exact TensorRT version (major.minor.patch.build) that built them, so the match
                is exact.
            precision: "fp16" or "fp32" to insist on one; None prefers fp16 (checked against
                fp32 at export), then fp32.
        """
        cc = normalise_compute_capability(compute_capability)
        if precision is not None and precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS} or None, got {precision!r}")
        engines = [self._payloads[n] for n in self.payload_names("tensorrt")]
        matching = [e for e in engines
                    if normalise_compute_capability(e.extra["compute_capability"]) == cc
                    and str(e.extra["tensorrt_version"]) == str(tensorrt_version)
                    and (precision is None or e.precision == precision)]
        for wanted in ((precision,) if precision else PRECISIONS):
            for e in matching:
                if e.precision == wanted:
                    return e.name
        if matching:
            return matching[0].name
        want = f"compute capability {cc}, TensorRT {tensorrt_version}" + (f", {precision}" if precision else "")
        if engines:
            have = "; ".join(f"{e.name} (compute capability {e.extra['compute_capability']}, TensorRT "
                             f"{e.extra['tensorrt_version']}, {e.precision})" for e in engines)
        else:
            have = "no TensorRT engines"
        onnx = self.payload_names("onnx-pyposert")
        hint = (f"Build one on this machine from {onnx[0]!r} (python -m export CHECKPOINT --tensorrt), "
                "or use the ONNX Runtime backend" if onnx else "Use the ONNX Runtime backend")
        raise PlanError(f"{self.path} has no TensorRT engine for this machine ({want}); the bundle has {have}. "
                        f"{hint}")


def _open_error(path: str, exc: BaseException, head: bytes) -> PlanError:
    if not head:
        return PlanError(f"not a pyposert .plan bundle: {path} (empty file)")
    if looks_like_bundle(head):
        return PlanError(f"pyposert .plan bundle {path} is truncated or corrupt: its zip structure cannot be "
                         f"read ({exc}); re-export or re-download it")
    return PlanError(f"not a pyposert .plan bundle: {path} (not a zip archive)")


def read_bundle(path: PathLike, trusted_keys: Any = None) -> Bundle:
    """Open and validate a ``.plan`` bundle (manifest, versions, payload presence and sizes).

    Hostile files are refused before anything is parsed beyond the zip directory: the path
    must be a regular file; every archive entry must be a stored (uncompressed) plain file
    with a relative name, listed once, no larger than the archive, and either the manifest
    or a payload the manifest lists; the manifest must be bounded JSON (see
    :mod:`pyposert.safety`).

    trusted_keys: None (signatures not checked), or Ed25519 public keys
    (:func:`pyposert.signing.parse_trusted_keys`): then the bundle must carry a valid
    ``manifest.sig`` by one of them (:mod:`pyposert.signing`).

    Raises:
        FileNotFoundError: no such file.
        PlanError: not a regular file / not a zip / foreign zip / truncated or corrupt /
            an entry outside the policy / invalid manifest / written with a newer
            format_version / a listed payload missing or of the wrong size.
    """
    p = Path(path)
    shown = str(p)
    with open_regular(p, "model bundle") as f:
        head = f.read(4)
        f.seek(0, os.SEEK_END)
        archive_size = f.tell()
        f.seek(0)
        try:
            with zipfile.ZipFile(f) as zf:
                infos = check_zip(zf, archive_size, f"pyposert .plan bundle {shown}")
                names = [i.filename for i in infos]
                if MANIFEST_NAME not in names:
                    raise PlanError(f"not a pyposert .plan bundle: {shown} (a zip archive without {MANIFEST_NAME})")
                minfo = zf.getinfo(MANIFEST_NAME)
                if minfo.file_size > _MAX_MANIFEST_BYTES:
                    raise PlanError(f"not a pyposert .plan bundle: {shown} ({MANIFEST_NAME} is {minfo.file_size} "
                                    "bytes)")
                raw = zf.read(minfo)
                signature = zf.read(SIGNATURE_NAME) if SIGNATURE_NAME in names else None
                if signature is not None and len(signature) > 4096:
                    raise PlanError(f"pyposert .plan bundle {shown} is refused: {SIGNATURE_NAME} is "
                                    f"{len(signature)} bytes")
        except PlanError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
            raise _open_error(shown, exc, head) from None
    signed_by = None
    if trusted_keys is not None:  # before the manifest is even parsed: an unsigned file gets no further
        signed_by = verify_manifest(raw, signature, parse_trusted_keys(trusted_keys), f"pyposert .plan bundle {shown}")
    manifest = load_json(raw, MANIFEST_NAME, f"not a pyposert .plan bundle: {shown}", max_depth=_MAX_MANIFEST_DEPTH)
    _check_manifest(manifest, shown)
    sizes = {i.filename: i.file_size for i in infos}
    listed = {entry["name"] for entry in manifest["payloads"]}
    for name in names:
        if name not in (MANIFEST_NAME, SIGNATURE_NAME) and name not in listed:
            # Nothing reads it, but a file carrying unlisted data is not one pyposert wrote.
            raise PlanError(f"pyposert .plan bundle {shown} is refused: archive entry {name!r} is not listed in its "
                            "manifest")
    for entry in manifest["payloads"]:
        name = entry["name"]
        if name not in sizes:
            raise PlanError(f"payload {name!r} is listed in the manifest of {shown} but missing from the archive "
                            "(incomplete or edited file)")
        if sizes[name] != entry["size"]:
            raise PlanError(f"payload {name!r} in {shown} is {sizes[name]} bytes, the manifest says {entry['size']} "
                            "(corrupt or edited file)")
    bundle = Bundle(p, manifest)
    bundle.signed_by = signed_by
    return bundle


def looks_like_bundle(head: bytes) -> bool:
    """True when a file's first bytes are a zip archive's, the container of every bundle. Such
    a file is read as a bundle (:func:`read_bundle`), so a truncated or damaged one reports
    what is wrong with it instead of being mistaken for another format."""
    return head.startswith(_ZIP_MAGIC) or head.startswith(_EMPTY_ZIP_MAGIC)


def is_bundle(path: PathLike) -> bool:
    """True if ``path`` is a readable pyposert .plan bundle (never raises for bad files)."""
    try:
        read_bundle(path)
    except (PlanError, OSError):
        return False
    return True


# ------------------------------------------------------------------ writing
Payloads = Mapping[str, "tuple[str, bytes, Mapping[str, Any] | None]"]


def write_bundle(path: PathLike, manifest: Mapping[str, Any], payloads: Payloads) -> Path:
    """Write a bundle atomically (temporary file in the same folder, then rename).

    Args:
        path: output file (conventionally ``*.plan``); replaced if it exists.
        manifest: the manifest without ``payloads`` (model, input, ...). ``format``,
            ``format_version`` and ``created_by`` are filled in when absent.
        payloads: {name: (kind, data, extra)}; name is an archive path such as "model.onnx"
            or "tensorrt/sm90_trt11.4.0.8_fp16.engine"; kind one of PAYLOAD_KINDS; extra a
            JSON-serialisable dict of kind-specific fields (tensorrt: compute_capability,
            tensorrt_version, precision are required) or None.

    Returns the path written. Raises ValueError for an invalid manifest or payload (the file
    is then left untouched): the writer refuses anything the reader would reject.
    """
    out = Path(path)
    if "payloads" in manifest:
        raise ValueError("manifest must not contain 'payloads': pass them as the payloads argument")
    full: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, "created_by": _pyposert_version()}
    full.update(_json_copy(manifest, "manifest"))
    entries: list[dict[str, Any]] = []
    for name, item in payloads.items():
        if not isinstance(item, tuple) or len(item) != 3:
            raise ValueError(f"payload {name!r} must be (kind, bytes, extra), got {type(item).__name__}")
        kind, data, extra = item
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"payload {name!r} data must be bytes, got {type(data).__name__}")
        reserved = {"name", "kind", "sha256", "size"} & set(extra or {})
        if reserved:
            raise ValueError(f"payload {name!r} extra must not set {sorted(reserved)}")
        data = bytes(data)
        entries.append({"name": name, "kind": kind, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                        **_json_copy(extra or {}, f"payload {name!r} extra")})
    full["payloads"] = entries
    try:
        _check_manifest(full, str(out))
    except PlanError as exc:
        raise ValueError(str(exc)) from None

    out.parent.mkdir(parents=True, exist_ok=True)
    # Same folder (os.replace is atomic only within a file system); a plain exclusive open
    # rather than mkstemp so the file gets the usual umask permissions, not 0600.
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                # The manifest first: a reader (or `unzip -l`) sees what the file is straight away.
                zf.writestr(_entry(MANIFEST_NAME), json.dumps(full, indent=1, sort_keys=False) + "\n")
                for name, (_, data, _) in payloads.items():
                    zf.writestr(_entry(name), bytes(data))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def _json_copy(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A deep copy made of JSON types only; strict JSON (no NaN/Infinity) so any reader parses it."""
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must hold JSON values only (finite numbers, str, bool, None, lists, "
                         f"objects): {exc}") from None


def _entry(name: str) -> zipfile.ZipInfo:
    # A fixed timestamp and permissions: the same inputs give byte-identical bundles.
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def _pyposert_version() -> str:
    try:
        from . import __version__  # the package is imported before any of its submodules
        return str(__version__)
    except ImportError:  # pragma: no cover - only when pyposert._C was not built
        return "unknown"
