"""Influence unlearning (methods/influence.py): the official WoodFisher recursion and its step."""

import copy
import dataclasses

import pytest
import torch

from bench.checks import TINY_SUITE
from bench.progress import Progress
from bench.suites import load_suite
from bench.workspace import Folders, Workspace
from methods.influence import InfluenceConfig, influence, update_direction, woodfisher


def test_woodfisher_recursion_by_hand_and_stops_after_n_plus_two_samples():
    # N = 1: g0 only seeds o = [1, 0]; g1 = [1, 1]: o.g = 1, k.g = 1, k -= 1/2 o -> [0.5, 0], o -> [0.5, 0];
    # g2 = [2, 0]: o.g = 1, k.g = 1, k -= 1/2 o -> [0.25, 0]; index 2 > N: stop, g3 is never read.
    grads = [torch.tensor(g) for g in ([1.0, 0.0], [1.0, 1.0], [2.0, 0.0], [1.0, 0.0])]
    read = []
    seen = (read.append(g) or g for g in grads)
    got = woodfisher(torch.tensor([1.0, 0.0]), seen, n=1)
    assert torch.allclose(got, torch.tensor([0.25, 0.0]))
    assert len(read) == 3


def test_woodfisher_is_exact_sherman_morrison_when_all_gradients_coincide():
    # With g_k = g for all k the recursion computes (I + (m / N) g g^T)^-1 v exactly, m = samples after the first.
    gen = torch.Generator().manual_seed(0)
    v, g = torch.randn(6, generator=gen, dtype=torch.float64), torch.randn(6, generator=gen, dtype=torch.float64)
    n, m = 10, 7
    got = woodfisher(v, [g] * (m + 1), n)
    fisher = torch.eye(6, dtype=torch.float64) + (m / n) * torch.outer(g, g)
    assert torch.allclose(got, torch.linalg.solve(fisher, v))


def test_update_direction_scales_as_the_official_code():
    # forget_grad / (n_f + n_r) - retain_grad * n_f / ((n_f + n_r) * n_r), from the sums of per-sample gradients
    v = update_direction(torch.tensor([4.0, 8.0]), torch.tensor([12.0, 24.0]), n_forget=1, n_retain=3)
    assert torch.allclose(v, torch.tensor([4 / 4 - 12 / 12, 8 / 4 - 24 / 12]))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The contract's digits problem with an untrained MLP (nothing to train: the step is checked, not its effect)."""
    root = tmp_path_factory.mktemp("influence")
    (root / "suite.yaml").write_text(TINY_SUITE)
    ws = Workspace(load_suite(str(root / "suite.yaml")),
                   Folders(results_dir=root / "r", cache_dir=root / "c", progress=Progress(enabled=False)))
    torch.manual_seed(0)
    return ws, ws.new_model(), ws.unlearn_data(ws.forget_set(ws.suite.forget_sets[0]))


def test_one_step_linear_in_alpha_and_the_same_for_every_seed(tiny):
    ws, original, data = tiny

    def delta(alpha, seed):
        cfg = dataclasses.replace(InfluenceConfig(), alpha=alpha, fisher_n=20, batch_size=64)
        model = influence(copy.deepcopy(original), data.private_copy(), cfg, ws.context(seed, "influence"))
        return torch.cat([(a - b).flatten() for a, b in zip(model.parameters(), original.parameters())])

    one, two, other_seed = delta(1.0, 0), delta(2.0, 0), delta(1.0, 5)
    assert one.abs().max() > 0
    assert torch.allclose(two, 2 * one, rtol=1e-4, atol=1e-7)
    assert torch.equal(one, other_seed)  # no randomness: unshuffled, un-augmented gradients
