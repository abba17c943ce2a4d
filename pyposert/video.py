"""Video files that play everywhere: H.264 in MP4 through PyAV, OpenCV's writer as the fallback.

OpenCV's pip wheels cannot encode H.264 (no encoder is licensed into them); their ``mp4v``
fourcc writes MPEG-4 Part 2, which web browsers do not play. PyAV (``pip install av``, part of
the ``pyposert[runtime]`` extra) ships FFmpeg with libx264 in its wheels, so .mp4 / .m4v /
.mov outputs are written as H.264 (High profile, yuv420p, ``+faststart`` so a browser can start
playing before the file is loaded). Without PyAV (or an FFmpeg build without libx264) the
writer falls back to OpenCV's ``mp4v`` with a :class:`UserWarning` saying so. ``.avi`` is
Motion-JPEG through OpenCV, as before.

    writer = open_writer("out.mp4", fps=25.0, size=(h, w))   # frames: uint8 [h, w, 3] BGR
    writer.write(frame); writer.close()                       # writer.codec: "h264" | "mp4v" | "MJPG"
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

__all__ = ["MP4_SUFFIXES", "VideoWriter", "h264_available", "open_writer"]

MP4_SUFFIXES = (".mp4", ".m4v", ".mov")
H264_ENCODER = "libx264"
_CRF = "20"  # visually lossless for these blurry renders, ~5x smaller than the default mp4v bitrate


def h264_available() -> tuple[bool, str]:
    """(True, "") when PyAV with libx264 is importable here, else (False, why)."""
    try:
        import av
    except ImportError as exc:
        return False, f"PyAV is not installed (pip install av, or pyposert[runtime]): {exc}"
    try:
        av.codec.Codec(H264_ENCODER, "w")
    except Exception as exc:  # noqa: BLE001 - av raises its own error types per version
        return False, f"this PyAV's FFmpeg has no {H264_ENCODER} encoder ({type(exc).__name__}: {exc})"
    return True, ""


class VideoWriter:
    """Base: ``write(frame)`` with uint8 [h, w, 3] BGR frames of the size given at opening;
    ``close()`` finalises the file (idempotent). ``codec`` names what is written."""

    codec: str = ""

    def write(self, frame: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _PyAVWriter(VideoWriter):
    """H.264 / MP4 with PyAV. Odd frame sizes are padded by one repeated row / column (4:2:0
    chroma needs even sizes)."""

    codec = "h264"

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        import av

        self.size = (int(size[0]), int(size[1]))
        h, w = self.size
        self._even = (h + h % 2, w + w % 2)
        self._container: Any = av.open(str(path), mode="w", options={"movflags": "+faststart"})
        try:
            rate = Fraction(fps).limit_denominator(1001)
            stream = self._container.add_stream(H264_ENCODER, rate=rate)
            stream.height, stream.width = self._even
            stream.pix_fmt = "yuv420p"  # what browsers decode
            stream.options = {"crf": _CRF, "preset": "veryfast", "profile": "high"}
            self._stream = stream
        except BaseException:
            self._container.close()
            raise

    def write(self, frame: np.ndarray) -> None:
        import av

        if frame.shape[:2] != self.size:
            raise ValueError(f"frame is {frame.shape[:2]}, the video is {self.size}")
        if self._even != self.size:
            frame = np.pad(frame, ((0, self._even[0] - self.size[0]), (0, self._even[1] - self.size[1]), (0, 0)),
                           mode="edge")
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24").reformat(format="yuv420p")
        for packet in self._stream.encode(picture):
            self._container.mux(packet)

    def close(self) -> None:
        if self._container is None:
            return
        try:
            for packet in self._stream.encode(None):  # flush the encoder's delayed frames
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None


class _OpenCVWriter(VideoWriter):
    def __init__(self, path: Path, fps: float, size: tuple[int, int], fourcc: str) -> None:
        import cv2

        self.codec = fourcc
        self.size = (int(size[0]), int(size[1]))
        self._writer: Any = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps,
                                            (self.size[1], self.size[0]))
        if not self._writer.isOpened():
            self._writer = None
            raise OSError(f"cannot write video {path} (OpenCV could not open a {fourcc} writer; use .mp4 or .avi)")

    def write(self, frame: np.ndarray) -> None:
        self._writer.write(frame)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def open_writer(path: Union[str, Path], fps: float, size: tuple[int, int], *,
                codec: Optional[str] = None) -> VideoWriter:
    """A writer for ``path`` at ``fps`` with frames of ``size`` = (h, w).

    codec None: H.264 (PyAV) for .mp4 / .m4v / .mov, falling back to OpenCV's mp4v with a
    UserWarning; MJPG (OpenCV) for anything else (.avi). "h264" demands PyAV (OSError when
    it is missing); "mp4v" / "MJPG" force OpenCV's.
    """
    p = Path(path)
    if codec is None:
        codec = "h264" if p.suffix.lower() in MP4_SUFFIXES else "MJPG"
        if codec == "h264":
            ok, why = h264_available()
            if not ok:
                warnings.warn(f"writing {p.name} as MPEG-4 Part 2 (mp4v), which web browsers do not play: {why}",
                              UserWarning, stacklevel=2)
                codec = "mp4v"
    if codec == "h264":
        ok, why = h264_available()
        if not ok:
            raise OSError(f"cannot write H.264 to {p}: {why}")
        try:
            return _PyAVWriter(p, fps, size)
        except Exception as exc:  # noqa: BLE001 - FFmpeg errors come as av.error.* (OSError subclasses mostly)
            raise OSError(f"cannot write video {p} ({type(exc).__name__}: {exc})") from None
    return _OpenCVWriter(p, fps, size, codec)
