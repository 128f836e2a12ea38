"""One forward pass per split -> per-example outputs -> accuracies.

Per example we keep the loss, the logit-scaled confidence log p_y - log(1 - p_y) (computed in
float64 from the logits, stable for p near 0 and 1) for the image and for its mirror image
(LiRA queries both), the prediction, the label and the index. The true-class probability is
exp(-loss). Every metric and attack reads these arrays only.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.data import Batcher, Split

SPLITS = ("forget", "retain", "val", "test")


def logit_confidence(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p_y - log sum_{j != y} p_j, log p_y) in float64: LiRA's statistic and minus the loss."""
    logp = torch.log_softmax(logits.double(), dim=1)
    logp_y = logp.gather(1, y[:, None]).squeeze(1)
    others = logp.scatter(1, y[:, None], float("-inf"))
    return logp_y - torch.logsumexp(others, dim=1), logp_y


@torch.inference_mode()
def per_example_outputs(model, split: Split, batcher: Batcher, batch_size: int) -> dict[str, np.ndarray]:
    """The per-example outputs of `model` on `split` (n examples), in the split's order: the public
    contract every metric and attack reads, saved beside each record (`<split>_<field>` in the .npz).

    - loss: float32 (n,), cross-entropy in nats (= -log p_y; the true-class probability is exp(-loss))
    - conf: float32 (n,), logit-scaled confidence log p_y - log(1 - p_y) in nats
    - conf_mirror: float32 (n,), the same for the horizontally flipped image
    - pred: int16 (n,), argmax class; label: int16 (n,), true class
    - index: int32 (n,), the example's index in its dataset part (train or test images)
    The scorer adds key: int64 (n,), one id per example across parts (`Workspace.example_keys`)."""
    model.eval()
    losses, confs, mirrors, preds = [], [], [], []
    for x, y in batcher.batches(split, batch_size):
        logits = model(x)
        conf, logp_y = logit_confidence(logits, y)
        confs.append(conf)
        mirrors.append(logit_confidence(model(x.flip(-1)), y)[0])
        losses.append(-logp_y)
        preds.append(logits.argmax(1))
    cat = lambda parts, dtype: torch.cat(parts).cpu().numpy().astype(dtype)  # noqa: E731
    return {
        "loss": cat(losses, np.float32),
        "conf": cat(confs, np.float32),
        "conf_mirror": cat(mirrors, np.float32),
        "pred": cat(preds, np.int16),
        "label": split.y.cpu().numpy().astype(np.int16),
        "index": split.index.astype(np.int32),
    }


def evaluate(model, splits: dict[str, Split], batcher: Batcher, batch_size: int):
    return {name: per_example_outputs(model, splits[name], batcher, batch_size) for name in SPLITS}


def accuracy(out: dict[str, np.ndarray]) -> float:
    return float(np.mean(out["pred"] == out["label"])) if len(out["label"]) else float("nan")


def accuracy_metrics(outputs: dict[str, dict[str, np.ndarray]], forget_label: int | None) -> dict:
    """forget/retain/val/test accuracy; for class forgetting also test accuracy split by class."""
    metrics = {f"{name}_acc": accuracy(outputs[name]) for name in SPLITS}
    if forget_label is not None:
        test = outputs["test"]
        is_forgotten = test["label"] == forget_label
        keep = lambda mask: {k: v[mask] for k, v in test.items()}  # noqa: E731
        metrics["test_acc_remaining"] = accuracy(keep(~is_forgotten))
        metrics["test_acc_forgotten"] = accuracy(keep(is_forgotten))
    return metrics


COLLAPSE_SHARE = 0.9  # a model predicting one class for this share of the retain set has collapsed
CHANCE_MARGIN = 0.05  # retain accuracy within this of chance (1 / classes) is at chance


def collapse_reason(retain: dict[str, np.ndarray], num_classes: int) -> str | None:
    """Why a model's retain outputs show a collapsed model (None if they do not): one class
    predicted for nearly all retain examples, or retain accuracy at chance."""
    preds = retain["pred"].astype(np.int64)
    counts = np.bincount(preds, minlength=num_classes)
    share = counts.max() / max(len(preds), 1)
    if share >= COLLAPSE_SHARE:
        return f"collapsed: predicts class {int(counts.argmax())} for {share:.0%} of the retain set"
    acc = accuracy(retain)
    if acc <= 1 / num_classes + CHANCE_MARGIN:
        return f"collapsed: retain accuracy {acc:.1%} is at chance ({1 / num_classes:.0%})"
    return None


def flatten_outputs(outputs: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """{"forget": {"loss": ...}} -> {"forget_loss": ...}, the layout of the saved .npz."""
    return {f"{split}_{key}": arr for split, d in outputs.items() for key, arr in d.items()}


def outputs_of(flat: dict[str, np.ndarray], split: str) -> dict[str, np.ndarray]:
    """One split's arrays from the flat layout."""
    return {k[len(split) + 1:]: v for k, v in flat.items() if k.startswith(split + "_")}


def unflatten_outputs(flat) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in flat:
        split, _, name = key.partition("_")
        out.setdefault(split, {})[name] = flat[key]
    return out
