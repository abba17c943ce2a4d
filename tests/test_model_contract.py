"""pyposert.model: the contract a network's tensors name, and an optional input (the warp)
produced where feeds are made, with no backend knowing it."""

from __future__ import annotations

import numpy as np
import pytest

from pyposert import Engine, PlanError, ops
from pyposert.model import WARP_INPUTS, TensorSpec, contract_kind, contract_outputs
from pyposert.poses import STANDING_POSE
from stub_models import warp_stub_onnx

H, W = 48, 32


def _specs(*names: str) -> list[TensorSpec]:
    return [TensorSpec(n, (None,)) for n in names]


def test_contract_kind_by_input_names():
    image = _specs("image")
    assert contract_kind(_specs("source_image", "pose_heatmaps"), image, "m") == "heatmaps"
    assert contract_kind(_specs("source_image", "source_keypoints", "target_keypoints"), image, "m") == "keypoints"
    assert contract_kind(_specs("source_image", "source_keypoints", "target_keypoints", *WARP_INPUTS), image,
                         "m") == "keypoints"
    with pytest.raises(PlanError, match="inputs must be"):  # the warp inputs come together
        contract_kind(_specs("source_image", "source_keypoints", "target_keypoints", "warped_source"), image, "m")
    with pytest.raises(PlanError, match="inputs must be"):
        contract_kind(_specs("source", "pose"), image, "m")


def test_contract_outputs_of_a_program_that_does_not_state_them():
    inputs = {n: TensorSpec(n, (None, 3, H, W)) for n in ("source_image", "pose_heatmaps")}
    assert contract_outputs("heatmaps", inputs) == {"image": TensorSpec("image", (None, 3, H, W))}


def test_engine_feeds_the_warp_of_the_source_onto_the_target(tmp_path, rng):
    path = warp_stub_onnx(tmp_path / "warp.onnx", H, W)
    engine = Engine(path, backend="onnxruntime", threads=1, framing=False)
    assert engine.spec.contract == "keypoints" and all(engine.spec.has(n) for n in WARP_INPUTS)
    photo = rng.integers(0, 256, (64, 40, 3), dtype=np.uint8)
    source_pose = STANDING_POSE.astype(np.float32) * (40 / 176)
    target_pose = source_pose + np.float32([3.0, -2.0])
    got = engine.source(photo, source_pose).run(target_pose, output_size="model")

    model_input, box = ops.to_model_input(photo, H, W)
    src = box.to_model(source_pose).astype(np.float32)[None]
    tgt = box.to_model(target_pose).astype(np.float32)[None]
    warped, coverage = ops.warp(model_input[None], src, tgt, H, W)
    want = ops.from_model_output(np.ascontiguousarray((warped * coverage)[0]), box, unletterbox=False)
    assert coverage.max() > 0.5  # the skeletons overlap the frame: something was warped
    assert np.array_equal(got, want)

    # A batch feeds each frame its own warp: the same frames as one call each.
    src = engine.source(photo, source_pose)
    poses = [target_pose, target_pose + np.float32([-4.0, 1.0]), source_pose]
    batch = src.run_batch(poses, output_size="model")
    assert all(np.array_equal(b, src.run(p, output_size="model")) for b, p in zip(batch, poses))
    assert not np.array_equal(batch[0], batch[1])
