"""Fashion image completion: the inputs of a completion network, built from a photo,
its human parsing map and its pose. numpy (and pyposert's kernels) only: the runtime
(:meth:`pyposert.Engine.complete`) and training (``training.data.completion``) share every
function here, so a network sees the same tensors in both.

Vocabulary (one name per concept, also in the bundle manifest and the ONNX graph):

- parsing: uint8 [h, w] class map, classes of :data:`PARSING_CLASSES` (the thesis' 8 classes:
  0 background, 1 face + hair, 2 upper-body skin, 3 lower-body skin, 4 hat, 5 top, 6 bottom,
  7 shoes).
- garment: one of :data:`GARMENTS` (hat, top, bottom, shoes), the class to erase and complete.
- erase region: the garment's bounding box enlarged by ``margin`` of its size on each side
  (plus ``pad`` pixels), as the thesis erases; or any user mask. Inside it the image and the
  parsing are unknown to the network.
- garment crops: [12, S, S] RGB in [-1, 1], for hat, top, bottom, shoes in that order: the
  pixels of that garment (others neutral 0), cropped to its box, zero-padded to a square,
  resized to S x S. The erased garment's three channels (and absent garments') are zero: the
  compatibility encoders see only the *other* garments.

Network I/O (``COMPLETION_INPUTS`` / ``COMPLETION_OUTPUTS``; float32, batch B dynamic; model
frame H x W; RGB in [-1, 1]):

    masked_image    [B, 3, H, W]   the photo, 0 inside the erase region
    masked_parsing  [B, 8, H, W]   one-hot parsing, all-zero inside the erase region
    erase_mask      [B, 1, H, W]   1 inside the erase region, else 0
    pose_heatmaps   [B, 18, H, W]  Gaussian heatmaps of the person's COCO-18 pose
    garment_crops   [B, 12, S, S]  see above
    noise           [B, 2, Z]      standard normal: [:, 0] shape latent, [:, 1] texture latent
    -> parsing      [B, 8, H, W]   completed parsing probabilities (input one-hot outside)
    -> image        [B, 3, H, W]   completed image (the input outside the erase region)

Inside the erase region the photo keeps every pixel that is neither the erased garment's
(in the photo, grown by :data:`GARMENT_GROW` pixels for anti-aliased edges) nor the completed
garment's (:func:`generated_region`): background, arms and other garments come back exactly.

Parser I/O (``PARSER_INPUTS`` / ``PARSER_OUTPUTS``, task "parsing"; :func:`parse_photo`): the
parsing map a completion needs, from the photo and its pose:

    photo           [B, 3, H, W]   the photo letterboxed into the model frame, RGB in [-1, 1]
    pose_heatmaps   [B, 18, H, W]  Gaussian heatmaps of the person's COCO-18 pose
    -> parsing      [B, 8, H, W]   class probabilities
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import numpy as np

from . import ops
from .framing import frame_person, full_frame

if TYPE_CHECKING:
    from .model import ModelContract

__all__ = [
    "PARSING_CLASSES",
    "GARMENTS",
    "GARMENT_CLASSES",
    "FACE_HAIR",
    "NUM_CLASSES",
    "CROP_CHANNELS",
    "COMPLETION_INPUTS",
    "COMPLETION_OUTPUTS",
    "DEFAULT_MARGIN",
    "DEFAULT_PAD",
    "Box",
    "Completion",
    "PARSER_INPUTS",
    "PARSER_OUTPUTS",
    "GARMENT_GROW",
    "generated_region",
    "parse_photo",
    "check_count",
    "check_mask",
    "check_parsing",
    "complete_photo",
    "garment_class",
    "garment_box",
    "region_box",
    "box_mask",
    "one_hot",
    "letterbox_labels",
    "garment_crops",
    "noise",
    "PARSING_PALETTE",
    "colorize_parsing",
]

PARSING_CLASSES: tuple[str, ...] = (
    "background", "face_hair", "upper_skin", "lower_skin", "hat", "top", "bottom", "shoes",
)
NUM_CLASSES = len(PARSING_CLASSES)
FACE_HAIR = 1
GARMENTS: tuple[str, ...] = ("hat", "top", "bottom", "shoes")
GARMENT_CLASSES: tuple[int, ...] = tuple(PARSING_CLASSES.index(g) for g in GARMENTS)  # (4, 5, 6, 7)
CROP_CHANNELS = 3 * len(GARMENTS)
COMPLETION_INPUTS: tuple[str, ...] = ("masked_image", "masked_parsing", "erase_mask", "pose_heatmaps",
                                      "garment_crops", "noise")
COMPLETION_OUTPUTS: tuple[str, ...] = ("parsing", "image")
PARSER_INPUTS: tuple[str, ...] = ("photo", "pose_heatmaps")
PARSER_OUTPUTS: tuple[str, ...] = ("parsing",)
GARMENT_GROW = 2      # pixels: the photo's garment edges are anti-aliased into their neighbours
DEFAULT_MARGIN = 0.1  # the box grows by 10 % of its height / width on each side
DEFAULT_PAD = 2       # ... plus 2 pixels, so anti-aliased garment edges are erased too
_NEUTRAL = 128        # uint8 value that becomes ~0 in [-1, 1]: "no garment" in a crop

# One fixed colour per parsing class, uint8 [8, 3] **BGR** (OpenCV order, like every image of
# the runtime), for pictures of parsing maps: black background, skin tones for skin, and
# saturated, mutually distinct colours for the garments.
PARSING_PALETTE: np.ndarray = np.array([
    (0, 0, 0),        # 0 background
    (0, 85, 255),     # 1 face + hair: orange
    (160, 200, 255),  # 2 upper-body skin: light skin
    (90, 120, 170),   # 3 lower-body skin: darker skin
    (0, 255, 255),    # 4 hat: yellow
    (60, 20, 220),    # 5 top: crimson
    (255, 90, 30),    # 6 bottom: blue
    (80, 170, 0),     # 7 shoes: green
], np.uint8)
PARSING_PALETTE.flags.writeable = False  # shared by every caller: read-only


@dataclass(frozen=True)
class Box:
    """Half-open pixel box [y0, y1) x [x0, x1) of an image (rows first, like numpy slicing)."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def empty(self) -> bool:
        return self.y1 <= self.y0 or self.x1 <= self.x0

    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def check_parsing(parsing: Any, size: Optional[tuple[int, int]] = None, name: str = "parsing") -> np.ndarray:
    """Validate a parsing map: integer [h, w] with classes 0..7 (:data:`PARSING_CLASSES`),
    of the given (h, w) when ``size`` is given. Returns it as uint8 (a copy only if needed)."""
    if not isinstance(parsing, np.ndarray):
        raise ValueError(f"{name} must be a numpy integer [h, w] class map, got {type(parsing).__name__}")
    if parsing.ndim == 3 and parsing.shape[2] == 1:
        parsing = parsing[:, :, 0]
    if parsing.ndim != 2:
        raise ValueError(f"{name} must be a [h, w] class map (classes 0..{NUM_CLASSES - 1}: "
                         f"{', '.join(PARSING_CLASSES)}), got shape {parsing.shape}")
    if not (np.issubdtype(parsing.dtype, np.integer) or parsing.dtype == np.bool_):
        raise ValueError(f"{name} must hold integer classes 0..{NUM_CLASSES - 1}, got dtype {parsing.dtype}")
    if size is not None and parsing.shape != tuple(size):
        raise ValueError(f"{name} is {parsing.shape[0]} x {parsing.shape[1]}; it must match the image, "
                         f"{size[0]} x {size[1]}")
    if parsing.size and (int(parsing.min()) < 0 or int(parsing.max()) >= NUM_CLASSES):
        raise ValueError(f"{name} holds classes {int(parsing.min())}..{int(parsing.max())}; expected "
                         f"0..{NUM_CLASSES - 1} ({', '.join(PARSING_CLASSES)})")
    return np.ascontiguousarray(parsing, dtype=np.uint8)


def garment_class(garment: Union[str, int]) -> int:
    """Parsing class of a garment name (or a garment class number); ValueError otherwise."""
    if isinstance(garment, (int, np.integer)) and not isinstance(garment, bool):
        if int(garment) in GARMENT_CLASSES:
            return int(garment)
    elif isinstance(garment, str) and garment in GARMENTS:
        return PARSING_CLASSES.index(garment)
    raise ValueError(f"garment must be one of {GARMENTS} (classes {GARMENT_CLASSES}), got {garment!r}")


def _bounds(rows: np.ndarray, cols: np.ndarray) -> Optional[Box]:
    if not rows.any():
        return None
    ys, xs = np.flatnonzero(rows), np.flatnonzero(cols)
    return Box(int(ys[0]), int(xs[0]), int(ys[-1]) + 1, int(xs[-1]) + 1)


def _grow(box: Box, height: int, width: int, margin: float, pad: int) -> Box:
    dy = int(round(margin * (box.y1 - box.y0))) + pad
    dx = int(round(margin * (box.x1 - box.x0))) + pad
    return Box(max(box.y0 - dy, 0), max(box.x0 - dx, 0), min(box.y1 + dy, height), min(box.x1 + dx, width))


def garment_box(parsing: np.ndarray, garment: Union[str, int], margin: float = DEFAULT_MARGIN,
                pad: int = DEFAULT_PAD) -> Box:
    """The erase region of ``garment`` in ``parsing`` (uint8 [h, w]): the bounding box of its
    pixels, enlarged by ``margin`` x its height / width and ``pad`` pixels on each side,
    clipped to the image. ValueError when the parsing has no pixel of that garment."""
    cls = garment_class(garment)
    if not (margin >= 0 and pad >= 0):
        raise ValueError(f"margin and pad must be >= 0, got {margin!r}, {pad!r}")
    hit = parsing == cls
    box = _bounds(hit.any(1), hit.any(0))
    if box is None:
        present = [PARSING_CLASSES[c] for c in GARMENT_CLASSES if (parsing == c).any()]
        raise ValueError(f"the parsing has no {PARSING_CLASSES[cls]!r} pixels (class {cls}) to erase; "
                         f"garments present: {present or 'none'}")
    return _grow(box, parsing.shape[0], parsing.shape[1], float(margin), int(pad))


def region_box(mask: Any, size: tuple[int, int]) -> Box:
    """Bounding box of a user erase mask (bool/integer [h, w], nonzero = erase) of ``size``.
    ValueError for a wrong shape or an empty mask."""
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        raise ValueError(f"mask must be a numpy [h, w] array (nonzero = erase), got "
                         f"{getattr(mask, 'shape', type(mask).__name__)}")
    if mask.shape != tuple(size):
        raise ValueError(f"mask is {mask.shape[0]} x {mask.shape[1]}; it must match the image, {size[0]} x {size[1]}")
    hit = mask != 0
    box = _bounds(hit.any(1), hit.any(0))
    if box is None:
        raise ValueError("mask is empty: mark the region to complete with nonzero pixels")
    return box


def box_mask(box: Box, height: int, width: int) -> np.ndarray:
    """uint8 [height, width]: 1 inside ``box``, else 0."""
    m = np.zeros((height, width), np.uint8)
    m[box.slices()] = 1
    return m


def one_hot(parsing: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    """uint8 [h, w] classes -> [8, h, w] one-hot of ``dtype``."""
    return (parsing[None] == np.arange(NUM_CLASSES, dtype=np.uint8)[:, None, None]).astype(dtype)


def letterbox_labels(labels: np.ndarray, box: "ops.Letterbox", unletterbox: bool = False) -> np.ndarray:
    """Nearest-neighbour resampling of a uint8 [h, w] label map (parsing or mask) through the
    photo's Letterbox: into the model frame [H, W] (bars = 0, background), or with
    ``unletterbox`` from the model frame back to the photo [h, w] -- the same pixel-centre map
    as keypoints (x_model = (x + 0.5) * scale_x - 0.5 + box_x)."""
    sx, sy = box.scale
    if not unletterbox:
        ys = np.floor((np.arange(box.height) - box.box_y + 0.5) / sy).astype(np.int64)
        xs = np.floor((np.arange(box.width) - box.box_x + 0.5) / sx).astype(np.int64)
        inside = (ys >= 0) & (ys < box.src_height)
        inside_x = (xs >= 0) & (xs < box.src_width)
        out = labels[np.clip(ys, 0, box.src_height - 1)][:, np.clip(xs, 0, box.src_width - 1)]
        out = np.where(inside[:, None] & inside_x[None, :], out, 0)
        return np.ascontiguousarray(out, dtype=np.uint8)
    ys = np.floor((np.arange(box.src_height) + 0.5) * sy + box.box_y).astype(np.int64)
    xs = np.floor((np.arange(box.src_width) + 0.5) * sx + box.box_x).astype(np.int64)
    ys = np.clip(ys, box.box_y, box.box_y + box.box_height - 1)
    xs = np.clip(xs, box.box_x, box.box_x + box.box_width - 1)
    return np.ascontiguousarray(labels[ys][:, xs], dtype=np.uint8)


def garment_crops(image_rgb: np.ndarray, parsing: np.ndarray, size: int,
                  exclude: Optional[int] = None) -> np.ndarray:
    """The compatibility encoders' input: float32 [12, size, size] RGB in [-1, 1].

    image_rgb: uint8 [h, w, 3] **RGB**; parsing: uint8 [h, w]. For each garment of
    :data:`GARMENTS` in order: its pixels (other pixels neutral grey), cropped to its
    bounding box, padded to a square and resized to size x size. Channels of ``exclude`` (the
    erased garment's class) and of absent garments are 0.
    """
    out = np.zeros((CROP_CHANNELS, size, size), np.float32)
    for g, cls in enumerate(GARMENT_CLASSES):
        if cls == exclude:
            continue
        hit = parsing == cls
        box = _bounds(hit.any(1), hit.any(0))
        if box is None:
            continue
        crop = np.where(hit[box.slices()][:, :, None], image_rgb[box.slices()], np.uint8(_NEUTRAL))
        chw, _ = ops.to_model_input(np.ascontiguousarray(crop), size, size, bgr=False,
                                    pad_value=_NEUTRAL / 127.5 - 1.0)
        out[3 * g:3 * g + 3] = chw
    return out


def noise(seed: int, samples: int, latent: int) -> np.ndarray:
    """float32 [samples, 2, latent] standard normal from ``seed`` (numpy PCG64): sample k of
    seed s is the same on every machine and backend."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng(int(seed)).standard_normal((samples, 2, latent)).astype(np.float32)


def _grow_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """bool [h, w] dilated by a (2 pixels + 1) square."""
    if pixels <= 0:
        return mask
    h, w = mask.shape
    pad = np.pad(mask, pixels)
    out = np.zeros_like(mask)
    for dy in range(2 * pixels + 1):
        for dx in range(2 * pixels + 1):
            out |= pad[dy:dy + h, dx:dx + w]
    return out


def generated_region(region: np.ndarray, completed: np.ndarray, labels: np.ndarray, cls: int,
                     grow: int = GARMENT_GROW) -> np.ndarray:
    """bool [h, w]: the pixels of the erase region whose completed value is kept -- where the
    completion put the garment (``completed == cls``) or where the photo had it (``labels ==
    cls``, grown by ``grow`` pixels). Every other pixel of the region (background, skin, other
    garments) is the photo's own.

    region: bool/uint8 [h, w] erase region; completed, labels: uint8 [h, w] class maps (the
    completed parsing and the photo's); cls: the erased garment's class."""
    inside = region.astype(bool)
    return inside & ((completed == cls) | _grow_mask(labels == cls, grow))


def colorize_parsing(parsing: np.ndarray) -> np.ndarray:
    """uint8 [h, w] classes 0..7 -> uint8 [h, w, 3] BGR picture with :data:`PARSING_PALETTE`."""
    return PARSING_PALETTE[check_parsing(parsing)]


# ------------------------------------------------------------------ Engine.complete's run
@dataclass(frozen=True)
class Completion:
    """What :meth:`Engine.complete` returns: ``samples`` completions of one photo, in sample
    order (sample k of a seed is the same whatever ``samples`` is).

    Attributes:
        images: list of uint8 [h, w, 3] BGR, the photo with its erase region completed; every
            pixel outside ``region`` is exactly the input photo's, and so is every pixel inside
            it that neither the photo nor the completion gives to the garment
            (:func:`generated_region`; with a mask and no garment the whole region is
            generated). With
            ``output_size="model"``: uint8 [H, W, 3] BGR in the model frame (letterbox bars
            included), as the network made it (no compositing).
        parsings: list of uint8 [h, w] class maps (classes 0..7 of
            :data:`PARSING_CLASSES`): the completed parsing, equal to the
            input parsing outside ``region``; [H, W] model frame for ``output_size="model"``.
        region: uint8 [h, w] (or [H, W] for "model"), 1 where the photo was erased, else 0.
        seed: the seed of the noise (sample k used row k of ``noise(seed, ...)``).
        garment: name of the erased garment ("hat", "top", "bottom", "shoes"), or None when
            a mask was given without one.
    """

    images: list
    parsings: list
    region: np.ndarray
    seed: int
    garment: Optional[str]


def check_count(value: Any, name: str) -> int:
    """An integer >= 1 (not a bool), or ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_mask(mask: Any, size: tuple[int, int]) -> np.ndarray:
    """A user erase mask: bool or integer [h, w] of the photo's size, nonzero = erase, not
    empty. Returns uint8 [h, w] 0/1."""
    if isinstance(mask, np.ndarray) and mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if isinstance(mask, np.ndarray) and not (mask.dtype == np.bool_ or np.issubdtype(mask.dtype, np.integer)):
        raise ValueError(f"mask must be uint8 or bool [h, w] (nonzero = erase), got dtype {mask.dtype}")
    region_box(mask, size)  # shape and emptiness, with their messages
    return (mask != 0).astype(np.uint8)


def model_box(box: Box, lb: ops.Letterbox) -> Box:
    """A photo box -> the model-frame box covering it. Pixel edges map as e * scale + box
    offset (Letterbox.to_model's pixel-centre map, on edges); the start is floored and the end
    ceiled so every model pixel the photo box touches is erased; clipped to the letterbox's
    content box and never empty (a thin box still erases one model pixel)."""
    sx, sy = lb.scale
    y_lo, y_hi = lb.box_y, lb.box_y + lb.box_height
    x_lo, x_hi = lb.box_x, lb.box_x + lb.box_width
    y0 = min(max(int(np.floor(box.y0 * sy + lb.box_y)), y_lo), y_hi - 1)
    x0 = min(max(int(np.floor(box.x0 * sx + lb.box_x)), x_lo), x_hi - 1)
    y1 = min(max(int(np.ceil(box.y1 * sy + lb.box_y)), y0 + 1), y_hi)
    x1 = min(max(int(np.ceil(box.x1 * sx + lb.box_x)), x0 + 1), x_hi)
    return Box(y0, x0, y1, x1)


def complete_photo(run_network: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], spec: "ModelContract",
                   max_batch: int, image: np.ndarray, labels: np.ndarray, keypoints: np.ndarray, cls: Optional[int],
                   mask: Optional[np.ndarray], noise_rows: np.ndarray, seed: int, unletterbox: bool,
                   use_frame: bool) -> Completion:
    """:meth:`pyposert.engine.Engine.complete` once its arguments are checked: the erase
    region, framing, the model-frame inputs, ``len(noise)`` samples in network calls of at
    most ``max_batch``, and the results composited back into the photo.

    image: uint8 [h, w, 3] BGR; labels: uint8 [h, w] classes; keypoints: float32 (18, 2) (x,
    y) photo pixels, missing -1; cls: the garment class to erase (None: ``mask`` only);
    mask: [h, w] nonzero = erase (None: the garment's box); noise_rows: float32 [samples, 2,
    Z], row k for sample k (:func:`noise`).
    """
    h, w = int(image.shape[0]), int(image.shape[1])
    comp = spec.completion
    assert comp is not None
    if mask is None:
        box = garment_box(labels, cls, comp.margin, comp.pad)
        region = box_mask(box, h, w)
    else:
        region = check_mask(mask, (h, w))
        box = region_box(region, (h, w))
    # Garment crops come from the whole photo (full resolution, whatever the framing).
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    crops = garment_crops(rgb, labels, comp.crop_size, exclude=cls)

    # Framing: the network sees a crop around the person that holds the erase region; the
    # results are put back below (outside the region every pixel stays the photo's).
    frame = (frame_person(keypoints, (h, w), (spec.height, spec.width),
                          include=(box.x0, box.y0, box.x1 - 1, box.y1 - 1))
             if use_frame else full_frame((h, w)))
    photo, photo_labels, photo_region = image, labels, region
    if not frame.is_whole:
        image = np.ascontiguousarray(frame.cut(image))
        labels = np.ascontiguousarray(frame.cut(labels))
        region = np.zeros((frame.height, frame.width), np.uint8)  # nothing is erased in the padding
        rows, cols, crows, ccols = frame.inside
        region[crows, ccols] = photo_region[rows, cols]
        keypoints = frame.to_crop(keypoints)
        box = Box(box.y0 - frame.y0, box.x0 - frame.x0, box.y1 - frame.y0, box.x1 - frame.x0)
        h, w = frame.height, frame.width

    # Model-frame inputs (one photo; repeated over the batch below).
    height, width = spec.height, spec.width
    lb = ops.letterbox(h, w, height, width)
    erase = np.zeros((height, width), np.uint8)
    model_region = None if mask is None else letterbox_labels(region, lb)
    if model_region is None or not model_region.any():  # a box, or a mask too thin to survive resampling
        erase[model_box(box, lb).slices()] = 1
    else:
        erase = model_region
    keep = (1 - erase).astype(np.float32)
    model_image, _ = ops.to_model_input(image, height, width)
    onehot = one_hot(letterbox_labels(labels, lb))
    kp = lb.to_model(keypoints).astype(np.float32, copy=False)
    maps = ops.heatmaps(kp[None], height, width, mode=spec.heatmap.mode, sigma=spec.heatmap.sigma,
                        radius=spec.heatmap.radius)
    one = {"masked_image": model_image * keep, "masked_parsing": onehot * keep,
           "erase_mask": erase.astype(np.float32)[None], "pose_heatmaps": maps[0], "garment_crops": crops}

    images: list[np.ndarray] = []
    parsings: list[np.ndarray] = []
    inside = region.astype(bool)
    for start in range(0, len(noise_rows), max_batch):
        rows = noise_rows[start:start + max_batch]
        n = len(rows)
        feeds = {name: np.ascontiguousarray(np.repeat(value[None], n, axis=0), dtype=spec.dtype(name))
                 for name, value in one.items()}
        feeds["noise"] = np.ascontiguousarray(rows, dtype=spec.dtype("noise"))
        out = run_network(feeds)  # this thread's buffers: consumed before the next run
        for b in range(n):
            picture = ops.from_model_output(np.ascontiguousarray(out["image"][b]), lb,
                                            unletterbox=unletterbox)
            classes = np.ascontiguousarray(out["parsing"][b].argmax(axis=0).astype(np.uint8))
            if unletterbox:
                classes = np.where(inside, letterbox_labels(classes, lb, unletterbox=True), labels)
                kept = inside if cls is None else generated_region(inside, classes, labels, cls)
                np.copyto(picture, image, where=~kept[:, :, None])  # elsewhere: the photo, exactly
                classes = np.where(kept, classes, labels)
                if not frame.is_whole:  # the crop's result back into the photo
                    rows, cols, crows, ccols = frame.inside
                    full, full_classes = photo.copy(), photo_labels.copy()
                    full[rows, cols] = picture[crows, ccols]
                    full_classes[rows, cols] = classes[crows, ccols]
                    picture, classes = full, full_classes
            images.append(picture)
            parsings.append(np.ascontiguousarray(classes, dtype=np.uint8))
    name = None if cls is None else PARSING_CLASSES[cls]
    return Completion(images, parsings, photo_region if unletterbox else erase.astype(np.uint8), seed, name)


# ------------------------------------------------------------------ the parser's run
def parse_photo(run_network: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], spec: "ModelContract",
                image: np.ndarray, keypoints: np.ndarray, use_frame: bool = True) -> np.ndarray:
    """The 8-class parsing map of a photo from a parser network (task "parsing").

    image: uint8 [h, w, 3] BGR; keypoints: float32 (18, 2) (x, y) photo pixels, missing -1.
    The network sees the person framed as a completion frames it (:func:`frame_person`) and
    letterboxed into H x W; its class probabilities are resized (bilinear) back to the frame's
    pixels and the most likely class taken. Pixels outside the frame are background.
    Returns uint8 [h, w], classes of :data:`PARSING_CLASSES`.
    """
    import cv2

    h, w = int(image.shape[0]), int(image.shape[1])
    height, width = spec.height, spec.width
    frame = frame_person(keypoints, (h, w), (height, width)) if use_frame else full_frame((h, w))
    crop = np.ascontiguousarray(frame.cut(image)) if not frame.is_whole else image
    kp = keypoints if frame.is_whole else frame.to_crop(keypoints)
    photo, lb = ops.to_model_input(crop, height, width)
    kp_model = lb.to_model(kp).astype(np.float32, copy=False)
    maps = ops.heatmaps(kp_model[None], height, width, mode=spec.heatmap.mode, sigma=spec.heatmap.sigma,
                        radius=spec.heatmap.radius)
    feeds = {"photo": np.ascontiguousarray(photo[None], dtype=spec.dtype("photo")),
             "pose_heatmaps": np.ascontiguousarray(maps, dtype=spec.dtype("pose_heatmaps"))}
    probs = np.asarray(run_network(feeds)["parsing"][0], np.float32)  # [8, H, W]
    box = probs[:, lb.box_y:lb.box_y + lb.box_height, lb.box_x:lb.box_x + lb.box_width]
    ch, cw = int(crop.shape[0]), int(crop.shape[1])
    up = np.stack([cv2.resize(np.ascontiguousarray(c), (cw, ch), interpolation=cv2.INTER_LINEAR) for c in box])
    labels = up.argmax(0).astype(np.uint8)
    if frame.is_whole:
        return labels
    full = np.zeros((h, w), np.uint8)
    rows, cols, crows, ccols = frame.inside
    full[rows, cols] = labels[crows, ccols]
    return full
