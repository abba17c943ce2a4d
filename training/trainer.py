"""One training step of each paper's loss recipe (see :mod:`training.train`): the networks, their
optimizers and the generator's pose input.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

from training.checkpoint import Checkpoint
from training.distributed import Dist, step_seed
from training.losses import (VGGFeatures, gan_discriminator_loss, gan_generator_loss, l1_loss, perceptual_loss,
                             pose_mask_l1_loss, ssim_loss, style_loss)
from training.models import ModelConfig, build_discriminators, build_generator
from training.ops import heatmaps_pair
from training.train_config import TrainConfig, lr_at


def pose_input(source_pose: Tensor, target_pose: Tensor, cfg: ModelConfig) -> Tensor:
    """Generator pose input [B, 36, H, W] in [0, 1] from keypoints [B, 18, 2] (x, y) model pixels.

    training.ops.heatmaps_pair with the model's heatmap mode / sigma / radius (missing = -1 ->
    an all-zero channel), source channels first.
    """
    return heatmaps_pair(source_pose, target_pose, cfg.height, cfg.width, mode=cfg.heatmap_mode,
                         sigma=cfg.heatmap_sigma, radius=cfg.heatmap_radius)


def warp_input(source_image: Tensor, source_pose: Tensor, target_pose: Tensor,
               cfg: ModelConfig) -> tuple[Tensor, Tensor]:
    """Warp guidance of a warp-guided generator: (warped_source [B, 3, H, W] in [-1, 1],
    warp_coverage [B, 1, H, W] in [0, 1]).

    The registered op ``pyposert::warp`` (pyposert.ops.warp) of ``source_image`` [B, 3, H, W]
    from ``source_pose`` to ``target_pose`` (both [B, 18, 2] (x, y) model pixels, missing -1),
    on the image's device. The warp is an input computed from data: no gradient flows through it.
    """
    from pyposert.torch_ops import register_warp

    op = register_warp().warp
    with torch.no_grad():
        warped, coverage = op(source_image.float(), source_pose.float(), target_pose.float(), cfg.height, cfg.width)
    return warped.to(source_image.dtype), coverage.to(source_image.dtype)


def generator_inputs(batch: Mapping[str, Tensor], cfg: ModelConfig,
                     device: torch.device | str = "cpu") -> tuple[Tensor, ...]:
    """The generator's positional inputs for a batch, on ``device``: (source_image, pose_heatmaps),
    plus (warped_source, warp_coverage) when ``cfg.warp_guided``."""
    src = batch["source_image"].to(device)
    sp, tp = batch["source_pose"].to(device), batch["target_pose"].to(device)
    inputs: tuple[Tensor, ...] = (src, pose_input(sp, tp, cfg))
    if cfg.warp_guided:
        inputs += warp_input(src, sp, tp, cfg)
    return inputs


class _GeneratorForward(nn.Module):
    """What DDP wraps: PG2 -> (coarse, refined) unclamped stages; the others -> (output,)."""

    def __init__(self, generator: nn.Module, name: str) -> None:
        super().__init__()
        self.generator = generator
        self.pg2 = name == "pg2"

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        if self.pg2:
            return tuple(self.generator.stages(*inputs))
        return (self.generator(*inputs),)


class Trainer:
    """Networks, optimizers and one training step of the configured recipe."""

    def __init__(self, cfg: TrainConfig, d: Dist, vgg: VGGFeatures | None) -> None:
        self.cfg, self.d, self.vgg = cfg, d, vgg
        self.mcfg = cfg.model_config()
        self.name = cfg.model
        t = cfg.train
        torch.manual_seed(t.seed)  # identical initial weights on every rank
        self.generator = build_generator(self.mcfg).to(d.device)
        self.discriminators = {k: v.to(d.device) for k, v in build_discriminators(self.mcfg).items()}
        adam = dict(betas=t.betas)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        if self.name == "pg2":
            self.optimizers["g1"] = torch.optim.Adam(self.generator.g1.parameters(), lr=t.lr_g, **adam)
            self.optimizers["g2"] = torch.optim.Adam(self.generator.g2.parameters(), lr=t.lr_g, **adam)
        else:
            self.optimizers["g"] = torch.optim.Adam(self.generator.parameters(), lr=t.lr_g, **adam)
        d_params = [p for m in self.discriminators.values() for p in m.parameters()]
        self.optimizers["d"] = torch.optim.Adam(d_params, lr=t.lr_d, **adam)
        self._phase = 0
        self._g_run: nn.Module = _GeneratorForward(self.generator, self.name)
        self._d_run: dict[str, nn.Module] = dict(self.discriminators)
        if d.enabled:
            self._d_run = {k: DDP(m, device_ids=self._ids()) for k, m in self.discriminators.items()}

    def _ids(self) -> list[int] | None:
        return [self.d.local_rank] if self.d.device.type == "cuda" else None

    def phase(self, step: int) -> int:
        """PG2: 1 while step < g1_steps, else 2. Other models: always 2 (generator + D)."""
        return 1 if self.name == "pg2" and step < self.cfg.train.g1_steps else 2

    def _enter_phase(self, phase: int) -> None:
        """(Re)wrap the generator for the phase: PG2 phase 2 freezes G1 (PG2 trains G2 and D
        with G1 fixed), and DDP must be built after requires_grad changes."""
        if phase == self._phase:
            return
        self._phase = phase
        if self.name == "pg2":
            self.generator.g1.requires_grad_(phase == 1)
        fwd = _GeneratorForward(self.generator, self.name)
        if self.d.enabled:
            # PG2 phase 1 leaves G2 without gradients: DDP must be told.
            fwd = DDP(fwd, device_ids=self._ids(), find_unused_parameters=self.name == "pg2" and phase == 1)
        self._g_run = fwd

    def load_state(self, ck: Checkpoint) -> None:
        self.generator.load_state_dict(ck.generator)
        for role, m in self.discriminators.items():
            if role not in ck.discriminators:
                raise ValueError(f"checkpoint has no weights for discriminator {role!r}")
            m.load_state_dict(ck.discriminators[role])
        if ck.optimizers is None:
            raise ValueError("checkpoint has no optimizer state")
        for k, o in self.optimizers.items():
            o.load_state_dict(ck.optimizers[k])

    def _set_lr(self, step: int) -> None:
        t = self.cfg.train
        for k, o in self.optimizers.items():
            lr = lr_at(step, t.lr_d if k == "d" else t.lr_g, t)
            for group in o.param_groups:
                group["lr"] = lr

    def _vgg_terms(self, fake: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Perceptual and style terms (weighted), only when VGG weights were given."""
        L = self.cfg.loss
        if self.vgg is None or (L.lambda_perceptual <= 0 and L.lambda_style <= 0):
            return {}
        f_fake = self.vgg(fake)
        with torch.no_grad():
            f_real = self.vgg(target)
        out: dict[str, Tensor] = {}
        if L.lambda_perceptual > 0:
            layers = L.perceptual_layers
            out["perceptual"] = L.lambda_perceptual * perceptual_loss(
                {k: f_fake[k] for k in layers}, {k: f_real[k] for k in layers})
        if L.lambda_style > 0:
            layers = L.style_layers
            out["style"] = L.lambda_style * style_loss({k: f_fake[k] for k in layers}, {k: f_real[k] for k in layers})
        return out

    def _d_inputs(self, image: Tensor, source: Tensor, target_maps: Tensor) -> dict[str, Tensor]:
        """Conditional discriminator inputs per role (PATN lineage)."""
        return {"appearance": torch.cat([image, source], 1), "pose": torch.cat([image, target_maps], 1)}

    def step(self, step: int, batch: Mapping[str, Tensor]) -> dict[str, float]:
        """One update of the recipe at 0-based ``step``.

        Returns the generator's weighted loss terms (e.g. g_gan = lambda_gan * adversarial,
        l1 = lambda_l1 * L1), their sum g_total, and each discriminator's loss d_<role>
        (PG2 phase 1: only g1_pose_mask_l1).
        """
        dev = self.d.device
        inputs = generator_inputs(batch, self.mcfg, dev)
        tgt = batch["target_image"].to(dev)
        mask = batch["target_mask"].to(dev)
        phase = self.phase(step)
        self._enter_phase(phase)
        self._set_lr(step)
        torch.manual_seed(step_seed(self.cfg.train.seed, self.d.rank, step))
        self.generator.train()
        for m in self.discriminators.values():
            m.train()
        if self.name == "pg2":
            return self._step_pg2(phase, inputs, tgt, mask)
        return self._step_pair(inputs, tgt, mask)

    # -- PATN / PoNA / NRAM ------------------------------------------------------------
    def _step_pair(self, inputs: tuple[Tensor, ...], tgt: Tensor, mask: Tensor) -> dict[str, float]:
        """One update; with lambda_gan == 0 the recipe is pixel losses only and the
        discriminators are neither run nor updated."""
        L = self.cfg.loss
        src, pose = inputs[0], inputs[1]
        n_t = self.mcfg.pose_channels // 2
        tmaps = pose[:, n_t:]
        (fake,) = self._g_run(*inputs)
        adversarial = L.lambda_gan > 0
        terms: dict[str, Tensor] = {}
        if adversarial:
            # Generator update; discriminators frozen and run bare (outside DDP: no gradient sync).
            for m in self.discriminators.values():
                m.requires_grad_(False)
            fake_in = self._d_inputs(fake, src, tmaps)
            adv = torch.stack([gan_generator_loss(self.discriminators[r](fake_in[r]), L.gan_mode)
                               for r in self.discriminators]).mean()
            terms["g_gan"] = L.lambda_gan * adv
        if L.l1_mode == "pose_mask":
            terms["pose_mask_l1"] = L.lambda_l1 * pose_mask_l1_loss(fake, tgt, mask)
        else:
            terms["l1"] = L.lambda_l1 * l1_loss(fake, tgt)
        if L.lambda_ssim > 0:
            terms["ssim"] = L.lambda_ssim * ssim_loss(fake, tgt)
        terms.update(self._vgg_terms(fake, tgt))
        g_loss = torch.stack(list(terms.values())).sum()
        self.optimizers["g"].zero_grad(set_to_none=True)
        g_loss.backward()
        self.optimizers["g"].step()
        out = {k: float(v.detach()) for k, v in terms.items()}
        out["g_total"] = float(g_loss.detach())
        if not adversarial:
            return out
        for m in self.discriminators.values():
            m.requires_grad_(True)
        # Discriminator update: real and fake in one forward per D (one DDP forward per backward;
        # the PATN-lineage discriminators use instance norm, so batching them is per-sample exact).
        fake_d = fake.detach()
        real_in = self._d_inputs(tgt, src, tmaps)
        fake_in = self._d_inputs(fake_d, src, tmaps)
        d_losses: dict[str, Tensor] = {}
        b = src.shape[0]
        for role, run in self._d_run.items():
            scores = run(torch.cat([real_in[role], fake_in[role]], 0))
            d_losses[role] = gan_discriminator_loss(scores[:b], scores[b:], L.gan_mode)
        d_loss = torch.stack(list(d_losses.values())).sum()
        self.optimizers["d"].zero_grad(set_to_none=True)
        d_loss.backward()
        self.optimizers["d"].step()
        out.update({f"d_{k}": float(v.detach()) for k, v in d_losses.items()})
        return out


    # -- PG2 -----------------------------------------------------------------------------
    def _step_pg2(self, phase: int, inputs: tuple[Tensor, ...], tgt: Tensor, mask: Tensor) -> dict[str, float]:
        L = self.cfg.loss
        src = inputs[0]
        coarse, refined = self._g_run(*inputs)
        if phase == 1:
            loss = pose_mask_l1_loss(coarse, tgt, mask)
            self.optimizers["g1"].zero_grad(set_to_none=True)
            loss.backward()
            self.optimizers["g1"].step()
            return {"g1_pose_mask_l1": float(loss.detach())}
        disc = self.discriminators["image"]
        disc.requires_grad_(False)
        adv = gan_generator_loss(disc(refined), L.gan_mode)
        terms = {"g_gan": L.lambda_gan * adv, "pose_mask_l1": L.lambda_l1 * pose_mask_l1_loss(refined, tgt, mask)}
        g_loss = terms["g_gan"] + terms["pose_mask_l1"]
        self.optimizers["g2"].zero_grad(set_to_none=True)
        g_loss.backward()
        self.optimizers["g2"].step()
        disc.requires_grad_(True)
        # PG2's D: targets real; refined outputs and the source images fake, in one batch.
        b = src.shape[0]
        scores = self._d_run["image"](torch.cat([tgt, refined.detach(), src], 0))
        d_loss = gan_discriminator_loss(scores[:b], scores[b:], L.gan_mode)
        self.optimizers["d"].zero_grad(set_to_none=True)
        d_loss.backward()
        self.optimizers["d"].step()
        out = {k: float(v.detach()) for k, v in terms.items()}
        out["g_total"] = float(g_loss.detach())
        out["d_image"] = float(d_loss.detach())
        return out

def build_vgg(cfg: TrainConfig, vgg_weights: str | None, device: torch.device) -> tuple[VGGFeatures | None, str]:
    """The VGG stack when the recipe uses it and weights were given; plus a note for the log."""
    L = cfg.loss
    wanted: list[str] = []
    if L.lambda_perceptual > 0:
        wanted += [n for n in L.perceptual_layers if n not in wanted]
    if L.lambda_style > 0:
        wanted += [n for n in L.style_layers if n not in wanted]
    if not wanted:
        return None, ("--vgg-weights given but this recipe has no perceptual/style term (weights 0): unused"
                      if vgg_weights else "")
    if not vgg_weights:
        terms = " and ".join(t for t, w in (("perceptual", L.lambda_perceptual), ("style", L.lambda_style)) if w > 0)
        return None, f"{terms} loss off: pass --vgg-weights PATH ({L.vgg_arch} state dict) to enable it"
    vgg = VGGFeatures.from_weights(vgg_weights, L.vgg_arch, wanted).to(device)
    return vgg, f"VGG losses on: {L.vgg_arch} {wanted} from {vgg_weights}"
