"""TensorRT definition of ``pyposert::Warp`` (``tensorrt.plugin``, ahead-of-time).

ONNX node (domain "pyposert", op Warp): inputs image [B, C, Hs, Ws] float32 or float16,
source_keypoints and target_keypoints float32 [B, 18, 2] COCO-18 (x, y) (source in image
pixels, target in output pixels; missing: negative or NaN); attributes height, width (int);
outputs warped [B, C, height, width] and coverage [B, 1, height, width], the image's type. The
kernel is warp_aot.cu (csrc/warp_kernel.cuh), embedded in the engine as PTX.

AOT limits: kernel arguments are (inputs..., int32 scalars..., outputs...), one launch per
call; the sizes travel as int32 scalars (attributes are not serialised into AOT engines). The
parts are fitted in static shared memory: no dynamic shared memory.

Import this module only through ``export.plugins.register_plugins`` (it imports tensorrt).
"""

# No `from __future__ import annotations`: tensorrt.plugin checks these functions' type hints
# against each other, and postponed (string) annotations would not compare equal.
from typing import List, Tuple, Union

import tensorrt as trt
import tensorrt.plugin as trtp

from export.plugins import plugin_ptx

PLUGIN_ID = "pyposert::Warp"
_THREADS = 256  # csrc warp_kernel::kThreads, one thread per output pixel


def _check(height: int, width: int) -> None:
    if height < 1 or width < 1:
        raise ValueError(f"pyposert::Warp needs height, width >= 1, got {height} x {width}")


@trtp.register(PLUGIN_ID)
def warp_desc(image: trtp.TensorDesc, source_keypoints: trtp.TensorDesc, target_keypoints: trtp.TensorDesc,
              height: int, width: int) -> Tuple[trtp.TensorDesc, trtp.TensorDesc]:
    _check(height, width)
    batch, channels = image.shape_expr[0], image.shape_expr[1]
    warped = trtp.from_shape_expr((batch, channels, height, width), dtype=image.dtype)
    coverage = trtp.from_shape_expr((batch, 1, height, width), dtype=image.dtype)
    return warped, coverage


@trtp.autotune(PLUGIN_ID)
def warp_autotune(image: trtp.TensorDesc, source_keypoints: trtp.TensorDesc, target_keypoints: trtp.TensorDesc,
                  outputs: Tuple[trtp.TensorDesc]) -> List[trtp.AutoTuneCombination]:
    # '|' ties the image and both outputs to one type; keypoints are always float32.
    return [trtp.AutoTuneCombination("FP32|FP16, FP32, FP32, FP32|FP16, FP32|FP16")]


@trtp.aot_impl(PLUGIN_ID)
def warp_aot_impl(
    image: trtp.TensorDesc, source_keypoints: trtp.TensorDesc, target_keypoints: trtp.TensorDesc, height: int,
    width: int, outputs: Tuple[trtp.TensorDesc], tactic: int,
) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymExprs]:
    _check(height, width)
    batch, channels, src_height, src_width = image.shape_expr
    kernel = "pyposert_warp_f16" if image.dtype == trt.float16 else "pyposert_warp_f32"
    launch = trtp.KernelLaunchParams()
    launch.grid_x = (height * width + _THREADS - 1) // _THREADS
    launch.grid_y = batch
    launch.block_x = _THREADS
    # Kernel signature: (image, source, target, C, Hs, Ws, H, W, warped, coverage).
    extra = trtp.SymIntExprs.from_tuple([trtp.SymInt32(e) for e in (channels, src_height, src_width, height, width)])
    return kernel.encode(), plugin_ptx(PLUGIN_ID).encode(), launch, extra
