"""U-LiRA (Hayes et al., "Inexact Unlearning Needs More Careful Evaluations", 2024).

LiRA asks "was x trained on?"; after unlearning the right question is "was x trained on and
then unlearned by this method, or never trained on?". U-LiRA answers it with reference models
that went through the same pipeline: each of the first K_u reference models (trained on its
half of the pool) is unlearned with the method under test, its forget set being the attacked
examples (the suite's forget set and the test split) that it trained on. For every attacked
example, the references that trained-then-unlearned it give the IN distribution of the LiRA
statistic and those that never saw it the OUT one; the score is LiRA's online likelihood
ratio with a global variance. The unlearned references are cached per method, config and
forget set, and shared by every seed.
"""

from __future__ import annotations

import copy
import os

import numpy as np

from bench.api import UnlearnData
from bench.config import derive_seed, stable_hash, to_jsonable
from bench.cost import measure
from bench.evaluate import per_example_outputs
from bench.lira import lira_scores
from bench.mia import AttackInput, AttackResult, register_attack, scored
from bench.references import reference_model, reference_pool, references_folder
from bench.train import check_finite


def unlearned_references(run, method: str, config, fs, k_u: int) -> dict:
    """(K_u, attacked, 2) statistics of the unlearned references, their IN mask, and the cost."""
    from bench.methods_loader import method_registry

    refs = run.references()
    pool, keys = reference_pool(run)
    attacked = np.concatenate([run.example_keys("train", fs.indices), run.example_keys("test", run.test.index)])
    rows = refs.rows(attacked)
    tag = stable_hash([method, to_jsonable(config) if config is not None else {}, fs.sha256, k_u])
    folder = references_folder(run, refs.k) / "ulira"
    confs, unlearn_s = [], 0.0
    for i in range(k_u):
        path = folder / f"{method}-{tag}-ref{i}.npz"
        if not path.is_file():
            trained = np.flatnonzero(refs.keep[i])
            forget_rows = np.intersect1d(rows[refs.keep[i, rows]], trained)
            data = UnlearnData(pool.subset(forget_rows), pool.subset(np.setdiff1d(trained, forget_rows)),
                               run.val, run.num_classes)
            model = reference_model(run, refs, i)
            run.opts.progress.run_started(f"U-LiRA reference {i + 1}/{k_u}: {method}")
            try:
                with measure(run.device) as cost:
                    if method != "original":  # the reference row: trained, never unlearned
                        ctx = run.context(derive_seed(tag, i), f"U-LiRA reference {i + 1}/{k_u}: {method}")
                        model = method_registry().get(method).fn(copy.deepcopy(model), data, config, ctx)
                check_finite(model)
                out = per_example_outputs(model, pool.subset(rows), run.batcher, run.suite.eval.batch_size)
                conf, mirror = out["conf"], out["conf_mirror"]
            except Exception:  # noqa: BLE001 - a diverged or failed reference: left out, and counted
                conf = mirror = np.full(len(rows), np.nan, np.float32)
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{path.stem}.tmp{os.getpid()}.npz"
            np.savez(tmp, conf=conf, conf_mirror=mirror, wall_s=cost["wall_s"])
            os.replace(tmp, path)
        with np.load(path) as f:
            confs.append(np.stack([f["conf"], f["conf_mirror"]], axis=-1))
            unlearn_s += float(f["wall_s"])
    conf = np.stack(confs).astype(np.float64)
    usable = np.isfinite(conf).all(axis=(1, 2))
    if not usable.any():
        raise RuntimeError(f"{method} diverged or failed on all {k_u} reference models")
    return {"keys": attacked, "conf": conf[usable], "keep": refs.keep[:k_u][usable][:, rows],
            "unlearn_s": unlearn_s, "failed": int((~usable).sum())}


@register_attack("ulira", needs_references=True, needs_unlearned_references=True)
def ulira(a: AttackInput) -> AttackResult:
    """U-LiRA (Hayes et al. 2024): LiRA whose IN models were trained on x, then unlearned by the method."""
    u = a.unlearned_references()
    position = {k: i for i, k in enumerate(u["keys"].tolist())}
    scores = {}
    for split in ("forget", "test"):
        out = a.outputs[split]
        cols = np.array([position[k] for k in out["key"].tolist()])
        target = np.stack([out["conf"], out["conf_mirror"]], axis=-1).astype(np.float64)
        scores[split] = lira_scores(target, u["conf"][:, cols], u["keep"][:, cols], online=True, fixed_variance=True)
    result = scored(scores["forget"], scores["test"])
    return AttackResult({**result.metrics, "n_references": int(len(u["conf"])),
                         "n_references_failed": u["failed"], "references_unlearn_s": round(u["unlearn_s"], 3)},
                        result.member_scores, result.nonmember_scores)
