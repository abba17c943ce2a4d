"""Type stub of the private native module (see csrc/bindings.cpp). Use pyposert.ops instead:
it validates arguments; these functions only guard memory safety."""

from typing import Any

import numpy as np
import numpy.typing as npt

def heatmaps_cpu(keypoints: npt.NDArray[np.float32], out: npt.NDArray[Any], channel_offset: int, mode: int,
                 sigma: float, radius: float, scale_x: float, scale_y: float, offset_x: float,
                 offset_y: float) -> None:
    """keypoints [B, K, 2] float32 (x, y) -> out[:, channel_offset:channel_offset + K] of a
    [B, C, H, W] float32/float16 buffer. mode 0 = Gaussian, 1 = disk."""

def heatmaps_cuda(keypoints: int, out: int, dtype: int, batch: int, joints: int, height: int, width: int,
                  out_channels: int, channel_offset: int, mode: int, sigma: float, radius: float,
                  scale_x: float, scale_y: float, offset_x: float, offset_y: float, stream: int) -> None:
    """Device addresses; dtype 0 = float32, 1 = float16; runs on `stream` (cudaStream_t)."""

HEATMAP_MODES: dict[str, int]  # heatmap mode name -> code (csrc HeatmapMode)
DTYPES: dict[str, int]  # float dtype name -> code of the CUDA entry points' `dtype`
ATTENTION_TILES: dict[str, int]  # the CUDA attention kernel's tiling (csrc attention_tiles)
WARP_JOINTS: int  # keypoints per skeleton of the warp (COCO-18)

def attention_cpu(q: npt.NDArray[np.float32], k: npt.NDArray[np.float32], v: npt.NDArray[np.float32],
                  out: npt.NDArray[np.float32], scale: float) -> None:
    """q [B, Nq, Dk], k [B, Nk, Dk], v [B, Nk, Dv] -> out [B, Nq, Dv], float32; any batch and row
    strides, unit-stride last axes."""

def attention_cuda(q: int, k: int, v: int, out: int, dtype: int, batch: int, queries: int, keys: int,
                   dk: int, dv: int, scale: float, q_strides: tuple[int, int], k_strides: tuple[int, int],
                   v_strides: tuple[int, int], out_strides: tuple[int, int], stream: int) -> None:
    """Device addresses; strides are (batch, row) in elements, the last axes unit-stride."""

def warp_cpu(image: npt.NDArray[np.float32], source_keypoints: npt.NDArray[np.float32],
             target_keypoints: npt.NDArray[np.float32], out: npt.NDArray[np.float32],
             coverage: npt.NDArray[np.float32]) -> None:
    """image [B, C, Hs, Ws], keypoints [B, 18, 2] (x, y) -> out [B, C, H, W], coverage [B, 1, H, W]."""
def warp_cuda(image: int, source_keypoints: int, target_keypoints: int, out: int, coverage: int, dtype: int,
              batch: int, channels: int, src_height: int, src_width: int, height: int, width: int,
              stream: int) -> None: ...
def letterbox(src_height: int, src_width: int, dst_height: int, dst_width: int) -> tuple[int, int, int, int]:
    """(box_x, box_y, box_width, box_height) of the content box in the model frame."""

def to_model_input_cpu(image: npt.NDArray[np.uint8], out: npt.NDArray[Any], bgr: bool, pad_value: float) -> None:
    """image uint8 [h, w, 3] (packed pixels, rows may be padded) -> out [3, H, W] RGB in [-1, 1]."""

def to_model_input_cuda(image: int, row_stride: int, src_height: int, src_width: int, out: int, dtype: int,
                        dst_height: int, dst_width: int, bgr: bool, pad_value: float, stream: int) -> None: ...

def from_model_output_cpu(model_output: npt.NDArray[Any], out: npt.NDArray[np.uint8], src_height: int,
                          src_width: int, unletterbox: bool, bgr: bool) -> None:
    """[3, H, W] RGB in [-1, 1] -> out uint8 [h, w, 3] (or [H, W, 3] when not unletterboxing)."""

def from_model_output_cuda(model_output: int, dtype: int, dst_height: int, dst_width: int, out: int,
                           src_height: int, src_width: int, unletterbox: bool, bgr: bool, stream: int) -> None: ...

def dlpack_describe(capsule: Any) -> dict[str, Any]:
    """data, shape, strides (elements or None), type_code, bits, lanes, device_type, device_id."""

def build_info() -> dict[str, Any]: ...
def cuda_status() -> dict[str, Any]: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
