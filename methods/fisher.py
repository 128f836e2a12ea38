"""Fisher forgetting (Golatkar, Achille, Soatto, "Eternal Sunshine of the Spotless Net: Selective
Forgetting in Deep Networks", CVPR 2020). No training.

The diagonal of the Fisher information of the original model is computed on the retain set; every
weight is then resampled from a Gaussian centred on its trained value with variance
alpha / Fisher (clamped), so weights the retain set does not pin down are scrambled, and with them
what only the forget set taught. Under class forgetting the forgotten class's row of the
classifier is zeroed and given a tiny variance. As in the paper and every port, only the diagonal
of the Fisher is used.

Follows AdityaGolatkar/SelectiveForgetting, Forgetting.ipynb (commit 4c02825; lines of the .ipynb
file): `hessian` (1433-1458: eval mode, for each retain image and each class y the gradient of
CE(output, y), squared and weighted by the model's probability of y, averaged over images: the
expected, not the empirical, Fisher; labels are not used), `get_mean_var` (1542-1565:
var = 1/(F + 1e-8) clamped at 1e3, at 1e2 for the classifier; times alpha; for tensors of 2+
dims averaged over dim 1 (input units/channels) and broadcast back; under class forgetting,
`num_to_forget is None`, the forgotten class's classifier rows get mean 0 and variance 1e-4; then
classifier tensors, else 1-D tensors (biases, norm weights: the notebook says "BatchNorm", its
test is `ndim == 1`), get 10x the variance) and the noise cell (1688-1693: w = mu + sqrt(var) *
N(0, 1), alpha = 1e-6, drawn parameter by parameter). The alpha search space, [1e-8, 1e-5],
spans the notebook's alpha sweeps (lines 2512, 3361; they sweep its NTK+Fisher model, whose
Fisher noise is this one; the plain Fisher cell uses 1e-6).

Ports: the SSD authors' code (if-loops/selective-synaptic-dampening, commit cdfdc0e,
src/forget_random_strategies.py:229-308 and src/forget_full_class_strategies.py:483-570; the same
copy is in jwf40/Information-Theoretic-Unlearning, src/forget_random_strategies.py:263-332) copies
the notebook; its random-forgetting copy drops the 10x variance of the classifier's weight (its
bias keeps it through the 1-D branch; the notebook keeps both for both protocols, and so does this
file), its class copy matches the notebook.
xcadet/deepunlearn (munl/unlearning/fisher.py:136-201 `hessian`/`get_mean_var`/`fisher_new`, from
OPTML-Group/Unlearn-Sparse) batches the Fisher as squared gradients of batch-mean losses weighted
by the batch-mean probability (25-37x the per-image Fisher on the digits MLP at every batch size
tried), uses alpha 0.2 and drops the class handling; none of that is followed.

Deliberate deviations:
- Batching. The official loop takes one image at a time because it needs per-image squared
  gradients. Here `batch_size` images share a forward pass and, per class y, one backward pass of
  sum_i s_i sqrt(p_i(y)) CE_i(y) with random signs s_i = +-1 (from the run's generator) is squared
  and summed. Cross-image terms then cancel in expectation, so the estimate's expectation is the
  official per-image Fisher at any batch size, and at batch size 1 it is that sum exactly
  (s^2 = 1). Without the signs the cross terms inflate the Fisher and shrink the noise (on a
  cnn-small trained on digits, median noise std of the conv and hidden tensors x0.48-0.64 at
  batch 128, x0.75-0.85 at 32; with the signs x1.00-1.05). The default, 1, is the official
  loop; a suite may raise it for speed (the FLOPs stay the same: one forward and one backward
  per class for every image). The retain set is read in order, unaugmented, as in the notebook.
- The classifier is the model's last Linear/Conv layer (`last_layers`), not every tensor whose
  first dimension equals the number of classes (which would also catch a hidden layer of that width).
- Forgotten classes are the labels of the forget set that no retain example has (the harness does
  not say which protocol runs); on random forgetting there are none, as with `num_to_forget` set.
- The Fisher is computed in fp32 without the suite's bf16 autocast (squared gradients underflow).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.api import RunContext, UnlearnData, log_range, param, register_method
from methods._common import last_layers

EPS = 1e-8  # added to the Fisher before inverting it
MAX_VAR = 1e3  # clamp of 1 / Fisher for every tensor...
MAX_VAR_HEAD = 1e2  # ...and for the classifier's
FORGOTTEN_VAR = 1e-4  # variance of a forgotten class's classifier rows (before the 10x)
SCALE = 10.0  # extra variance of the classifier's tensors and of other 1-D tensors


@dataclass(frozen=True)
class FisherConfig:
    alpha: float = param(1e-6, gt=0, search=log_range(1e-8, 1e-5))  # noise scale
    batch_size: int = param(1, ge=1)  # images per pass of the Fisher; official 1 (exact)


def diagonal_fisher(model, batches, generator, progress=lambda done, total: None,
                    total: int = 0) -> list[torch.Tensor]:
    """Per parameter, the mean over images of sum_y p(y|x) (d CE(x, y) / d w)^2 (official `hessian`),
    batched with random signs: exact for one-image batches, unbiased for larger ones."""
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    fisher = {id(p): torch.zeros_like(p) for p in model.parameters()}
    images = 0
    for done, (x, _) in enumerate(batches, 1):
        logits = model(x)
        weight = F.softmax(logits.detach().float(), dim=-1).sqrt()
        classes = logits.shape[1]
        for y in range(classes):
            target = torch.full((len(x),), y, dtype=torch.long, device=x.device)
            signs = (2 * torch.randint(0, 2, (len(x),), generator=generator) - 1).to(x.device)
            loss = (signs * weight[:, y] * F.cross_entropy(logits.float(), target, reduction="none")).sum()
            grads = torch.autograd.grad(loss, params, retain_graph=y < classes - 1, allow_unused=True)
            for p, g in zip(params, grads):
                if g is not None:
                    fisher[id(p)] += g.detach() ** 2
        images += len(x)
        progress(done, total)
    return [fisher[id(p)] / max(images, 1) for p in model.parameters()]


def mean_var(p, fisher, alpha: float, head: bool, forgotten: list[int]):
    """The Gaussian each weight is drawn from (official `get_mean_var`)."""
    var = (1.0 / (fisher + EPS)).clamp(max=MAX_VAR)
    if head:
        var = var.clamp(max=MAX_VAR_HEAD)
    var = alpha * var
    if p.ndim > 1:
        var = var.mean(dim=1, keepdim=True).expand_as(p).clone()
    mu = p.detach().clone()
    if head and forgotten:
        mu[forgotten] = 0
        var[forgotten] = FORGOTTEN_VAR
    if head or p.ndim == 1:
        var = var * SCALE
    return mu, var


def forgotten_classes(data: UnlearnData) -> list[int]:
    """Labels of the forget set that no retain example has (class forgetting); [] otherwise."""
    return sorted(set(data.forget.y.unique().tolist()) - set(data.retain.y.unique().tolist()))


@register_method("fisher", config=FisherConfig)
def fisher(model, data: UnlearnData, cfg: FisherConfig, ctx: RunContext):
    """Gaussian noise scaled by the inverse diagonal Fisher of the retain set (Golatkar et al. 2020)."""
    batches = ctx.batches(data.retain, cfg.batch_size, shuffle=False, augment=False)
    total = -(-len(data.retain) // cfg.batch_size)
    fishers = diagonal_fisher(model, batches, ctx.generator, ctx.progress, total)
    classifier = last_layers(model, 1)[0]
    head_ids = {id(p) for p in classifier.parameters(recurse=False)}
    forgotten = forgotten_classes(data)
    with torch.no_grad():
        for p, f in zip(model.parameters(), fishers):
            head = id(p) in head_ids
            if head and p.shape[0] != data.num_classes:
                raise ValueError(f"the last layer has {p.shape[0]} outputs, not {data.num_classes} classes")
            mu, var = mean_var(p, f, cfg.alpha, head, forgotten)
            noise = torch.randn(p.shape, generator=ctx.generator).to(device=p.device, dtype=p.dtype)
            p.copy_(mu + var.sqrt() * noise)
    return model
