"""Influence unlearning (IU; Izzo et al., "Approximate Data Deletion from Machine Learning Models",
AISTATS 2021), in the WoodFisher form run as a baseline by Jia et al. ("Model Sparsity Can
Simplify Machine Unlearning", NeurIPS 2023) and Fan et al. (SalUn, ICLR 2024; method `wfisher`).

No training: one Newton-style step theta += alpha * F^-1 v away from the forget set, where
v = sum_forget grad / n - (n_f / n) * mean_retain grad (n = n_f + n_r; per-sample CE
gradients at the original weights, model in eval mode) and F^-1 v is a WoodFisher
inverse-Fisher-vector product: F = I + (1/N) sum_k g_k g_k^T over per-sample retain gradients,
inverted by Sherman-Morrison one sample at a time (Singh & Alistarh, NeurIPS 2020).

Follows OPTML-Group/Unlearn-Saliency, Classification/unlearn/Wfisher.py (commit a6e89fd):
`sam_grad` 18-28 (flattened gradient of the requires-grad parameters), `apply_perturb` 31-44
(no mask: SalUn's main_forget.py passes none to wfisher), `woodfisher` 47-69 (N = 1000; the
first retain gradient only seeds `o_vec`; each later one updates `k_vec` with
(k.g) / (N + o.g) * o and shrinks `o_vec` by N / (N + o.g); it returns after index N + 1, so at
most N + 2 = 1002 retain samples are read, in dataset order, one per batch: loader 105-107),
`Wfisher` 99-199 (model.eval() 121; the non-ImageNet branch 149-172: forget and retain gradient
sums over unshuffled batches of `args.batch_size` (102-104, 108-110), each batch's mean-loss
gradient times its size; the scaling 174-175; v = forget_grad - retain_grad 193; the update
`alpha * perturb` 197). OPTML-Group/Unlearn-Sparse, unlearn/Wfisher.py is the same algorithm
(its second `woodfisher`, 63-84, N = 1000, overrides a first one at 25-42). Defaults: alpha
0.2 and batch size 256 (Unlearn-Saliency Classification/arg_parser.py:142 and :69; the
READMEs pass `--alpha ${alpha}` without a value). The search space runs from one decade below
that default to 20, the top of the range [1, 20] the Sparse and SalUn appendices are recalled to
tune alpha in (not checked against the PDFs here: no copy was reachable).

Which approximation this is, exactly as the official code computes it: `o_vec` stands for
F_{k-1}^-1 g_k in the Sherman-Morrison recursion but is only ever a rescaled copy of the first
retain gradient g_0, so the recursion is exact only when all per-sample gradients coincide
(tests/test_method_influence.py checks that case against a dense solve); `k_vec . g_k` is the
exact g_k^T F^-1 v of the current estimate. Memory is O(parameters), independent of the pool:
the forget/retain sums are accumulated batch by batch, the per-sample gradients are taken one
at a time (batch-1 forward/backward passes, as the official loader with batch_size=1 does),
and only v, k_vec, o_vec and one gradient are kept (a few x 11M floats for ResNet-18).

Deliberate deviations:
- Gradients are taken on un-augmented images (`augment=False`). The official code rebuilds its
  loaders from the training dataset, which keeps the training transform (random crop + flip
  unless --no_aug); the influence of a training point is the gradient at that point, and without
  augmentation nothing is random (the loaders are unshuffled), so the method is deterministic.
- N (`fisher_n`) is a config field with the official 1000 as its default (hard-coded there; not
  tuned). Unlearn-Sparse's overridden first `woodfisher` used N = number of retain samples and
  read them all; `fisher_n` can express that on a given pool.
- The ImageNet branch (`imagenet_arch`: `woodfisher_im`, N = 300000) is not reproduced; in
  Unlearn-Saliency its "retain" sum loops over the forget loader (136-147), a slip that
  Unlearn-Sparse's copy does not have.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.api import RunContext, UnlearnData, log_range, param, register_method
from methods._common import grad_sum


@dataclass(frozen=True)
class InfluenceConfig:
    alpha: float = param(0.2, gt=0, search=log_range(0.02, 20.0))  # scale of the WoodFisher step
    fisher_n: int = param(1000, ge=1)  # N: Sherman-Morrison constant; N + 2 retain samples read
    batch_size: int = param(256, ge=1)  # batches of the forget and retain gradient sums


def woodfisher(v: torch.Tensor, grads, n: int) -> torch.Tensor:
    """The official `woodfisher` recursion on flat per-sample gradients `grads` (an iterable)."""
    k_vec, o_vec = v.clone(), None
    for idx, g in enumerate(grads):
        if o_vec is None:
            o_vec = g.clone()
        else:
            tmp = torch.dot(o_vec, g)
            k_vec -= (torch.dot(k_vec, g) / (n + tmp)) * o_vec
            o_vec -= (tmp / (n + tmp)) * o_vec
        if idx > n:
            break
    return k_vec


def update_direction(forget_sum: torch.Tensor, retain_sum: torch.Tensor, n_forget: int, n_retain: int):
    """v of Wfisher.py:174-175 and 193, from the sums of per-sample forget and retain gradients."""
    total = n_forget + n_retain
    return forget_sum / total - retain_sum * (n_forget / (total * n_retain))


@register_method("influence", config=InfluenceConfig, protocols=("random", "class"), deterministic=True)
def influence(model, data: UnlearnData, cfg: InfluenceConfig, ctx: RunContext):
    """One WoodFisher inverse-Fisher step up the forget gradient (IU; Izzo et al. 2021, as in SalUn)."""
    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    batch_loss = lambda b: F.cross_entropy(model(b[0]), b[1]) * len(b[1])  # noqa: E731 (sam_grad * real_num)

    def summed(split):
        total = grad_sum(model, ctx.batches(split, cfg.batch_size, shuffle=False, augment=False), batch_loss,
                         square=False)
        return torch.cat([total[n].reshape(-1) for n in names])

    v = update_direction(summed(data.forget), summed(data.retain), len(data.forget), len(data.retain))
    ctx.progress(1, 2)

    def per_sample():
        model.eval()
        for x, y in ctx.batches(data.retain, 1, shuffle=False, augment=False):
            grads = torch.autograd.grad(F.cross_entropy(model(x), y), params)
            yield torch.cat([g.reshape(-1) for g in grads])

    perturb = cfg.alpha * woodfisher(v, per_sample(), cfg.fisher_n)  # nothing here requires grad
    with torch.no_grad():
        start = 0
        for p in params:
            p.add_(perturb[start : start + p.numel()].view_as(p))
            start += p.numel()
    ctx.progress(2, 2)
    return model
