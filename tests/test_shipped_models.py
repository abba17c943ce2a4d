"""The shipped bundles (models/*.plan) against their model card.

models/quality.json records what each bundle scored on the frozen held-out set
(models/heldout-rt.npz: 48 synthetic pairs, identities and real poses never trained on) when
it was built (``python -m training.shipped_quality score ... --write models/quality.json``;
MODEL_CARD.md quotes the same numbers). Here each bundle is scored again through the product
path (pyposert.Engine, ONNX Runtime, uint8 BGR in and out) and must stay above those numbers
minus a small margin (ONNX Runtime's kernels differ slightly between CPUs), and above the
copy-the-source baseline on the same pairs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from training.shipped_quality import load_heldout_set, score_bundle

MODELS = Path(__file__).resolve().parents[1] / "models"
QUALITY = MODELS / "quality.json"
MAX_BUNDLE_BYTES = 25 * 1024 * 1024
SSIM_MARGIN = 0.01
CHECKER_MARGIN = 0.5  # grey levels
PSNR_MARGIN_DB = 0.3


def _quality() -> dict[str, Any]:
    return json.loads(QUALITY.read_text(encoding="utf-8"))


def test_the_default_model_ships_with_its_card() -> None:
    q = _quality()
    assert "nram" in q["models"], "models/nram.plan (the demo's default) must be recorded in quality.json"
    assert (MODELS / "MODEL_CARD.md").is_file()
    for name, row in q["models"].items():
        bundle = MODELS / f"{name}.plan"
        assert bundle.is_file(), f"{bundle} is listed in quality.json but missing"
        assert bundle.stat().st_size <= MAX_BUNDLE_BYTES, f"{bundle}: {bundle.stat().st_size} bytes > 25 MB"


@pytest.mark.parametrize("name", sorted(_quality()["models"]) if QUALITY.is_file() else [])
def test_shipped_quality_holds(name: str) -> None:
    q = _quality()
    heldout = load_heldout_set(MODELS / Path(q["set"]).name)
    assert len(heldout["source_image"]) == q["pairs"]
    got = score_bundle(MODELS / f"{name}.plan", heldout)
    ref = q["models"][name]
    for metric in ("ssim", "mask_ssim"):
        assert got[metric] >= ref[metric] - SSIM_MARGIN, (metric, got[metric], ref[metric])
    assert got["psnr"] >= ref["psnr"] - PSNR_MARGIN_DB, (got["psnr"], ref["psnr"])
    # A pose-transfer model must do better than handing back the photo.
    copy = q["copy_source"]
    assert got["ssim"] > copy["ssim"] and got["psnr"] > copy["psnr"], (got, copy)


COMPLETION_QUALITY = MODELS / "quality-completion.json"


@pytest.mark.skipif(not COMPLETION_QUALITY.is_file(), reason="no completion model shipped (models/quality-completion.json)")
def test_shipped_completion_quality_holds() -> None:
    """models/completion.plan on the frozen completion inputs (models/heldout-completion.npz)
    through Engine.complete: at its recorded scores (minus the same margin), better than
    filling the region with the mean colour on structure (SSIM) and on the parsing (accuracy,
    garment IoU), and diverse (different seeds, different pixels). Not on L1: the synthetic
    garments' colours are drawn independently, so a sampled colour is plausible, not the
    truth's (training/evaluate_completion.py)."""
    pytest.importorskip("torch", reason="the completion scores come from the training package, which needs torch")
    from training.shipped_quality import score_completion

    q = json.loads(COMPLETION_QUALITY.read_text(encoding="utf-8"))
    heldout = load_heldout_set(MODELS / Path(q["set"]).name)
    assert len(heldout["image"]) == q["inputs"]
    ((name, ref),) = q["models"].items()
    bundle = MODELS / f"{name}.plan"
    assert bundle.stat().st_size <= MAX_BUNDLE_BYTES
    got = score_completion(bundle, heldout)
    for metric in ("ssim", "parsing_acc", "garment_iou"):
        assert got[metric] >= ref[metric] - SSIM_MARGIN, (metric, got, ref)
        assert got[metric] > q["mean_fill"][metric], (metric, got, q["mean_fill"])
    assert got["l1"] <= ref["l1"] + SSIM_MARGIN, (got, ref)
    assert got["diversity"] > 0.0
    # No grid artefact: the painted pixels repeat the 8 x 8 up-sampling grid no more than the
    # truth's own pixels do (training/evaluate_completion.checkerboard, grey levels).
    assert got["checker"] <= max(ref["checker"], got["checker_truth"]) + CHECKER_MARGIN, (got, ref)


PACKAGE_DATA = Path(__file__).resolve().parents[1] / "pyposert" / "data"


def test_packaged_default_model_keeps_the_full_models_quality() -> None:
    """pyposert/data/nram.plan -- what `pip install` ships, weights stored in fp16 -- scores
    what models/nram.plan scored on the same held-out pairs: the rounding of the weights costs
    nothing measurable (closer than the CPU-to-CPU margin above)."""
    q = _quality()
    heldout = load_heldout_set(MODELS / Path(q["set"]).name)
    got = score_bundle(PACKAGE_DATA / "nram.plan", heldout)
    ref = q["models"]["nram"]
    for metric in ("ssim", "mask_ssim"):
        assert abs(got[metric] - ref[metric]) <= 0.003, (metric, got[metric], ref[metric])
    assert abs(got["psnr"] - ref["psnr"]) <= 0.1, (got["psnr"], ref["psnr"])


@pytest.mark.skipif(not COMPLETION_QUALITY.is_file(), reason="no completion model shipped (models/quality-completion.json)")
def test_packaged_completion_model_keeps_its_quality() -> None:
    pytest.importorskip("torch", reason="the completion scores come from the training package, which needs torch")
    from training.shipped_quality import score_completion

    q = json.loads(COMPLETION_QUALITY.read_text(encoding="utf-8"))
    heldout = load_heldout_set(MODELS / Path(q["set"]).name)
    ((_, ref),) = q["models"].items()
    got = score_completion(PACKAGE_DATA / "completion.plan", heldout)
    for metric in ("ssim", "parsing_acc", "garment_iou"):
        assert got[metric] >= ref[metric] - SSIM_MARGIN, (metric, got, ref)
        assert got[metric] > q["mean_fill"][metric], (metric, got, q["mean_fill"])


REAL_QUALITY = MODELS / "quality-real.json"


@pytest.mark.skipif(not REAL_QUALITY.is_file(), reason="no real-photo scores recorded (models/quality-real.json)")
def test_default_model_on_real_photos_holds() -> None:
    """models/nram.plan on the real photos' mirror pairs (training.evaluate_real): at its
    recorded scores (minus the CPU-to-CPU margin), ahead of copying the photo on SSIM and L1,
    and keeping the person's colours (body-box dE76 <= 5)."""
    pytest.importorskip("torch", reason="the real-photo scores come from the training package, which needs torch")
    from training.evaluate_real import DEFAULT_REAL
    from training.shipped_quality import score_real

    if not (DEFAULT_REAL / "photos").is_dir():
        pytest.skip(f"the real photos are not at {DEFAULT_REAL}")
    q = json.loads(REAL_QUALITY.read_text(encoding="utf-8"))
    got = score_real([MODELS / "nram.plan"], frames=q["frames"])
    assert got["pairs"] == q["pairs"]
    new, ref, copy = got["methods"]["nram"], q["methods"]["nram"], got["methods"]["copy"]
    for metric in ("ssim", "ssim_body"):
        assert new[metric] >= ref[metric] - SSIM_MARGIN, (metric, new, ref)
    assert new["l1"] <= ref["l1"] + SSIM_MARGIN, (new, ref)
    assert new["ssim"] > copy["ssim"] and new["l1"] < copy["l1"] and new["dE"] <= 5.0, (new, copy)


DEMO = Path(__file__).resolve().parents[1] / "pyposert" / "data" / "demo"


@pytest.mark.parametrize("bundle", [MODELS / "parser.plan", PACKAGE_DATA / "parser.plan"], ids=["full", "packaged"])
def test_shipped_parser_parses_the_demo_person(bundle: Path) -> None:
    """The parser on the demo person (a held-out synthetic person whose exact parsing ships
    with it): far better than calling everything background, and each class of the outfit
    found (IoU; shoes are the parser's weak class, models/MODEL_CARD.md)."""
    import cv2
    import numpy as np

    from pyposert import Engine

    truth = cv2.imread(str(DEMO / "person_parsing.png"), cv2.IMREAD_UNCHANGED)
    photo = cv2.imread(str(DEMO / "person.png"), cv2.IMREAD_COLOR)
    with Engine(bundle, backend="onnxruntime", threads=1) as parser:
        assert parser.task == "parsing"
        labels = parser.parse(photo, str(DEMO / "person_pose.json"))
    accuracy = float((labels == truth).mean())
    assert accuracy >= 0.95 and accuracy > float((truth == 0).mean()) + 0.15, accuracy

    def iou(c: int) -> float:
        return float(((labels == c) & (truth == c)).sum() / max(((labels == c) | (truth == c)).sum(), 1))

    for name, cls, least in (("face_hair", 1, 0.8), ("top", 5, 0.75), ("bottom", 6, 0.7), ("shoes", 7, 0.1)):
        assert iou(cls) >= least, (name, iou(cls))
