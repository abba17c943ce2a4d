"""Where does the rendered person stand? MediaPipe on the output video vs on the photo.

Measures retargeting outputs the way a user sees them: BlazePose (the ``pyposert[pose]``
extra, in its own virtual environment -- it needs numpy < 2) estimates the person in every
frame of a result video and in the photo; per frame it prints the IoU of

- the keypoint boxes (every joint: a swinging arm or a stride widens it), and
- the upright boxes (head to feet, 0.3 x that height wide, centred on the torso: where the
  figure stands and how tall it is, whatever the pose).

    P=.venv/bin/pyposert; R=../shared/data/real
    $P retarget --source $R/photos/pt_women2.jpg --source-pose $R/poses/pt_women2_keypoints.json \\
        --driving $R/video/poses --fps 50 --output out/street_women2.mp4
    python -m venv .venv-pose && .venv-pose/bin/pip install "mediapipe==0.10.21" "numpy<2"
    .venv-pose/bin/python benchmarks/real_footage_iou.py out/street_women2.mp4 $R/photos/pt_women2.jpg

Not part of the tests (MediaPipe is not in the main environment); ``tests/test_real_footage.py``
checks the same placement on the network's input with a stub network.
"""

from __future__ import annotations

import argparse
from typing import Optional

import cv2
import numpy as np

# COCO-18 joint j is BlazePose landmark BLAZEPOSE[j] (pyposert.poses.BLAZEPOSE_TO_COCO18; the
# neck, None, is the mid-shoulders). Copied so this script runs without pyposert's native core.
BLAZEPOSE = (0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)
HEAD = (0, 1, 14, 15, 16, 17)
TORSO = (1, 8, 11)


def estimate(pose: object, image_bgr: np.ndarray) -> Optional[np.ndarray]:
    """(18, 2) (x, y) pixels, COCO-18, missing -1; None when nobody is found."""
    h, w = image_bgr.shape[:2]
    result = pose.process(np.ascontiguousarray(image_bgr[..., ::-1]))  # type: ignore[attr-defined]
    if result.pose_landmarks is None:
        return None
    lm = np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark])
    out = np.full((18, 2), -1.0)
    for joint, index in enumerate(BLAZEPOSE):
        if index is not None and lm[index, 2] >= 0.5 and 0 <= lm[index, 0] <= 1 and 0 <= lm[index, 1] <= 1:
            out[joint] = (lm[index, 0] * w - 0.5, lm[index, 1] * h - 0.5)
    if (out[2] >= 0).all() and (out[5] >= 0).all():
        out[1] = (out[2] + out[5]) / 2
    return out


def keypoint_box(kp: np.ndarray) -> tuple[float, float, float, float]:
    pts = kp[(kp >= 0).all(1)]
    return pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()


def upright_box(kp: np.ndarray) -> Optional[tuple[float, float, float, float]]:
    ok = (kp >= 0).all(1)
    head = [kp[j, 1] for j in HEAD if ok[j]]
    torso = [kp[j, 0] for j in TORSO if ok[j]]
    if not head or not torso:
        return None
    top, bottom = min(head), kp[ok, 1].max()
    cx, half = float(np.mean(torso)), 0.15 * (bottom - top)
    return cx - half, top, cx + half, bottom


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", help="a retarget result video (layout 'result': the photo's size)")
    parser.add_argument("photo", help="the source photo")
    args = parser.parse_args()
    import mediapipe as mp

    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        photo = cv2.imread(args.photo, cv2.IMREAD_COLOR)
        ref = estimate(pose, photo)
        if ref is None:
            raise SystemExit(f"nobody found in {args.photo}")
        ref_kp, ref_up = keypoint_box(ref), upright_box(ref)
        cap = cv2.VideoCapture(args.video)
        kp_iou, up_iou, frames, missed = [], [], 0, 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames += 1
            kp = estimate(pose, frame)
            if kp is None or (kp >= 0).sum() < 8:
                missed += 1
                continue
            kp_iou.append(iou(keypoint_box(kp), ref_kp))
            up = upright_box(kp)
            if up is not None and ref_up is not None:
                up_iou.append(iou(up, ref_up))
    for name, values in (("keypoint box", kp_iou), ("upright box", up_iou)):
        v = np.asarray(values)
        if not v.size:
            print(f"{name:12}: no frame with a person to measure")
            continue
        print(f"{name:12}: IoU min {v.min():.3f} p10 {np.percentile(v, 10):.3f} mean {v.mean():.3f}, "
              f"{int((v < 0.7).sum())} of {len(v)} frames below 0.7")
    print(f"frames {frames}, person not found in {missed}")


if __name__ == "__main__":
    main()
