"""pyposert's exception types. All derive from the built-in type a caller would catch anyway."""

from __future__ import annotations


class PlanError(ValueError):
    """A model file (`.plan` bundle, `.onnx`, TensorRT engine) cannot be used: corrupt,
    truncated, foreign, written by a newer pyposert, failing a hash check, or built for
    another GPU / TensorRT version. The message says which, and what would work."""


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run on this machine (e.g. TensorRT not installed, no CUDA
    device, onnxruntime missing). The message names what is missing and how to get it."""
