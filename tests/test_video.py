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


def test_headless_chromium_plays_the_h264_file(tmp_path: Path) -> None:
    """Where Chromium is installed: the H.264 file plays to its end in a real browser, and the
    mp4v file OpenCV would have written is refused (MEDIA_ERR_SRC_NOT_SUPPORTED) -- the reason
    for this module."""
    import functools
    import http.server
    import re
    import shutil
    import subprocess
    import threading

    import cv2

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium here (apt-get install chromium)")
    if not video.h264_available()[0]:
        pytest.skip(video.h264_available()[1])
    frames = _frames(25, 64, 48)
    with video.open_writer(tmp_path / "h264.mp4", 25.0, (64, 48)) as writer:
        for f in frames:
            writer.write(f)
    legacy = cv2.VideoWriter(str(tmp_path / "mp4v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (48, 64))
    for f in frames:
        legacy.write(f)
    legacy.release()
    (tmp_path / "probe.html").write_text("""<html><body><video id="v" muted preload="auto"></video><pre id="out"></pre>
<script>const v = document.getElementById("v"), o = document.getElementById("out"); const seen = [];
for (const e of ["loadeddata", "playing", "timeupdate", "ended", "error"]) v.addEventListener(e, () => {
  if (!seen.includes(e)) seen.push(e);
  o.textContent = seen.join(" ") + " code=" + (v.error ? v.error.code : 0) + " t=" + v.currentTime.toFixed(2); });
v.src = location.hash.slice(1); v.play().catch(() => {});</script></body></html>""")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    results = {}
    try:
        for name in ("h264", "mp4v"):
            url = f"http://127.0.0.1:{server.server_address[1]}/probe.html#{name}.mp4"
            dom = subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu",
                                  "--autoplay-policy=no-user-gesture-required", "--virtual-time-budget=5000",
                                  "--dump-dom", url], capture_output=True, text=True, timeout=90).stdout
            match = re.search(r'<pre id="out">([^<]*)', dom)
            results[name] = match.group(1) if match else dom[-300:]
    finally:
        server.shutdown()
    assert "playing" in results["h264"] and "code=0" in results["h264"], results
    played = float(re.search(r"t=([0-9.]+)", results["h264"]).group(1))
    assert played >= 0.5, results  # the picture advanced through the 1 s clip
    assert "error" in results["mp4v"] and "code=4" in results["mp4v"], results
