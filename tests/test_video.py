"""Video output (pyposert.video): H.264 MP4 that browsers play, through PyAV; OpenCV's mp4v
with a warning where no H.264 encoder is installed; Motion-JPEG AVI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyposert import video


def _frames(n: int, h: int, w: int) -> list[np.ndarray]:
    """Smooth colour gradients with a bright square moving across (video-like content)."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) * 127 // (h + w)], -1)
    frames = []
    for i in range(n):
        f = base.astype(np.uint8).copy()
        f[10:30, 3 * i:3 * i + 20] = 250
        frames.append(f)
    return frames


def test_mp4_is_h264_yuv420p_with_odd_sizes(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    if not video.h264_available()[0]:
        pytest.skip(video.h264_available()[1])
    frames = _frames(12, 255, 175)  # odd sizes: padded by one row / column for 4:2:0
    with video.open_writer(tmp_path / "a.mp4", 29.97, (255, 175)) as writer:
        assert writer.codec == "h264"
        for f in frames:
            writer.write(f)
    with av.open(str(tmp_path / "a.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.format.name == "yuv420p"
        assert float(stream.average_rate) == pytest.approx(29.97, abs=0.01)
        decoded = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(decoded) == 12 and decoded[0].shape == (256, 176, 3)
    # Lossy, but the picture is the picture.
    assert np.abs(decoded[5][:255, :175].astype(int) - frames[5].astype(int)).mean() < 3
    # OpenCV reads it too (what `pyposert` and most tools use).
    import cv2

    cap = cv2.VideoCapture(str(tmp_path / "a.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    cap.release()
    with pytest.raises(ValueError, match="frame is"):
        with video.open_writer(tmp_path / "b.mp4", 25.0, (64, 64)) as writer:
            writer.write(frames[0])


def test_without_h264_mp4_falls_back_to_mp4v_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    monkeypatch.setattr(video, "h264_available", lambda: (False, "PyAV is not installed (test)"))
    with pytest.warns(UserWarning, match="web browsers do not play.*PyAV is not installed"):
        writer = video.open_writer(tmp_path / "c.mp4", 25.0, (48, 64))
    assert writer.codec == "mp4v"
    for f in _frames(3, 48, 64):
        writer.write(f)
    writer.close()
    cap = cv2.VideoCapture(str(tmp_path / "c.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") in (b"mp4v", b"FMP4")  # MPEG-4 Part 2
    cap.release()
    with pytest.raises(OSError, match="cannot write H.264.*PyAV is not installed"):
        video.open_writer(tmp_path / "d.mp4", 25.0, (48, 64), codec="h264")


def test_avi_is_motion_jpeg(tmp_path: Path) -> None:
    writer = video.open_writer(tmp_path / "e.avi", 10.0, (40, 30))
    assert writer.codec == "MJPG"
    writer.write(_frames(1, 40, 30)[0])
    writer.close()
    assert (tmp_path / "e.avi").stat().st_size > 0
