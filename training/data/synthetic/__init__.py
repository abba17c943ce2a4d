"""Procedural clothed people posed with real keypoints: an endless, labelled source of
pose-transfer training pairs (same person = same :class:`Identity`, two poses).

Conventions (say them everywhere):
- Keypoints: COCO-18 order (see :mod:`training.data.poses`), float32 ``[18, 2]`` **(x, y)** in
  pixels of the image they belong to (pixel centres at integer coordinates), missing = -1.
- Images: numpy uint8 ``[H, W, 3]`` **RGB** (this module never produces BGR).
- Masks: uint8 ``[H, W]`` with values {0, 1}; parsing maps uint8 ``[H, W]`` with the 8 classes
  of :data:`PARSING_CLASSES`.

How a person is drawn: every body part (and garment piece) is a polygon built from the
(completed) joints: limbs are tapered tubes between joints, the torso a profile swept along the
neck -> mid-hip axis, the head an ellipse in its own frame. Patterned garments are periodic
fabric tiles mapped into each part's own frame (u along the part, v across it, in body units =
torso lengths), so stripes and prints move and bend with the limb. The view comes from the pose:
the shoulders' left/right order gives the body's yaw (front: the person's right shoulder on the
image's left), annotated eyes / nose mean the face is visible; back views get no face and no
chest print, and parts are drawn far to near (arms behind the torso from the back, the far arm
and leg first in turned views). Drawing happens on a 2x supersampled canvas whose 4th channel
carries the parsing label of every pixel drawn, then is box-filtered down (anti-aliasing), so
labels, silhouette and pixels come from the same rasterisation.

What a pair teaches (issue 13: warp-guided generators must carry the source photo's texture
to the new pose and keep its background):
- **Static camera.** Source and target share one scene (studio backdrop or street / indoor
  scene, same crop and mirroring) and one light; only the person moves. Outside both people
  the two images are identical, pixel for pixel. No pair gets a different framing: the
  product's contract is "keep the source photo's background", so there is nothing to teach
  by changing it. The person's own placement (scale, shift, mirroring of the real pose) stays
  per image, because the runtime feeds driving poses at the driving video's scale.
- **Texture worth carrying.** Garments are solid, striped, checked, dotted, gradient, heather,
  motif, floral, all-over print (confetti, camouflage, animal spots) or monogram fabrics in the
  part's own frame, with chest prints that include real text and badges (clipped to the top);
  hair has strands or curls (styles :data:`HAIR_STYLES`), faces vary in eyes, brows, mouth,
  beards, glasses and blush. A flat colour per garment misses by ~14 grey levels (median L1,
  tests/training/test_synthetic.py), twice the pre-issue-13 renderer.
- **Shading.** One :class:`Light` per pair shades every part as a rounded solid (Lambert, see
  :func:`_shade`): the shading follows the body, the texture follows the cloth.
- **Scenes.** 'plain' is the light studio; 'cluttered' walls and grounds are flat, brick, wood,
  foliage, tiles, plaster or wallpaper (:mod:`training.data.synthetic.textures`) with windows, signs,
  poles and passers-by.
- **Labels.** Textures, prints, shading and scenes never change the 8-class parsing: it comes
  from the geometry alone (what :mod:`training.data.completion` learns from).

Modules: :mod:`.constants`, :mod:`.colours`, :mod:`.fabrics` (and :mod:`.textures`, the scene
surfaces), :mod:`.identity`, :mod:`.body` (pose completion), :mod:`.geometry`, :mod:`.painter`,
:mod:`.person`, :mod:`.backgrounds`, :mod:`.rendering`, :mod:`.pairs`, :mod:`.cli`.

Entry points: :func:`sample_identity`, :func:`render`, :class:`SyntheticPairs`;
``python -m training.data.synthetic --bench`` (pairs/s on one core) / ``--grid out.png``.
``training/data/synthetic_before_after.png`` shows eval pairs 0-7 before and after issue 13.
"""

from .backgrounds import GROUNDS, WALLS, _plain_background
from .body import Body, complete_pose
from .constants import (BG, BOTTOM, FACE_HAIR, HAT, LOWER_SKIN, PARSING_CLASSES, RGB, SHOES, SS, TOP,
                        UPPER_SKIN)
from .fabrics import BOTTOM_PATTERNS, TOP_PATTERNS, Fabric, make_fabric
from .identity import BEARDS, HAIR_STYLES, TOP_KINDS, Bottom, Identity, Top, sample_identity
from .painter import _Painter
from .pairs import SyntheticPairs, identity_seed
from .person import _build_person, _Scene
from .rendering import DEFAULT_LIGHT, Light, Rendering, _render_on, render, sample_light

__all__ = [
    "BEARDS", "BG", "BOTTOM", "BOTTOM_PATTERNS", "Body", "Bottom", "DEFAULT_LIGHT", "FACE_HAIR", "Fabric",
    "GROUNDS", "HAIR_STYLES", "HAT", "Identity", "LOWER_SKIN", "Light", "PARSING_CLASSES", "RGB", "Rendering",
    "SHOES", "SS", "SyntheticPairs", "TOP", "TOP_KINDS", "TOP_PATTERNS", "Top", "UPPER_SKIN", "WALLS",
    "complete_pose", "identity_seed", "make_fabric", "render", "sample_identity", "sample_light",
]
