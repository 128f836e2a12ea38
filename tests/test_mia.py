import numpy as np
import pytest

from bench.attacks.base import balanced_sample
from bench.attacks.population import simple_mia_scores


def test_separable_losses_are_fully_recognised():
    members = np.full(100, 0.01) + np.linspace(0, 0.01, 100)
    nonmembers = np.full(100, 2.0) + np.linspace(0, 0.5, 100)
    scores = simple_mia_scores(members, nonmembers)
    assert scores["accuracy"] == 1.0 and scores["auc"] == 1.0


def test_identical_losses_give_chance_exactly():
    # Every held-out fold holds 10 of 200 balanced examples (5 + 5); with one loss value
    # for everybody the attack can only predict one class, so accuracy is exactly 0.5.
    scores = simple_mia_scores(np.ones(100), np.ones(100))
    assert scores["accuracy"] == 0.5 and scores["auc"] == 0.5


def test_same_distribution_is_near_chance():
    rng = np.random.default_rng(0)
    scores = simple_mia_scores(rng.exponential(1.0, 2000), rng.exponential(1.0, 2000))
    assert abs(scores["accuracy"] - 0.5) < 0.03 and abs(scores["auc"] - 0.5) < 0.05


def test_one_member_on_the_wrong_side():
    # 99 members at loss 0, one at loss 5; all non-members at loss 5. Logistic regression puts
    # the threshold between 0 and 5; each fold's accuracy is then 1 unless the odd member is in it
    # (then 19/20). StratifiedShuffleSplit(10, random_state=0) is deterministic, so compute the
    # expected mean from the folds directly.
    from sklearn.model_selection import StratifiedShuffleSplit

    members = np.zeros(100)
    members[37] = 5.0
    nonmembers = np.full(100, 5.0)
    y = np.r_[np.ones(100), np.zeros(100)].astype(int)
    folds = StratifiedShuffleSplit(n_splits=10, random_state=0).split(np.zeros((200, 1)), y)
    expected = np.mean([1.0 - (37 in test) / len(test) for _, test in folds])
    assert simple_mia_scores(members, nonmembers)["accuracy"] == pytest.approx(expected)


def test_larger_group_is_subsampled_to_balance():
    m, n = balanced_sample(np.arange(50.0), np.arange(500.0))
    assert len(m) == len(n) == 50 and len(np.unique(n)) == 50
    scores = simple_mia_scores(np.zeros(50), np.ones(500))
    assert scores["n_members"] == scores["n_nonmembers"] == 50
