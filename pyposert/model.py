"""What a model is: its file, its task and its input contract, resolved once when it is opened.

    model = load_model("nram")                       # a bundle (read, validated) or a bare .onnx
    backend = open_backend(model, "auto")             # pyposert.backends
    contract = resolve_contract(model, backend)       # ModelContract: task, inputs, frame, heatmaps

Everything that depends on what a network takes reads the :class:`ModelContract`: the
:class:`~pyposert.engine.Engine`, :class:`~pyposert.source.Source` (which feeds it makes), the
device-frame paths of the GPU backends (TensorRT, torch) and the exporters (``export/``). Adding a model input is a change here and in the code that produces it.

Input contracts (batch first; float32 unless a graph says float16; (x, y) pixel order):

- "heatmaps" (``model.onnx``): ``source_image`` [B, 3, H, W] RGB in [-1, 1], ``pose_heatmaps``
  [B, 36, H, W] (18 source channels, then 18 target) -> ``image`` [B, 3, H, W] in [-1, 1];
- "keypoints" (``model_pyposert*.onnx``, TensorRT engines): ``source_image``,
  ``source_keypoints`` and ``target_keypoints`` [B, 18, 2] model pixels, missing -1 ->
  ``image``; optionally ``warped_source`` [B, 3, H, W] and ``warp_coverage`` [B, 1, H, W]
  (the source image warped onto the target pose, :func:`pyposert.ops.warp`, same dtype as
  ``source_image``);
- "completion" (task "completion", :mod:`pyposert.completion`): ``masked_image``,
  ``masked_parsing``, ``erase_mask``, ``pose_heatmaps`` [B, 18, H, W], ``garment_crops``,
  ``noise`` -> ``parsing`` [B, 8, H, W] and ``image``.

The task (what :class:`~pyposert.engine.Engine` method runs the model) follows from the
contract: "completion" for the completion contract, "parsing" for the parser contract
(``photo``, ``pose_heatmaps`` -> ``parsing`` [B, 8, H, W], :func:`pyposert.completion.parse_photo`),
else "pose_transfer". A bundle's manifest
says its task and frame; a bare ONNX file's come from its graph (heatmaps: DESIGN.md's
Gaussian, sigma = 6 * H / 256).

Nothing here imports torch, TensorRT or ONNX Runtime.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

from . import bundle, completion
from .bundle import TASKS, CompletionSpec, HeatmapSpec
from .errors import PlanError
from .poses import NUM_JOINTS

if TYPE_CHECKING:
    from .backends import Backend

__all__ = ["COMPLETION_INPUTS", "COMPLETION_OUTPUTS", "CONTRACTS", "HEATMAP_INPUTS", "KEYPOINT_INPUTS",
           "OUTPUT_NAME", "TASKS", "TASK_METHODS", "WARP_INPUTS", "HeatmapSpec", "ModelContract", "ModelFile",
           "ModelSpec", "TensorSpec", "contract_kind", "contract_outputs", "load_model", "resolve_contract"]

OUTPUT_NAME = "image"
HEATMAP_INPUTS = ("source_image", "pose_heatmaps")
KEYPOINT_INPUTS = ("source_image", "source_keypoints", "target_keypoints")
WARP_INPUTS = ("warped_source", "warp_coverage")  # optional inputs of keypoint models
COMPLETION_INPUTS = completion.COMPLETION_INPUTS
COMPLETION_OUTPUTS = completion.COMPLETION_OUTPUTS
PARSER_INPUTS = completion.PARSER_INPUTS
PARSER_OUTPUTS = completion.PARSER_OUTPUTS

# contract -> (required inputs, optional inputs, task). The first required input carries the
# batch axis every input shares.
CONTRACTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "heatmaps": (HEATMAP_INPUTS, (), "pose_transfer"),
    "keypoints": (KEYPOINT_INPUTS, WARP_INPUTS, "pose_transfer"),
    "completion": (COMPLETION_INPUTS, (), "completion"),
    "parsing": (PARSER_INPUTS, (), "parsing"),
}
TASK_METHODS = {"pose_transfer": "run() / source()", "completion": "complete()",
                "parsing": "parse()"}  # task -> Engine methods
TASK_OUTPUTS = {"pose_transfer": (OUTPUT_NAME,), "completion": COMPLETION_OUTPUTS, "parsing": PARSER_OUTPUTS}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a backend: name, shape (None = dynamic axis), numpy dtype name."""

    name: str
    shape: tuple[Optional[int], ...]
    dtype: str = "float32"

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} [{dims}] {self.dtype}"


@dataclass
class ModelFile:
    """What the Engine was given: a bundle or a bare ONNX file.

    ``kind``: "bundle" | "onnx" (a bare TensorRT engine is refused at load: engines are
    native code and load only from bundles whose hashes check). ``bundle`` is the
    ``pyposert.bundle.Bundle`` for bundles.
    """

    path: Path
    kind: str
    bundle: Any = None

    def payload_names(self, kind: str) -> list[str]:
        """Names of the bundle's payloads of ``kind`` ("onnx", "onnx-pyposert", "tensorrt",
        "torch-export"); empty for bare files."""
        if self.bundle is None:
            return []
        return list(self.bundle.payload_names(kind))

    def read_payload(self, name: str) -> bytes:
        """A payload's bytes, hash-checked by the bundle reader (PlanError when corrupt)."""
        return bytes(self.bundle.read_payload(name))


@dataclass(frozen=True)
class ModelContract:
    """What the network takes and makes, resolved once per opened model.

    Attributes:
        height, width: the model frame H x W (pixels).
        heatmap: how keypoints become heatmaps (the manifest's, or DESIGN.md's default).
        contract: "heatmaps" | "keypoints" | "completion" | "parsing" (the module docstring lists each).
        joints: joints per pose (18, COCO-18).
        completion: crop size, latent width and erase-region growth (completion only).
        inputs, outputs: name -> :class:`TensorSpec` of the network, as the backend reports
            them (batch axis first; None = dynamic).
    """

    height: int
    width: int
    heatmap: HeatmapSpec
    contract: str
    joints: int = NUM_JOINTS
    completion: Optional[CompletionSpec] = None
    inputs: Mapping[str, TensorSpec] = field(default_factory=dict, compare=False)
    outputs: Mapping[str, TensorSpec] = field(default_factory=dict, compare=False)

    @property
    def task(self) -> str:
        """"pose_transfer", "completion" or "parsing" (one of :data:`TASKS`)."""
        return CONTRACTS[self.contract][2]

    @property
    def batch_input(self) -> str:
        """The input whose first axis is the batch every input shares."""
        return CONTRACTS[self.contract][0][0]

    def max_batch(self, backend_limit: Optional[int] = None) -> int:
        """The most samples one network call takes: the network's fixed batch axis, else the
        backend's limit (a TensorRT optimisation profile's maximum), else 65536."""
        return int(self.inputs[self.batch_input].shape[0] or backend_limit or 1 << 16)

    def has(self, name: str) -> bool:
        """True when the network takes input ``name`` (e.g. an optional warp input)."""
        return name in self.inputs

    def dtype(self, name: str) -> str:
        """numpy dtype name of input ``name`` ("float32" or "float16")."""
        return self.inputs[name].dtype

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of tensor ``name`` after its batch axis, from the frame H x W, the joints
        K and the completion sizes: e.g. ``pose_heatmaps`` (2K, H, W) in pose transfer,
        ``target_keypoints`` (K, 2)."""
        return _expected_shapes(self)[name]


ModelSpec = ModelContract  # the name Engine.spec has always had


# ------------------------------------------------------------------ contract from tensor names
def contract_kind(inputs: Sequence[TensorSpec], outputs: Optional[Sequence[TensorSpec]], where: str) -> str:
    """Which input contract a network follows, by its input names (as a set): "heatmaps",
    "keypoints", "completion" or "parsing". PlanError when none matches or an output it needs is missing
    (``outputs`` None: a network that does not state its outputs, see :func:`contract_outputs`)."""
    names = {s.name for s in inputs}
    out_names = [s.name for s in outputs] if outputs is not None else list(_outputs_of(names))
    if OUTPUT_NAME not in out_names and set(PARSER_INPUTS) != names:
        raise PlanError(f"{where}: expected an output named {OUTPUT_NAME!r} [B, 3, H, W], got {out_names}")
    for kind, (required, optional, task) in CONTRACTS.items():
        if names in (set(required), set(required) | set(optional)):  # optional inputs come together
            wanted = TASK_OUTPUTS[task]
            missing = [n for n in wanted if n not in out_names]
            if missing:
                raise PlanError(f"{where}: a {task} model must output {list(wanted)}, got {out_names} "
                                f"(missing {missing})")
            return kind
    raise PlanError(
        f"{where}: inputs must be {list(HEATMAP_INPUTS)} (heatmap models), {list(KEYPOINT_INPUTS)} "
        f"(keypoint models, optionally with {list(WARP_INPUTS)}), {list(COMPLETION_INPUTS)} (completion "
        f"models) or {list(PARSER_INPUTS)} (parsers), got {[s.describe() for s in inputs]}")


def _outputs_of(names: set[str]) -> tuple[str, ...]:
    if set(PARSER_INPUTS) == names:
        return PARSER_OUTPUTS
    return COMPLETION_OUTPUTS if set(COMPLETION_INPUTS) <= names else (OUTPUT_NAME,)


def contract_outputs(kind: str, inputs: Mapping[str, TensorSpec]) -> dict[str, TensorSpec]:
    """The outputs a network of contract ``kind`` makes, float32, shapes from its inputs': for
    a network that does not state them (a torch program). Completion: ``parsing`` [B, 8, H, W]
    and ``image`` [B, 3, H, W]; else ``image``."""
    image = inputs[CONTRACTS[kind][0][0]].shape
    batch, frame = image[:1], tuple(image[2:4])
    if kind == "parsing":
        return {"parsing": TensorSpec("parsing", batch + (completion.NUM_CLASSES,) + frame, "float32")}
    outputs = {OUTPUT_NAME: TensorSpec(OUTPUT_NAME, batch + (3,) + frame, "float32")}
    if kind == "completion":
        parsing = inputs["masked_parsing"].shape
        outputs = {"parsing": TensorSpec("parsing", batch + tuple(parsing[1:4]), "float32"), **outputs}
    return outputs


# ------------------------------------------------------------------ loading
def load_model(path: Union[str, os.PathLike], trusted_keys: Any = None) -> ModelFile:
    """What ``path`` is: a bundle (read and validated), or a bare .onnx (checked when a
    backend reads it). A path that does not exist may name an installed model ("nram":
    ``$POSERT_MODELS``, then the package's; :func:`pyposert.resources.find_model`). Paths
    that are not regular files (folders, named pipes, devices) are refused before anything
    is read from them. With ``trusted_keys`` (or the environment's POSERT_TRUSTED_KEYS) only
    a bundle signed by one of them is accepted."""
    from .resources import find_model
    from .safety import open_regular
    from .signing import TRUSTED_KEYS_ENV, parse_trusted_keys, trusted_keys_from_env

    keys = trusted_keys_from_env() if trusted_keys is None else parse_trusted_keys(trusted_keys)
    p = Path(path)
    if not os.path.lexists(p):
        p = find_model(p)  # an installed model's name, or FileNotFoundError saying where it looked
    with open_regular(p) as f:
        head = f.read(4)
    if p.suffix.lower() == ".onnx":
        if keys is not None:
            raise PlanError(f"{p} is a bare ONNX file, which cannot be signed; signed bundles are required "
                            f"({TRUSTED_KEYS_ENV} or trusted_keys=)")
        return ModelFile(p, "onnx")
    if bundle.looks_like_bundle(head) or (p.suffix.lower() == ".plan" and not head):
        return ModelFile(p, "bundle", bundle.read_bundle(p, keys))
    # A bare TensorRT engine is native code with nothing to check it against: pyposert
    # deserialises engines only from bundles whose hashes check.
    raise PlanError(f"{p} is neither a pyposert bundle nor an ONNX model (a .plan bundle or an .onnx file). A bare "
                    f"TensorRT engine is not loaded on its own: it is native code, so pyposert loads engines only "
                    f"from a .plan bundle whose hashes check (python -m export CHECKPOINT --tensorrt)")


# ------------------------------------------------------------------ resolving
def resolve_contract(model: ModelFile, backend: "Backend") -> ModelContract:
    """The contract of ``model`` as opened by ``backend``: the network's tensors decide the
    input contract, the bundle manifest (or, for a bare file, the graph) the frame and the
    heatmap convention; both must agree (PlanError naming what differs)."""
    where = model.path.name
    inputs, outputs = dict(backend.input_spec), dict(backend.output_spec)
    kind = contract_kind(list(inputs.values()), list(outputs.values()), where)
    task = CONTRACTS[kind][2]
    if model.bundle is not None and model.bundle.task != task:
        raise PlanError(f"{where}: the manifest's task is {model.bundle.task!r} but the network's inputs are "
                        f"{sorted(inputs)}" + ("" if task == "completion" else
                                               f" (a completion network takes {list(COMPLETION_INPUTS)})"))
    comp: Optional[CompletionSpec] = None
    if model.bundle is not None:
        height, width, heatmap = _bundle_frame(model)
        comp = model.bundle.completion_spec
    elif kind == "completion":
        _, height, width = _fixed_dims(inputs, "masked_image", 4, where)
        _, size, size_x = _fixed_dims(inputs, "garment_crops", 4, where)
        if size != size_x:
            raise PlanError(f"{where}: garment_crops must be square [B, 12, S, S], got "
                            f"{inputs['garment_crops'].describe()}")
        _, latent = _fixed_dims(inputs, "noise", 3, where)
        comp = CompletionSpec(size, latent, completion.DEFAULT_MARGIN, completion.DEFAULT_PAD)
    else:
        height, width = _graph_size(inputs[CONTRACTS[kind][0][0]], where)
    if model.bundle is None:
        heatmap = HeatmapSpec("gaussian", 6.0 * height / 256.0, 4.0)  # DESIGN.md's convention
    contract = ModelContract(height, width, heatmap, kind, completion=comp, inputs=inputs, outputs=outputs)
    _check_shapes(contract, where)
    return contract


def _bundle_frame(model: ModelFile) -> tuple[int, int, HeatmapSpec]:
    """(H, W, heatmap convention) from the bundle's manifest: nothing is guessed. The reader
    has validated the conventions (coco18, x before y, RGB, [-1, 1]); a Gaussian must also
    have a positive sigma for the kernel to draw it."""
    spec = model.bundle.input_spec
    hm = spec.heatmap
    if hm.mode == "gaussian" and not hm.sigma > 0:
        raise PlanError(f"{model.path.name}: the manifest's Gaussian heatmaps need sigma > 0, got {hm.sigma}")
    return int(spec.height), int(spec.width), HeatmapSpec(hm.mode, float(hm.sigma), float(hm.radius))


def _graph_size(image: TensorSpec, where: str) -> tuple[int, int]:
    shape = image.shape
    if len(shape) != 4 or shape[2] is None or shape[3] is None:
        raise PlanError(f"{where}: {image.name} must be [B, 3, H, W] with a fixed H and W to run without a "
                        f"bundle manifest, got {image.describe()}")
    return int(shape[2]), int(shape[3])


def _fixed_dims(inputs: Mapping[str, TensorSpec], name: str, rank: int, where: str) -> tuple[int, ...]:
    """The non-batch dimensions of input ``name``, all fixed (PlanError otherwise)."""
    spec = inputs[name]
    dims = spec.shape[1:]
    if len(spec.shape) != rank or any(d is None for d in dims):
        raise PlanError(f"{where}: {spec.describe()} must have rank {rank} with fixed dimensions after the batch axis "
                        f"to run without a bundle manifest")
    return tuple(int(d) for d in dims)  # type: ignore[arg-type]


def _expected_shapes(contract: ModelContract) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape after the batch axis, by name."""
    h, w, k = contract.height, contract.width, contract.joints
    if contract.contract == "parsing":
        return {"photo": (3, h, w), "pose_heatmaps": (k, h, w), "parsing": (completion.NUM_CLASSES, h, w)}
    if contract.contract != "completion":
        return {"source_image": (3, h, w), "pose_heatmaps": (2 * k, h, w), "source_keypoints": (k, 2),
                "target_keypoints": (k, 2), "warped_source": (3, h, w), "warp_coverage": (1, h, w),
                OUTPUT_NAME: (3, h, w)}
    comp = contract.completion
    assert comp is not None
    classes = completion.NUM_CLASSES
    return {"masked_image": (3, h, w), "masked_parsing": (classes, h, w), "erase_mask": (1, h, w),
            "pose_heatmaps": (k, h, w), "garment_crops": (completion.CROP_CHANNELS, comp.crop_size, comp.crop_size),
            "noise": (2, comp.latent), "parsing": (classes, h, w), OUTPUT_NAME: (3, h, w)}


def _check_shapes(contract: ModelContract, where: str) -> None:
    """The network's tensors must agree with the manifest (PlanError naming both). Outputs a
    contract does not name (extra heads) are not checked."""
    expected = _expected_shapes(contract)
    wanted = TASK_OUTPUTS[contract.task]
    tensors = list(contract.inputs.values()) + [contract.outputs[n] for n in wanted]
    comp = contract.completion
    detail = "" if comp is None else f", crop size {comp.crop_size}, latent {comp.latent}"
    for tensor in tensors:
        want = expected[tensor.name]
        got = tensor.shape[1:]
        if len(got) != len(want) or any(g is not None and g != e for g, e in zip(got, want)):
            raise PlanError(f"{where}: {tensor.describe()} does not match the model spec "
                            f"[B, {', '.join(map(str, want))}] (H x W = {contract.height} x {contract.width}{detail})")
