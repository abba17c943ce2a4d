"""The human parser: network shapes, a short training run with its checkpoint, held-out
scoring, and export -> ``Engine.parse`` against torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pyposert import Engine
from pyposert import completion as C
from training.models.parser import ParserConfig, ParserGraph, ParserNet


def test_parser_shapes_and_resize_upsampling() -> None:
    cfg = ParserConfig()
    net = ParserNet(cfg).eval()
    photo, heat = torch.zeros(2, 3, cfg.height, cfg.width), torch.zeros(2, 18, cfg.height, cfg.width)
    assert net(photo, heat).shape == (2, C.NUM_CLASSES, cfg.height, cfg.width)
    probs = ParserGraph(net)(photo, heat)
    torch.testing.assert_close(probs.sum(1), torch.ones(2, cfg.height, cfg.width))
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())
    with pytest.raises(ValueError, match="divisible by 2\\*\\*levels = 8"):
        ParserConfig(height=100)
    assert ParserConfig.from_dict(cfg.to_dict()) == cfg


def test_train_export_and_parse(tmp_path: Path) -> None:
    from export.parser_export import export_parser_bundle, parser_inputs
    from training.train_parser import load_parser, main

    torch.set_num_threads(1)
    run = tmp_path / "parser"
    assert main(["--out", str(run), "--steps", "3", "--batch-size", "2", "--count", "2", "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 3 and 0.0 <= summary["eval"]["pixel_acc"] <= 1.0
    assert set(summary["eval"]["class_iou"]) == set(C.PARSING_CLASSES)
    net, side = load_parser(run)
    assert side["step"] == 3
    # resume continues the same run
    assert main(["--out", str(run), "--steps", "4", "--batch-size", "2", "--count", "2", "--no-progress"]) == 0
    assert load_parser(run)[1]["step"] == 4
    net, _ = load_parser(run)

    res = export_parser_bundle(run, tmp_path / "parser.plan")
    assert res["max_abs_error"] <= 1e-4
    x = parser_inputs(net.config, 1, start=3)
    with torch.no_grad():
        want = net(x["photo"], x["pose_heatmaps"])[0].argmax(0).numpy()
    photo = np.clip(np.floor((x["photo"][0].numpy().transpose(1, 2, 0) + 1.0) * 127.5 + 0.5), 0, 255).astype(np.uint8)
    from training.data.completion import CompletionSamples

    person = CompletionSamples(net.config.height, net.config.width, 64, "eval", 0, "plain").render(3)[0]
    with Engine(tmp_path / "parser.plan", backend="onnxruntime", threads=1) as parser:
        assert parser.task == "parsing" and parser.size == (net.config.height, net.config.width)
        got = parser.parse(np.ascontiguousarray(photo[:, :, ::-1]), person.keypoints, framing=False)
    assert got.shape == want.shape and got.dtype == np.uint8
    assert (got == want).mean() > 0.995  # same network, same frame: argmax ties aside, the same labels
