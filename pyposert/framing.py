"""Photo framing: crop a photo around its person at the model's aspect, and paste results back.

The generators learned from photos framed like DeepFashion's: the person stands in the middle,
the keypoint box is about 80 % of the frame's height (top margin ~11 % of the box height above
the highest keypoint, ~14 % below the ankles -- measured on the shared DeepFashion test
annotations). A 512 x 512 photo with a small person, letterboxed whole, puts a tiny person in
the model frame and the network cuts off head and feet. So the engine cuts a :class:`Frame`:

    frame = frame_person(keypoints, (h, w), (H, W))        # box in photo pixels, model aspect
    crop = frame.cut(photo)                                  # uint8 [frame.height, frame.width, 3]
    kp_crop = frame.to_crop(keypoints)                       # (x, y) photo px -> crop px (exact)
    ...  network on the crop  ...
    full = frame.paste(photo, result_crop)                   # the rest of the photo untouched

Coordinates: (x, y) pixels, x = column first, pixel centres at integers (pyposert's
convention). The frame's origin is an integer pixel, so photo <-> crop is an integer
translation: it maps keypoints exactly as :meth:`Frame.cut` moves the pixels, and back.
Where the frame leaves the photo, :meth:`Frame.cut` pads by repeating the edge pixels (the
network sees a plausible background instead of a hard bar); pasting only writes inside the
photo. A missing joint (negative x or y, NaN, inf) stays ``(-1, -1)`` in both directions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["Frame", "frame_person", "full_frame", "TOP_MARGIN", "BOTTOM_MARGIN", "SIDE_MARGIN", "FEATHER"]

# Margins as fractions of the keypoint box height (see the module docstring for where they
# come from); the side margin is a fraction of the box width and rarely decides the size (the
# model frame is tall, so the height does).
TOP_MARGIN = 0.11
BOTTOM_MARGIN = 0.14
SIDE_MARGIN = 0.25
# Width of the cross-fade at the frame's edges inside the photo, as a fraction of the frame's
# shorter side: the network repaints the background of the crop a little differently, and a
# hard edge would show a rectangle around the person.
FEATHER = 0.06
MIN_JOINTS = 2  # fewer present joints give no box: the whole photo is used
MIN_SIDE = 8  # the Engine's smallest image side


@dataclass(frozen=True)
class Frame:
    """A crop box of a photo: ``width`` x ``height`` pixels whose top-left pixel is photo pixel
    (``x0``, ``y0``) (integers; may be negative or reach beyond the photo, which is then
    padded). ``image_height`` x ``image_width`` is the photo's size."""

    x0: int
    y0: int
    width: int
    height: int
    image_height: int
    image_width: int

    @property
    def inside(self) -> tuple[slice, slice, slice, slice]:
        """(photo rows, photo cols, crop rows, crop cols) of the part of the frame inside the
        photo (empty slices when it misses the photo)."""
        ys0, xs0 = max(self.y0, 0), max(self.x0, 0)
        ys1 = min(self.y0 + self.height, self.image_height)
        xs1 = min(self.x0 + self.width, self.image_width)
        ys1, xs1 = max(ys1, ys0), max(xs1, xs0)
        return (slice(ys0, ys1), slice(xs0, xs1),
                slice(ys0 - self.y0, ys1 - self.y0), slice(xs0 - self.x0, xs1 - self.x0))

    @property
    def is_whole(self) -> bool:
        """True when the frame is exactly the photo (nothing cut, nothing padded)."""
        return (self.x0, self.y0, self.width, self.height) == (0, 0, self.image_width, self.image_height)

    def to_crop(self, keypoints: np.ndarray) -> np.ndarray:
        """[..., 2|3] (x, y[, confidence]) photo pixels -> crop pixels, float32; missing stays -1.

        A present joint that lands left of or above the crop (negative) would read as missing;
        it cannot happen for the joints the frame was made from, and for others (a target pose
        reaching out of the frame) "missing" is what the network should see."""
        return self._shift(keypoints, -self.x0, -self.y0)

    def to_image(self, keypoints: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_crop`: crop pixels -> photo pixels, float32; missing stays -1."""
        return self._shift(keypoints, self.x0, self.y0)

    @staticmethod
    def _shift(keypoints: np.ndarray, dx: int, dy: int) -> np.ndarray:
        kp = np.asarray(keypoints, dtype=np.float64)  # float64: an integer shift of a float32 is exact
        if kp.ndim < 1 or kp.shape[-1] not in (2, 3):
            raise ValueError(f"keypoints must be [..., 2] (x, y) or [..., 3] (x, y, confidence), got {list(kp.shape)}")
        xy = kp[..., :2]
        missing = ~np.isfinite(xy).all(axis=-1) | (xy < 0).any(axis=-1)
        out = kp.copy()
        out[..., 0] += dx
        out[..., 1] += dy
        missing |= (out[..., :2] < 0).any(axis=-1)
        out[..., :2][missing] = -1.0
        return out.astype(np.float32)

    def cut(self, image: np.ndarray) -> np.ndarray:
        """uint8 [h, w, C] photo (C may be absent: a label map) -> [height, width, C] crop;
        outside the photo the edge pixels are repeated. A view when the frame lies inside."""
        h, w = image.shape[:2]
        if (h, w) != (self.image_height, self.image_width):
            raise ValueError(f"image is {h} x {w}, the frame was made for {self.image_height} x {self.image_width}")
        rows = np.clip(np.arange(self.y0, self.y0 + self.height), 0, h - 1)
        cols = np.clip(np.arange(self.x0, self.x0 + self.width), 0, w - 1)
        if self.x0 >= 0 and self.y0 >= 0 and self.x0 + self.width <= w and self.y0 + self.height <= h:
            return image[self.y0:self.y0 + self.height, self.x0:self.x0 + self.width]
        return np.ascontiguousarray(image[rows[:, None], cols[None, :]])

    def paste(self, image: np.ndarray, crop: np.ndarray, *, feather: float = FEATHER) -> np.ndarray:
        """A copy of ``image`` (uint8 [h, w, 3]) with ``crop`` (uint8 [height, width, 3]) put
        back where it was cut. Pixels outside the frame are exactly ``image``'s. Along frame
        edges that lie inside the photo, the crop fades in over ``feather`` x the frame's
        shorter side (0: a hard edge); at the photo's own borders it does not fade."""
        if crop.shape[:2] != (self.height, self.width):
            raise ValueError(f"crop is {crop.shape[:2]}, the frame is {self.height} x {self.width}")
        out = np.array(image, copy=True)
        rows, cols, crows, ccols = self.inside
        if rows.stop <= rows.start or cols.stop <= cols.start:
            return out
        part = crop[crows, ccols]
        ramp = int(round(feather * min(self.width, self.height)))
        if ramp < 1:
            out[rows, cols] = part
            return out
        # Distance (in pixels) of each frame pixel to the nearest frame edge that lies inside
        # the photo; alpha rises linearly over `ramp` pixels from 0 just outside that edge.
        ys = np.arange(crows.start, crows.stop, dtype=np.float32)
        xs = np.arange(ccols.start, ccols.stop, dtype=np.float32)
        big = np.float32(ramp)
        top = ys + 1 if self.y0 > 0 else np.full_like(ys, big)
        bottom = self.height - ys if self.y0 + self.height < self.image_height else np.full_like(ys, big)
        left = xs + 1 if self.x0 > 0 else np.full_like(xs, big)
        right = self.width - xs if self.x0 + self.width < self.image_width else np.full_like(xs, big)
        ay = np.minimum(np.minimum(top, bottom) / big, 1.0)
        ax = np.minimum(np.minimum(left, right) / big, 1.0)
        alpha = np.minimum(ay[:, None], ax[None, :])[:, :, None]
        blended = alpha * part.astype(np.float32) + (1.0 - alpha) * out[rows, cols].astype(np.float32)
        out[rows, cols] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        return out


def full_frame(image_size: tuple[int, int]) -> Frame:
    """The frame that is the whole photo (framing off): identity maps, nothing cut."""
    h, w = int(image_size[0]), int(image_size[1])
    return Frame(0, 0, w, h, h, w)


def frame_person(keypoints: np.ndarray, image_size: tuple[int, int], model_size: tuple[int, int], *,
                 include: Optional[tuple[float, float, float, float]] = None) -> Frame:
    """The crop of a photo that frames its person as the model expects.

    Args:
        keypoints: [K, 2|3] (x, y[, confidence]) photo pixels; missing joints negative.
        image_size: the photo's (h, w).
        model_size: the model frame's (H, W); the frame gets its aspect (to the pixel).
        include: optional (x0, y0, x1, y1) photo-pixel box that must also lie inside the frame
            (the erase region of a completion).

    Returns:
        The :class:`Frame`: the joints' box grown by TOP_MARGIN / BOTTOM_MARGIN (of its height)
        and SIDE_MARGIN (of its width), widened or heightened to the model's aspect, centred
        on the box. With fewer than 2 present joints: the whole photo (:func:`full_frame`).
    """
    h, w = int(image_size[0]), int(image_size[1])
    mh, mw = int(model_size[0]), int(model_size[1])
    kp = np.asarray(keypoints, dtype=np.float64)[..., :2].reshape(-1, 2)
    present = np.isfinite(kp).all(axis=1) & (kp >= 0).all(axis=1)
    if present.sum() < MIN_JOINTS:
        return full_frame((h, w))
    pts = kp[present]
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    if include is not None:
        x0, y0 = min(x0, include[0]), min(y0, include[1])
        x1, y1 = max(x1, include[2]), max(y1, include[3])
    # Pixel centres at integers: a box over pixels x0..x1 spans x1 - x0 + 1 pixels.
    box_h = y1 - y0 + 1.0
    box_w = x1 - x0 + 1.0
    need_h = box_h * (1.0 + TOP_MARGIN + BOTTOM_MARGIN)
    need_w = box_w * (1.0 + 2.0 * SIDE_MARGIN)
    aspect = mw / mh
    height_px = max(MIN_SIDE, int(math.ceil(max(need_h, need_w / aspect))))
    width_px = max(MIN_SIDE, int(round(height_px * aspect)))
    # In edge coordinates (pixel i spans [i, i + 1]): vertically the margins' proportions with
    # any extra height shared equally; horizontally centred on the box.
    extra = height_px - need_h
    top = y0 - box_h * TOP_MARGIN - extra / 2.0
    left = (x0 + x1 + 1.0) / 2.0 - width_px / 2.0
    return Frame(int(math.floor(left + 0.5)), int(math.floor(top + 0.5)), width_px, height_px, h, w)
