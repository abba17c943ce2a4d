"""TensorRT definition of ``pyposert::PoseHeatmap`` (``tensorrt.plugin``, ahead-of-time).

ONNX node (domain "pyposert", op PoseHeatmap): inputs source_keypoints and target_keypoints,
float32 [B, K, 2] (x, y) model pixels (missing: negative or NaN); attributes mode (a code of
pyposert._C.HEATMAP_MODES: 0 gaussian, 1 disk), sigma, radius (float, model pixels), height,
width (int); output float32
[B, 2K, height, width], source channels first. The kernel is pose_heatmap_aot.cu.

AOT limits: kernel arguments are integers only, so sigma and radius travel as the int32 bit
patterns of their float32 values; attributes are not serialised into AOT engines, so every
value the kernel needs is such an argument. One launch covers both poses (grid y = 2K).

Import this module only through ``export.plugins.register_plugins`` (it imports tensorrt).
"""

# No `from __future__ import annotations`: tensorrt.plugin checks these functions' type hints
# against each other, and postponed (string) annotations would not compare equal.
from typing import List, Tuple, Union

import tensorrt as trt
import tensorrt.plugin as trtp

from export.plugins import float_bits, plugin_ptx
from pyposert.torch_ops import check_pose_heatmap_attributes

PLUGIN_ID = "pyposert::PoseHeatmap"
KERNEL = "pyposert_pose_heatmap_f32"
_THREADS = 256  # csrc heatmaps_kernel::kThreads, one thread per output pixel


@trtp.register(PLUGIN_ID)
def pose_heatmap_desc(source_keypoints: trtp.TensorDesc, target_keypoints: trtp.TensorDesc, mode: int,
                      sigma: float, radius: float, height: int, width: int) -> trtp.TensorDesc:
    check_pose_heatmap_attributes(mode, sigma, radius, height, width)
    batch, joints = source_keypoints.shape_expr[0], source_keypoints.shape_expr[1]
    return trtp.from_shape_expr((batch, joints * 2, height, width), dtype=trt.float32)


@trtp.autotune(PLUGIN_ID)
def pose_heatmap_autotune(source_keypoints: trtp.TensorDesc, target_keypoints: trtp.TensorDesc,
                          outputs: Tuple[trtp.TensorDesc]) -> List[trtp.AutoTuneCombination]:
    return [trtp.AutoTuneCombination("FP32, FP32, FP32")]  # linear layouts (the default)


@trtp.aot_impl(PLUGIN_ID)
def pose_heatmap_aot_impl(
    source_keypoints: trtp.TensorDesc, target_keypoints: trtp.TensorDesc, mode: int, sigma: float, radius: float,
    height: int, width: int, outputs: Tuple[trtp.TensorDesc],
) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymExprs]:
    check_pose_heatmap_attributes(mode, sigma, radius, height, width)
    batch, joints = source_keypoints.shape_expr[0], source_keypoints.shape_expr[1]
    launch = trtp.KernelLaunchParams()
    launch.grid_x = (height * width + _THREADS - 1) // _THREADS
    launch.grid_y = joints * 2
    launch.grid_z = batch
    launch.block_x = _THREADS
    # Kernel signature: (source, target, K, H, W, mode, sigma_bits, radius_bits, out).
    extra = trtp.SymIntExprs.from_tuple([trtp.SymInt32(e) for e in (joints, height, width, mode, float_bits(sigma),
                                                                     float_bits(radius))])
    return KERNEL.encode(), plugin_ptx(PLUGIN_ID).encode(), launch, extra
