"""pyposert's export stage: trained generator -> ``.plan`` bundle (``python -m export``).

- :mod:`export.onnx_export` -- the two ONNX graphs (standard ops for ONNX Runtime; pyposert
  custom nodes ``PoseHeatmap`` / ``FusedAttention`` for TensorRT), their structural checks and
  the ONNX Runtime parity check.
- :mod:`export.torch_ops` -- the ``pyposert::pose_heatmaps`` torch custom op behind the
  PoseHeatmap node.
- :mod:`export.tensorrt_build` -- TensorRT 11 engines from the custom-node graph, with parity.
- :mod:`export.plugins` -- the TensorRT ahead-of-time plugins (kernels compiled to PTX by nvcc).
- :mod:`export.__main__` -- the command line and :func:`export_bundle`.

The bundle format itself (reading and writing, no torch) is :mod:`pyposert.bundle`.
Importing this package is cheap; torch is imported by the submodules that need it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["export_bundle"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import export.plugins` (nvcc/PTX only) does not pull in torch.
    if name == "export_bundle":
        from export.__main__ import export_bundle

        return export_bundle
    raise AttributeError(f"module 'export' has no attribute {name!r}")
