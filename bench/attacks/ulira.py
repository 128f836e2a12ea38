"""U-LiRA (Hayes et al. 2024): LiRA whose IN distribution comes from reference models that were
trained on an example and then unlearned with the method under test.

The unlearned references are produced by the runner (bench/unlearned_references.py) and reach
this attack as `AttackInput.unlearned`; the score is LiRA's online likelihood ratio with one
shared variance (bench/attacks/lira.py), over the attacked examples: the forget set and an
equal number of held-out non-members.
"""

from __future__ import annotations

import numpy as np

from bench.attacks.base import AttackInput, AttackResult, register_attack, scored
from bench.attacks.lira import lira_scores
from bench.metrics import SETUP


@register_attack("ulira", needs_references=True, needs_unlearned_references=True, label="U-LiRA", strength=4,
                 resolution={k: SETUP for k in ("n_references", "n_references_failed", "reference_errors",
                                                "forget_sizes", "mean_in_per_example", "mean_out_per_example")})
def ulira(a: AttackInput) -> AttackResult:
    """U-LiRA (Hayes et al. 2024): LiRA whose IN models were trained on x, then unlearned by the method."""
    u = a.unlearned
    failed = [e for e in u.errors if e]
    if len(u.conf) == 0:
        raise RuntimeError(f"the method failed on all {len(u.errors)} reference models: {failed[0]}")
    position = {k: i for i, k in enumerate(u.keys.tolist())}
    scores = {}
    for name, out in (("forget", a.members()), ("test", a.nonmembers())):
        attacked = np.array([k in position for k in out["key"].tolist()], bool)
        cols = np.array([position[k] for k in out["key"][attacked].tolist()], np.int64)
        target = np.stack([out["conf"], out["conf_mirror"]], axis=-1)[attacked].astype(np.float64)
        scores[name] = lira_scores(target, u.conf[:, cols], u.in_mask[:, cols], online=True,
                                   fixed_variance=True, out_mask=u.out_mask[:, cols])
    result = scored(scores["forget"], scores["test"])
    return AttackResult({**result.metrics, "n_references": int(len(u.conf)), "n_references_failed": len(failed),
                         "reference_errors": failed, "forget_sizes": list(u.forget_sizes),
                         "mean_in_per_example": float(u.in_mask.sum(0).mean()),
                         "mean_out_per_example": float(u.out_mask.sum(0).mean()),
                         "references_unlearn_s": round(u.unlearn_s, 3)},
                        result.member_scores, result.nonmember_scores)
