"""Train the human parser (:mod:`training.models.parser`) on the synthetic renderer's exact
parsings, and score it on held-out synthetic people.

    python -m training.train_parser --out runs/parser [--steps 1500] [--batch-size 16] [--threads 1]
    python -m training.train_parser --out runs/parser --evaluate-only [--count 200]

Data: :class:`training.data.completion.CompletionSamples` renderings (identities and real poses
of the 'train' split, studio and street backgrounds 50 / 50), with photometric augmentation
(brightness, contrast, saturation, blur, noise) so that the parser leans on shape and pose more
than on the renderer's flat colours. Loss: cross-entropy over the 8 classes. Scores on the
'eval' split (held-out identities and poses): pixel accuracy, mean IoU over the classes present,
per-class IoU, against the all-background baseline.

Checkpoint folder: ``model.safetensors``, ``optimizer.pt``, ``checkpoint.json`` (last).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from pyposert.completion import NUM_CLASSES, PARSING_CLASSES
from training import ops as T
from training.checkpoint import cpu_tensors, load_weights, read_sidecar, write_run
from training.data.completion import CompletionSamples
from training.models.parser import ParserConfig, ParserNet

__all__ = ["CHECKPOINT_FORMAT", "augment", "parser_batch", "evaluate_parser", "load_parser", "train_parser", "main"]

CHECKPOINT_FORMAT = "pyposert-parser-checkpoint"
CHECKPOINT_VERSION = 1


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Photometric jitter of a uint8 [H, W, 3] RGB image (labels unchanged): brightness,
    contrast and saturation, a Gaussian blur half the time, and sensor noise."""
    import cv2

    x = image.astype(np.float32)
    grey = x.mean(2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.6, 1.3)                     # saturation
    x = (x - x.mean()) * rng.uniform(0.7, 1.3) + x.mean() + rng.uniform(-25, 25)  # contrast, brightness
    if rng.random() < 0.5:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.4, 1.2))
    x = x + rng.normal(0.0, rng.uniform(0.0, 6.0), x.shape)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


class _Renderings(IterableDataset):
    """Endless (photo RGB uint8, parsing, keypoints) of the train split, batch k from (seed, k)."""

    def __init__(self, cfg: ParserConfig, seed: int, start: int, batch: int):
        self.cfg, self.seed, self.start, self.batch = cfg, seed, start, batch

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        ds = CompletionSamples(self.cfg.height, self.cfg.width, 64, "train", self.seed, "mixed")
        k = self.start
        while True:
            rng = np.random.default_rng([self.seed, 0xA5, k])
            for i in rng.integers(0, 1 << 30, self.batch):
                r, _ = ds.render(int(i))
                yield {"image": augment(r.image, rng), "parsing": r.parsing, "keypoints": r.keypoints.astype(np.float32)}
            k += 1


def parser_batch(image_u8: Tensor, keypoints: Tensor, cfg: ParserConfig) -> tuple[Tensor, Tensor]:
    """uint8 [B, H, W, 3] RGB and (x, y) keypoints [B, 18, 2] -> the network's (photo, pose_heatmaps)."""
    photo = image_u8.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return photo, T.heatmaps(keypoints, cfg.height, cfg.width, mode="gaussian", sigma=cfg.heatmap_sigma)


@torch.no_grad()
def evaluate_parser(net: ParserNet, count: int = 200, seed: int = 0) -> dict[str, Any]:
    """Pixel accuracy, mean IoU (classes present in truth or prediction, per image, then
    averaged) and per-class IoU (pooled) on ``count`` held-out renderings; the same for the
    all-background baseline."""
    cfg = net.config
    was = net.training
    net.eval()
    ds = CompletionSamples(cfg.height, cfg.width, 64, "eval", seed, "mixed")
    inter = np.zeros(NUM_CLASSES)
    union = np.zeros(NUM_CLASSES)
    acc, miou, base_acc = [], [], []
    for i in range(count):
        r, _ = ds.render(i)
        photo, heat = parser_batch(torch.from_numpy(r.image)[None], torch.from_numpy(r.keypoints)[None].float(), cfg)
        pred = net(photo, heat)[0].argmax(0).numpy()
        truth = r.parsing
        acc.append(float((pred == truth).mean()))
        base_acc.append(float((truth == 0).mean()))
        ious = []
        for c in range(NUM_CLASSES):
            p, t = pred == c, truth == c
            u = (p | t).sum()
            inter[c] += (p & t).sum()
            union[c] += u
            if u:
                ious.append((p & t).sum() / u)
        miou.append(float(np.mean(ious)))
    if was:
        net.train()
    return {"count": count, "pixel_acc": float(np.mean(acc)), "mean_iou": float(np.mean(miou)),
            "class_iou": {PARSING_CLASSES[c]: float(inter[c] / union[c]) if union[c] else None for c in range(NUM_CLASSES)},
            "all_background": {"pixel_acc": float(np.mean(base_acc))}}


def load_parser(folder: str | Path) -> tuple[ParserNet, dict[str, Any]]:
    """The trained ParserNet (eval mode, CPU) and its sidecar."""
    folder, _, side = read_sidecar(folder, CHECKPOINT_FORMAT, CHECKPOINT_VERSION)
    net = ParserNet(ParserConfig.from_dict(side["model_config"]))
    net.load_state_dict(load_weights(folder / "model.safetensors", int(side["step"])))
    return net.eval(), side


def train_parser(out: Path, steps: int, batch: int, lr: float, seed: int, eval_count: int,
                 progress: bool = True) -> dict[str, Any]:
    """Train from scratch (or resume ``out``) to ``steps``; writes out/summary.json."""
    from tqdm import tqdm

    cfg = ParserConfig()
    torch.manual_seed(seed)
    net = ParserNet(cfg)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    start = 0
    if (out / "checkpoint.json").exists():
        net, side = load_parser(out)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        state = torch.load(out / "optimizer.pt", weights_only=True)
        opt.load_state_dict(state["optimizers"]["parser"])
        start = int(side["step"])
    net.train()
    # the rate drops to a fifth for the last 30 % of the steps (counted from the run's step 0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 if s + start < 0.7 * steps else 0.2)
    loader = DataLoader(_Renderings(cfg, seed, start, batch), batch_size=batch, num_workers=1)
    batches = iter(loader)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "metrics.jsonl", "a")
    t0 = time.perf_counter()
    bar = tqdm(total=steps, initial=start, disable=not progress, desc="parser", unit="step")
    losses: list[float] = []
    step = start

    def save() -> None:
        write_run(out, step, {"model.safetensors": cpu_tensors(net.state_dict())}, {"parser": opt},
                  {"model_config": cfg.to_dict(), "train": {"steps": steps, "batch_size": batch, "lr": lr, "seed": seed}},
                  CHECKPOINT_FORMAT, CHECKPOINT_VERSION)

    try:
        while step < steps:
            b = next(batches)
            photo, heat = parser_batch(b["image"], b["keypoints"], cfg)
            loss = F.cross_entropy(net(photo, heat), b["parsing"].long())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            losses.append(float(loss.detach()))
            bar.update(1)
            if step % 25 == 0 or step == steps:
                log.write(json.dumps({"step": step, "ce": float(np.mean(losses))}) + "\n")
                log.flush()
                bar.set_postfix(ce=f"{np.mean(losses):.3f}")
                losses.clear()
            if step % 100 == 0:
                save()
    finally:
        bar.close()
    save()
    result = evaluate_parser(net, eval_count)
    seconds = time.perf_counter() - t0
    summary = {"steps": step, "seconds": seconds, "eval": result}
    log.write(json.dumps({"step": step, "eval": result}) + "\n")
    log.close()
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"trained the parser to step {step} in {seconds / 60:.1f} min; held-out ({eval_count} people): pixel accuracy "
          f"{result['pixel_acc']:.3f} (all background: {result['all_background']['pixel_acc']:.3f}), mean IoU "
          f"{result['mean_iou']:.3f}; checkpoint in {out}", file=sys.stderr)
    return summary


def main(argv: list[str] | None = None) -> int:
    from pyposert._cli_args import count

    ap = argparse.ArgumentParser(prog="python -m training.train_parser", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/parser", help="run folder (resumed when it holds a checkpoint)")
    ap.add_argument("--steps", type=count(1), default=1500)
    ap.add_argument("--batch-size", type=count(1), default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=count(0), default=0)
    ap.add_argument("--count", type=count(1), default=200, help="held-out people to score")
    ap.add_argument("--threads", type=count(1), default=1, help="torch intra-op threads")
    ap.add_argument("--evaluate-only", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.evaluate_only:
        net, _ = load_parser(out)
        print(json.dumps(evaluate_parser(net, args.count), indent=1))
        return 0
    train_parser(out, args.steps, args.batch_size, args.lr, args.seed, args.count, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
