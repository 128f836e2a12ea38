"""Scoring one model of a run: evaluate once, then accuracies and every attack from its outputs.

The scorer reads what it needs from a `bench.workspace.Workspace` (splits, batcher, reference
models) and never trains a target model. U-LiRA's references are unlearned here, on first
use, with the run's method and config (cached per method, config and forget set).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bench.api import UnlearnData
from bench.attacks import AttackInput, attack_registry, run_attacks
from bench.errors import Diverged
from bench.evaluate import accuracy_metrics, evaluate, flatten_outputs
from bench.forget import ForgetSet
from bench.methods_loader import method_registry
from bench.provenance import entry_code_hash
from bench.unlearned_references import attacked_keys, unlearned_references
from bench.workspace import Workspace


class Scorer:
    def __init__(self, ws: Workspace):
        self.ws = ws

    def score(self, model, data: UnlearnData, fs: ForgetSet, method: str, config, seed: int) -> tuple[dict, dict]:
        """(metrics, flat per-example outputs and attack scores to save) of one model.

        Raises Diverged when any output (loss, confidence) is not finite."""
        ws = self.ws
        outputs = evaluate(model, ws.eval_splits(data), ws.batcher, ws.suite.eval.batch_size)
        for split, out in outputs.items():
            if not (np.isfinite(out["loss"]).all() and np.isfinite(out["conf"]).all()):
                raise Diverged(f"outputs on the {split} split are not finite")
            out["key"] = ws.example_keys("train" if split in ("forget", "retain") else "test", out["index"])
        metrics = accuracy_metrics(outputs, fs.forgotten_class)
        metrics["mia"], scores = self.attack(outputs, fs, method, config, seed, ws.suite.attacks)
        return metrics, {**flatten_outputs(outputs), **scores}

    def attack(self, outputs: dict, fs: ForgetSet, method: str, config, seed: int, names) -> tuple[dict, dict]:
        """The named attacks on one run's outputs: ({attack: metrics incl. its code hash}, score arrays)."""
        attack_input = AttackInput(outputs, self.ws.suite.attack_settings, seed, fs.forgotten_class,
                                   self.ws.references())
        if any(attack_registry.get(a).info.needs_unlearned_references for a in names):
            attack_input = dataclasses.replace(attack_input, unlearned=self.unlearned(attack_input, method, config, fs))
        mia, scores = {}, {}
        for name, r in run_attacks(names, attack_input).items():
            mia[name] = {**r.metrics, "code": entry_code_hash(attack_registry.get(name))}
            if r.member_scores is not None:
                scores[f"attack_{name}_member"] = r.member_scores
                scores[f"attack_{name}_nonmember"] = r.nonmember_scores
        return mia, scores

    def unlearned(self, a: AttackInput, method: str, config, fs: ForgetSet):
        """U-LiRA's references unlearned with `method` (cached per method, config and forget set)."""
        ws = self.ws
        keys = attacked_keys(a.members()["key"], a.nonmembers()["key"], fs.sha256)
        entry = None if method == "original" else method_registry().get(method)
        code = entry_code_hash(entry) if entry else None
        return unlearned_references(ws.references(), ws.reference_plan(), method, entry, config, code,
                                    keys, len(fs.indices), fs.forgotten_class, fs.sha256,
                                    ws.suite.attack_settings.ulira_references, ws.context,
                                    ws.progress.run_started, ws.num_classes)

    def prepare_unlearned(self, fs: ForgetSet, method: str, config, seed: int) -> None:
        """Unlearn U-LiRA's references for a run before it is scored (a job of its own): the keys
        the attack will read are those of the forget set and the test split."""
        ws, data = self.ws, self.ws.unlearn_data(fs)
        stub = lambda split, part: {"key": ws.example_keys(part, split.index),  # noqa: E731
                                    "label": split.y.cpu().numpy()}
        a = AttackInput({"forget": stub(data.forget, "train"), "test": stub(ws.test, "test")},
                        ws.suite.attack_settings, seed, fs.forgotten_class, ws.references())
        self.unlearned(a, method, config, fs)
