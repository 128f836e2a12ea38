"""UNSIR (Tarun, Chundawat, Mandal, Kankanhalli, "Fast Yet Effective Machine Unlearning", IEEE TNNLS 2023).

Error-maximising noise, then impair and repair. For each forgotten class a batch of noise images
(a learnable tensor drawn from N(0, 1) in the model's normalised input space) is optimised with
Adam to MAXIMISE the model's cross-entropy for that class, kept small by an L2 penalty:
    loss = -CE(model(noise), class) + lambda * mean_i sum(noise_i ** 2).
Impair: one epoch of Adam (lr 0.02) on that fixed noise, labelled with its class and repeated
`noise_copies` times, shuffled together with a retain subset (the first `retain_per_class` images
of each retained class). Repair: one epoch of Adam (lr 0.01) on the retain subset alone.

Follows vikram2000b/Fast-Machine-Unlearning, "Machine Unlearning.ipynb" (lines of the .ipynb file):
391-398 (`Noise`: a Parameter `torch.randn(*dim)`); 446-453 (the retain subset: the first
`num_samples_per_class = 1000` images of every retained class); 506-509 (the model is loaded and
left in train mode); 540-563 (per forgotten class: `Noise(batch_size=256, ...)`, Adam lr 0.1,
5 epochs x 8 steps of the loss above with lambda 0.1); 597-641 (impair: 20 copies of the first images
of each class's noise batch, detached, plus the retain subset, DataLoader batch 256, shuffled, Adam lr 0.02,
1 epoch of CE); 714-741 (repair: the retain subset, batch 256, shuffled, Adam lr 0.01, 1 epoch
of CE). The defaults are those values; no weight decay anywhere, as there. Which noise images
enter the impair set is the notebook's too: its copy loop (lines 604-608) runs
`for i in range(batch[0].size(0))`, the first dimension of ONE noise image (its channel count, 3
on CIFAR), not the batch size, so each copy adds 3 of the 256 optimised images (60 per class, about
1.5% of its impair set); the notebook's printed impair loss and accuracy (line 590, divided by
50,000) fit that count and not the full batches. The same loop is in the SSD authors' port
(if-loops/selective-synaptic-dampening, src/unlearn.py:168). Here too: the first C images of each
class's noise, C the images' channel count (1 on digits, 3 on CIFAR).

Deliberate deviations:
- The noise of each class is labelled with that class. The notebook labels every noise image
  `class_num = 0` (line 602, never updated), right only for its first forgotten class (0); the
  paper, and the port in if-loops/selective-synaptic-dampening (unlearn.py,
  `UNSIR_create_noisy_loader`), label it with the forgotten class.
- Shapes and classes come from the data: the noise has the images' (C, H, W), not CIFAR's
  3x32x32; the forgotten classes are the labels in the forget set, the retained ones those in the
  retain set (the notebook hard-codes CIFAR-10's ten classes and `classes_to_forget = [0, 2]`).
- "First images of each class" is in the retain split's order (the notebook's: ImageFolder's
  sorted file names); with fewer images than `retain_per_class`, all of them.
- While the noise is optimised the model's weights are frozen. The notebook's backward also
  computes their gradients, unused (the impair optimiser zeroes them first): same result, fewer
  backward FLOPs. The model is in train mode there, as in the notebook (BatchNorm uses and updates
  its statistics on the noise; impair and repair update them again).
- The 20 copies are indexed, not materialised; batches are the same shuffled mix.
- Noise optimisation, impair and repair run under the suite's device policy (bf16 autocast for
  CNNs on CPU, bench/policy.py), like every method's training; the notebook runs in fp32.
- Augmentation of retain images follows the suite's recipe, as in the other methods here (the
  notebook's transforms have none, as did its training). Noise is never augmented.

Protocol: the paper and the official code forget whole classes (protocols=("class",)). Some
third-party harnesses run an instance-wise variant on random forgetting (per forget batch, noise
pulled towards the forget batch's logits by MSE; from ndb796/MachineUnlearning, the MUFAC UNSIR
notebook); that is not the official method and is not done here.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.api import RunContext, UnlearnData, log_range, make_optimizer, param, register_method, run_epochs
from bench.data import Split


@dataclass(frozen=True)
class UnsirConfig:
    noise_batch_size: int = param(256, ge=1)  # noise images per forgotten class (Noise(batch_size, ...))
    noise_lr: float = param(0.1, gt=0, search=log_range(0.01, 1.0))  # Adam on the noise
    noise_epochs: int = param(5, ge=1)
    noise_steps: int = param(8, ge=1)  # steps per noise epoch (5 x 8 = 40 Adam steps)
    noise_lambda: float = param(0.1, ge=0, search=log_range(0.01, 1.0))  # weight of the L2 penalty
    noise_copies: int = param(20, ge=1)  # copies of each noise batch in the impair set (num_batches)
    retain_per_class: int = param(1000, ge=1)  # num_samples_per_class
    impair_lr: float = param(0.02, gt=0, search=log_range(2e-3, 0.2))  # Adam
    impair_epochs: int = param(1, ge=1)
    repair_lr: float = param(0.01, gt=0, search=log_range(1e-3, 0.1))  # Adam
    repair_epochs: int = param(1, ge=1)
    batch_size: int = param(256, ge=1)  # impair and repair batches


def noise_loss(logits: torch.Tensor, noise: torch.Tensor, label: int, lam: float) -> torch.Tensor:
    """-CE(logits, label) + lam * mean over images of the noise's squared L2 norm (notebook line 557)."""
    target = torch.full((logits.shape[0],), label, dtype=torch.long, device=logits.device)
    return -F.cross_entropy(logits, target) + lam * noise.square().flatten(1).sum(1).mean()


def first_per_class(split: Split, n: int) -> Split:
    """The first `n` images of each class present in `split`, class by class, in the split's order."""
    y = split.y.cpu()
    positions = [torch.nonzero(y == c).flatten()[:n] for c in torch.unique(y)]
    return split.subset(torch.cat(positions).numpy())


def error_maximising_noise(model, label: int, shape, cfg: UnsirConfig, ctx: RunContext) -> torch.Tensor:
    """A batch of noise optimised to maximise the model's loss on `label` (the model is not changed)."""
    noise = torch.randn((cfg.noise_batch_size, *shape), generator=ctx.generator).to(ctx.device)
    noise.requires_grad_(True)
    optimizer = make_optimizer([noise], "adam", cfg.noise_lr)
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        run_epochs(model, optimizer, cfg.noise_epochs, lambda: range(cfg.noise_steps),
                   lambda _: noise_loss(model(ctx.policy.batch_format(noise)), noise, label, cfg.noise_lambda),
                   ctx)
    finally:
        for p in trainable:
            p.requires_grad_(True)
    return noise.detach()


def impair_batches(noises: dict[int, torch.Tensor], retain: Split, cfg: UnsirConfig, ctx: RunContext):
    """One shuffled epoch over `noise_copies` copies of every class's first C noise images (C: the
    images' channels, as the notebook's loop bound) plus the retain subset,
    as (x, y) batches of `cfg.batch_size` (noise rows first within a batch; order is irrelevant to CE)."""
    used = {c: n[: n.shape[1]] for c, n in noises.items()}  # the notebook's `range(batch[0].size(0))`: C images
    noise = torch.cat(list(used.values()))
    noise_y = torch.cat([torch.full((len(n),), c, dtype=torch.long) for c, n in used.items()]).to(ctx.device)
    copies = len(noise) * cfg.noise_copies
    order = torch.randperm(copies + len(retain), generator=ctx.generator)
    for start in range(0, len(order), cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        xs, ys = [], []
        from_noise = (idx[idx < copies] % len(noise)).to(ctx.device)
        if len(from_noise):
            xs.append(noise[from_noise])
            ys.append(noise_y[from_noise])
        from_retain = (idx[idx >= copies] - copies).numpy()
        if len(from_retain):
            x, y = next(iter(ctx.batches(retain.subset(from_retain), len(from_retain), shuffle=False)))
            xs.append(x.contiguous())
            ys.append(y)
        yield ctx.policy.batch_format(torch.cat(xs)), torch.cat(ys)


@register_method("unsir", config=UnsirConfig, protocols=("class",))
def unsir(model, data: UnlearnData, cfg: UnsirConfig, ctx: RunContext):
    """Error-maximising noise for the forgotten class, then impair and repair (Tarun et al. 2023)."""
    shape = tuple(data.forget.x.shape[1:])
    forgotten = [int(c) for c in torch.unique(data.forget.y.cpu())]
    noises = {c: error_maximising_noise(model, c, shape, cfg, ctx) for c in forgotten}
    retain = first_per_class(data.retain, cfg.retain_per_class)

    def cross_entropy(batch):
        x, y = batch
        return F.cross_entropy(model(x), y)

    impair = make_optimizer(model.parameters(), "adam", cfg.impair_lr)
    run_epochs(model, impair, cfg.impair_epochs, lambda: impair_batches(noises, retain, cfg, ctx), cross_entropy, ctx)
    repair = make_optimizer(model.parameters(), "adam", cfg.repair_lr)
    return run_epochs(model, repair, cfg.repair_epochs, lambda: ctx.batches(retain, cfg.batch_size),
                      cross_entropy, ctx)
