"""model_pyposert*.onnx -> serialized TensorRT 11 engines, with an fp32 parity check.

Thin on purpose: parse the custom-node graph with pyposert's AOT plugins registered, one
optimisation profile (batch 1..8, optimised for 1: live video runs one frame at a time), a
timing cache kept beside the output so rebuilds are fast, and
``HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY`` so an engine is valid on every GPU of
the compute capability it is keyed by in the bundle. TensorRT 11 networks are strongly typed
(``builder.create_network()`` has no other mode): precision is whatever the ONNX says, so the
fp16 engine is built from the fp16 graph (export.onnx_export, ``precision="fp16"``), not by a
builder flag.

Engines must be loaded by the exact TensorRT version (major.minor.patch.build) that built
them; the bundle records ``tensorrt.__version__`` for that reason.

Parity: every engine is run (through torch CUDA tensors) on the same inputs as the fp32 torch
generator; an engine below the precision's PSNR floor is not put in the bundle.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from export.onnx_export import Parity, compare, example_inputs, graph_inputs, parity_fields, torch_reference
from pyposert.errors import BackendUnavailable
from training.models import ModelConfig

__all__ = [
    "BATCH_PROFILE",
    "INSTALL_HINT",
    "MIN_PSNR_DB",
    "EngineBuild",
    "build_engine",
    "build_engines",
    "device_compute_capability",
    "engine_payload_name",
    "import_tensorrt",
    "require_tensorrt",
    "run_engine",
]

BATCH_PROFILE = (1, 1, 8)  # (min, opt, max) batch of the optimisation profile
# Floors of the engine-vs-torch-fp32 check. fp32 engines still differ from torch by TF32
# convolutions (TensorRT's default on Ampere+); fp16 engines by half-precision activations.
MIN_PSNR_DB = {"fp32": 45.0, "fp16": 35.0}

INSTALL_HINT = (
    "Install TensorRT >= 10.9 (11.x recommended) on a machine with an NVIDIA GPU: "
    "`pip install tensorrt-cu12` (or tensorrt-cu13 for CUDA 13); its -libs packages download the "
    "libraries from NVIDIA's own package index, which must be reachable, or install "
    "NVIDIA's tar/deb packages: https://docs.nvidia.com/deeplearning/tensorrt/latest/installing-tensorrt/"
    "installing.html. Re-run without --tensorrt to export the ONNX-only bundle (ONNX Runtime on any "
    "CPU; engines can be built later on the target machine).")


def import_tensorrt() -> Any:
    """``import tensorrt`` (with ``tensorrt.plugin`` AOT support), or BackendUnavailable."""
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or a broken install failing to load its libraries
        raise BackendUnavailable(f"TensorRT is not available ({type(exc).__name__}: {exc}). {INSTALL_HINT}") from exc
    try:
        import tensorrt.plugin as trtp
    except Exception as exc:
        raise BackendUnavailable(f"TensorRT {trt.__version__} has no tensorrt.plugin module (needs >= 10.9). "
                                 f"{INSTALL_HINT}") from exc
    if not hasattr(trtp, "aot_impl"):
        raise BackendUnavailable(f"TensorRT {trt.__version__} has no ahead-of-time plugins (tensorrt.plugin."
                                 f"aot_impl, since 10.9). {INSTALL_HINT}")
    return trt


def require_tensorrt() -> Any:
    """Everything ``--tensorrt`` needs, checked before any work: TensorRT with AOT plugins, a
    CUDA GPU visible to torch (the parity check runs the engines on torch CUDA tensors) and
    nvcc (the plugin kernels are compiled to PTX). Returns the tensorrt module."""
    from export.plugins import find_nvcc

    trt = import_tensorrt()
    if not torch.cuda.is_available():
        raise BackendUnavailable(
            f"--tensorrt needs a CUDA GPU visible to torch (torch {torch.__version__}, CUDA build: "
            f"{torch.version.cuda is not None}): engines are built for, and parity-checked on, this machine's GPU. "
            "Install a CUDA build of torch (https://pytorch.org/get-started/locally/) on an NVIDIA machine.")
    find_nvcc()
    return trt


def device_compute_capability(device: int = 0) -> tuple[int, int]:
    """(major, minor) of the CUDA device."""
    major, minor = torch.cuda.get_device_capability(device)
    return int(major), int(minor)


def engine_payload_name(cc: tuple[int, int], tensorrt_version: str, precision: str) -> str:
    """Bundle name of an engine, e.g. tensorrt/sm90_trt11.4.0.8_fp16.engine."""
    return f"tensorrt/sm{cc[0]}{cc[1]}_trt{tensorrt_version}_{precision}.engine"


def _read_cache(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() else b""


def build_engine(trt: Any, onnx_bytes: bytes, *, timing_cache: Path | None = None,
                 batch: tuple[int, int, int] = BATCH_PROFILE, logger: Any = None) -> bytes:
    """Serialized engine of a custom-node graph. pyposert's plugins must be registered first
    (export.plugins.register_plugins). The timing cache file is read if present and rewritten."""
    logger = logger or trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network()  # strongly typed: types come from the ONNX graph
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT's ONNX parser rejected the graph:\n{errors}")
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]  # [batch, ...fixed dims]
        profile.set_shape(tensor.name, (batch[0], *rest), (batch[1], *rest), (batch[2], *rest))
    config.add_optimization_profile(profile)
    config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY
    cache = config.create_timing_cache(_read_cache(timing_cache) if timing_cache else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine (see the TensorRT log above)")
    if timing_cache is not None:
        data = bytes(memoryview(config.get_timing_cache().serialize()))
        tmp = timing_cache.with_name(f".{timing_cache.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, timing_cache)
    return bytes(memoryview(serialized))


_TORCH_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16, "INT32": torch.int32}


def run_engine(trt: Any, engine_bytes: bytes, inputs: dict[str, torch.Tensor], logger: Any = None,
               output: str = "image") -> np.ndarray:
    """Run a serialized engine once on CUDA copies of ``inputs`` ({name: CPU tensor}); returns
    the ``output`` tensor (default ``image``) as a float32 numpy array. Every output of the
    engine gets a buffer (TensorRT needs an address for each), e.g. completion's ``parsing``."""
    logger = logger or trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(engine_bytes)
    if engine is None:
        raise RuntimeError("TensorRT could not deserialize the engine it just built")
    context = engine.create_execution_context()
    device = {name: t.contiguous().cuda() for name, t in inputs.items()}
    for name, tensor in device.items():
        context.set_input_shape(name, tuple(tensor.shape))
        context.set_tensor_address(name, tensor.data_ptr())
    outputs: dict[str, torch.Tensor] = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) != trt.TensorIOMode.OUTPUT:
            continue
        dtype = _TORCH_DTYPES[engine.get_tensor_dtype(name).name]
        outputs[name] = torch.empty(tuple(context.get_tensor_shape(name)), dtype=dtype, device="cuda")
        context.set_tensor_address(name, outputs[name].data_ptr())
    stream = torch.cuda.Stream()
    if not context.execute_async_v3(stream.cuda_stream):
        raise RuntimeError("TensorRT execute_async_v3 failed")
    stream.synchronize()
    return outputs[output].float().cpu().numpy()


@dataclass(frozen=True)
class EngineBuild:
    """One engine for the bundle: payload name, bytes, key fields and its parity numbers."""

    name: str
    data: bytes
    compute_capability: str
    tensorrt_version: str
    precision: str
    source: str
    parity: Parity
    seconds: float

    def extra(self) -> dict[str, Any]:
        """Manifest fields of the payload."""
        return {"compute_capability": self.compute_capability, "tensorrt_version": self.tensorrt_version,
                "precision": self.precision, "source": self.source,
                "batch": dict(zip(("min", "opt", "max"), BATCH_PROFILE)),
                "hardware_compatibility": "same_compute_capability",
                "parity": {"reference": "torch fp32", "batches": [self.parity.batch], **parity_fields([self.parity])}}


def build_engines(graphs: dict[str, tuple[str, bytes]], generator: nn.Module, cfg: ModelConfig, output: Path,
                  ptx_cache: Path | None = None) -> tuple[list[EngineBuild], list[str]]:
    """Build and parity-check one engine per custom-node graph.

    Args:
        graphs: {precision: (payload name, ONNX bytes)}, e.g. {"fp16": ("model_pyposert_fp16.onnx", ...)}.
        generator, cfg: the fp32 torch model (the parity reference) and its config.
        output: the bundle path; the timing cache is written beside it.
        ptx_cache: PTX cache folder (export.plugins.default_cache_dir() if None).

    Returns (engines that passed, reasons for those left out).
    """
    from export.plugins import compile_all, register_plugins

    trt = require_tensorrt()
    cc = device_compute_capability()
    register_plugins(compile_all(f"compute_{cc[0]}{cc[1]}", ptx_cache))
    version = str(trt.__version__)
    cache = output.with_name(f"{output.name}.sm{cc[0]}{cc[1]}-trt{version}.timing-cache")
    x = example_inputs(cfg, batch=2, seed=1)
    reference = torch_reference(generator, x)
    feed = {k: x[k] for k in graph_inputs(cfg, "pyposert")}
    built: list[EngineBuild] = []
    skipped: list[str] = []
    for precision, (source, onnx_bytes) in graphs.items():
        start = time.perf_counter()
        data = build_engine(trt, onnx_bytes, timing_cache=cache)
        parity = compare(reference, run_engine(trt, data, feed))
        name = engine_payload_name(cc, version, precision)
        if not parity.psnr_db >= MIN_PSNR_DB[precision]:
            skipped.append(f"{name}: parity with torch fp32 too low ({parity}; floor {MIN_PSNR_DB[precision]} dB)")
            continue
        built.append(EngineBuild(name, data, f"{cc[0]}.{cc[1]}", version, precision, source, parity,
                                 time.perf_counter() - start))
    return built, skipped
