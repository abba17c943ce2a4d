"""Reading the user's image files with one clear error each, and nothing printed.

``cv2.imread`` answers a missing or unreadable file with ``None`` after logging
``[ WARN:0@0.007] global loadsave.cpp ... findDecoder imread_(...)`` to the terminal; here
the bytes are read by Python (so a missing file is "no such file" and a folder or a
permission problem says so) and decoded from memory, which logs nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np

__all__ = ["read_image"]


def read_image(path: Union[str, os.PathLike], what: str = "image", *, flags: int | None = None) -> np.ndarray:
    """The image at ``path`` as OpenCV decodes it (default: uint8 [h, w, 3] BGR).

    ``what`` names the file in messages ("--source photo"). Raises FileNotFoundError ("no such
    file"), IsADirectoryError, PermissionError, ValueError (not an image OpenCV can decode).
    """
    import cv2

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} not found: {p} (no such file)")
    if p.is_dir():
        raise IsADirectoryError(f"{what} {p} is a folder, not an image file")
    try:
        data = np.fromfile(str(p), dtype=np.uint8)
    except PermissionError:
        raise PermissionError(f"{what} {p} cannot be read (permission denied)") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR if flags is None else flags) if data.size else None
    if image is None:
        raise ValueError(f"{what} {p} is not an image OpenCV can read (PNG, JPEG, BMP, TIFF, WebP, ...)")
    return image
