"""U-LiRA's unlearned reference models (Hayes et al., "Inexact Unlearning Needs More Careful
Evaluations to Avoid a False Sense of Privacy", 2024), produced for the `ulira` attack.

LiRA asks "was x trained on?"; after unlearning the right question is "was x trained on and
then unlearned by this method, or never trained on?". So each of the first K_u reference
models is unlearned with the method under test, on a forget set like the real one:
- the same size as the real forget set and drawn the same way: for random (and file)
  forgetting a uniform draw from the attacked examples the reference trained on, padded with
  other examples it trained on if there are too few; for class forgetting every example of
  the forgotten class it trained on;
- the attacked examples are the real forget set plus as many held-out non-members (test
  examples, of the forgotten class for class forgetting), drawn once per forget set.
Per reference and attacked example: IN = trained on and unlearned, OUT = never trained on;
an example trained on but not in that reference's forget set is neither. Each reference's
exception, if the method failed or diverged on it, is kept. Results are cached per method,
config and forget set, and shared by every seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from bench.api import UnlearnData
from bench.evaluate import per_example_outputs
from bench.execute import call_method_many, rng_states
from bench.files import npz_writer, read_checked, read_npz, write_checked
from bench.provenance import code_hash
from bench.references import ReferencePlan, References, reference_model
from bench.spec import derive_seed, stable_hash, to_jsonable


@dataclass(frozen=True)
class UnlearnedReferences:
    keys: np.ndarray  # the attacked examples
    conf: np.ndarray  # (usable references, attacked, 2): LiRA statistic, image and mirror
    in_mask: np.ndarray  # (usable references, attacked): trained on, then unlearned
    out_mask: np.ndarray  # (usable references, attacked): never trained on
    errors: tuple  # per reference (all K_u): None, or why it is not usable
    forget_sizes: tuple  # per reference: the size of its forget set
    unlearn_s: float  # wall-clock of all the unlearning calls


def attacked_keys(member_keys: np.ndarray, heldout_keys: np.ndarray, seed: str) -> np.ndarray:
    """The real forget set plus as many held-out non-members (all of them if there are fewer)."""
    rng = np.random.default_rng(derive_seed(seed, "ulira-nonmembers"))
    n = min(len(member_keys), len(heldout_keys))
    return np.concatenate([member_keys, np.sort(rng.choice(heldout_keys, n, replace=False))])


def reference_forget_rows(refs: References, plan: ReferencePlan, i: int, attacked_rows: np.ndarray,
                          forget_size: int, forget_label: int | None, seed: int) -> np.ndarray:
    """Pool rows that reference i unlearns: like the real forget set in size and composition."""
    trained = np.flatnonzero(refs.keep[i])
    if forget_label is not None:
        labels = plan.pool.y.cpu().numpy()
        return trained[labels[trained] == forget_label]
    rng = np.random.default_rng(seed)
    candidates = attacked_rows[refs.keep[i, attacked_rows]]
    if len(candidates) >= forget_size:
        return np.sort(rng.choice(candidates, forget_size, replace=False))
    others = np.setdiff1d(trained, attacked_rows)
    pad = rng.choice(others, min(forget_size - len(candidates), len(others)), replace=False)
    return np.sort(np.concatenate([candidates, pad]))


def unlearned_references(refs: References, plan: ReferencePlan, method: str, entry, config, code: str | None,
                         keys: np.ndarray,
                         forget_size: int, forget_label: int | None, forget_sha: str, k_u: int,
                         make_context: Callable, announce: Callable[[str], None],
                         num_classes: int) -> UnlearnedReferences:
    """Unlearn the first `k_u` references with method `entry` (a registry entry; None: `original`,
    never unlearned)."""
    rows = refs.rows(keys)
    what = [method, to_jsonable(config) if config is not None else {}, forget_sha, k_u, keys.tobytes().hex()]
    tag = stable_hash([*what, code, code_hash("bench.unlearned_references")])  # the cache key: code too
    draw = stable_hash([plan.seed, *what])  # the random draws: fixed by what is unlearned, not by the code
    folder = plan.folder / "ulira"
    parts = [read_checked(folder / f"{method}-{tag}-ref{i}.npz", read_npz, f"{tag}/{i}") for i in range(k_u)]
    todo = []  # the references not in the cache: unlearned in one process (`call_method_many`)
    for i in [i for i, part in enumerate(parts) if part is None]:
        forget_rows = reference_forget_rows(refs, plan, i, rows, forget_size, forget_label, derive_seed(draw, i))
        trained = np.flatnonzero(refs.keep[i])
        data = UnlearnData(plan.pool.subset(forget_rows), plan.pool.subset(np.setdiff1d(trained, forget_rows)),
                           plan.population, num_classes)
        label = f"U-LiRA reference {i + 1}/{k_u}: {method}"
        announce(label)
        model = reference_model(plan, i, make_context, announce)
        ctx = make_context(derive_seed(draw, i), label)
        todo.append((i, forget_rows, (model, data, ctx, rng_states())))
    if entry is None:  # the reference row: trained, never unlearned
        done = [(call[0], {"wall_s": 0.0}, "ok", None) for _, _, call in todo]
    else:
        done = call_method_many(entry, config, [call for _, _, call in todo])
    for (i, forget_rows, (_, _, ctx, _)), (model, cost, status, error) in zip(todo, done):
        conf = mirror = np.full(len(rows), np.nan, np.float32)
        if status == "ok":
            out = per_example_outputs(model, plan.pool.subset(rows), ctx.batcher, plan.eval_batch)
            conf, mirror = out["conf"], out["conf_mirror"]
            if not (np.isfinite(conf).all() and np.isfinite(mirror).all()):
                error = "outputs are not finite"
        parts[i] = dict(conf=conf, conf_mirror=mirror, unlearned=np.isin(rows, forget_rows),
                        forget_size=len(forget_rows), wall_s=cost.get("wall_s", 0.0),
                        error=np.array(error or (status if status != "ok" else "")))
        write_checked(folder / f"{method}-{tag}-ref{i}.npz", npz_writer(parts[i]), f"{tag}/{i}")
    usable = [i for i, p in enumerate(parts) if not str(p["error"])]
    stacked = lambda values, shape: np.stack(values) if values else np.zeros((0, *shape))  # noqa: E731
    return UnlearnedReferences(
        keys=keys,
        conf=stacked([np.stack([parts[i]["conf"], parts[i]["conf_mirror"]], -1) for i in usable],
                     (len(rows), 2)).astype(np.float64),
        in_mask=stacked([parts[i]["unlearned"] for i in usable], (len(rows),)).astype(bool),
        out_mask=~refs.keep[usable][:, rows],
        errors=tuple(str(p["error"]) or None for p in parts),
        forget_sizes=tuple(int(p["forget_size"]) for p in parts),
        unlearn_s=float(sum(float(p["wall_s"]) for p in parts)))
