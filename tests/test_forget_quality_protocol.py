"""Forget quality by the NeurIPS 2023 challenge's protocol: N unlearning runs from one original
model against N retrains, where a suite asks for it (`forget_quality.models`)."""

from pathlib import Path

import numpy as np
import pytest

from bench.conclusions import _cell
from bench.forget_quality_runs import load_sets
from bench.store import load_records
from conftest import TINY_SUITE

N = 4
ONE_SEED = TINY_SUITE.replace("seeds: [0, 1]", f"seeds: [1, 0]\nforget_quality: {{models: {N}}}").replace(
    "  gradient_ascent: {epochs: 1, lr: 1.0e-3, batch_size: 64}\n", "  explodes: {}\n")
EXPLODES = '''
from bench.api import register_method

@register_method("explodes")
def explodes(model, data, cfg, ctx):
    """Raises, to test that a failed run counts as doing nothing."""
    raise RuntimeError("boom")
'''


@pytest.fixture
def published(cli, tiny_suite, tmp_path, forget_plugins):
    (tmp_path / "explodes.py").write_text(EXPLODES)
    suite = tiny_suite(ONE_SEED)
    code, out, err = cli("run", suite, "--quiet", "--plugin", tmp_path / "explodes.py")
    assert code == 0, err
    return suite, out


def test_n_runs_from_the_first_seeds_original_and_doing_nothing_scores_zero(published, cli, tmp_path):
    suite, out = published
    assert f"4 forget-quality sets of {N} runs" in out
    folder = Path("results/tiny/random-10pct/forget-quality")
    records = load_records(Path("results"))
    assert not [r for r in records if "forget-quality" in r["_file"]]  # sets are not sweep records
    sets = {record["method"]: (record, arrays) for record, arrays in load_sets(records).values()}
    assert sorted(sets) == ["explodes", "finetune", "original", "retrain"]
    for method, (record, arrays) in sets.items():
        assert record["seed"] == 1 and record["models"] == N  # the suite's first seed
        assert arrays["phi"].shape == (N, 126) and arrays["phi"].dtype == np.float32
        assert (folder / f"{method}-{record['config_hash'][:8]}-n{N}-seed1.json").is_file()
    phi = {m: a["phi"] for m, (_, a) in sets.items()}
    assert len({row.tobytes() for row in phi["finetune"]}) == N  # N unlearning seeds: N models
    assert len({row.tobytes() for row in phi["retrain"]}) == N
    assert len({row.tobytes() for row in phi["original"]}) == 1  # one model, N times
    # a run that fails leaves the user with the original model: its rows are the original's
    assert sets["explodes"][0]["outcomes"] == ["failed"] * N
    assert np.array_equal(phi["explodes"], phi["original"])
    board = Path("leaderboard.md").read_text()
    rows = {line.split("|")[2].strip(): line for line in board.splitlines() if line.startswith("| ")}
    header = next(line for line in board.splitlines() if line.startswith("| Rank"))
    col = [c.strip() for c in header.split("|")].index("Forget quality ↑")
    cell = lambda m: rows[m].split("|")[col].strip()  # noqa: E731
    assert cell("original (reference)") == "0.000" and cell("explodes") == "0.000"
    assert cell("retrain (reference)") == "—" and float(cell("finetune")) >= 0
    assert f"{N} runs of each method from seed 1's original model" in board
    assert "`explodes` 4 (4 failed)" in board and "null ceiling" in board
    code, out, err = cli("run", suite, "--quiet", "--plugin", tmp_path / "explodes.py")  # resumes: nothing again
    assert code == 0 and "0 forget-quality sets" in out
    lost = next(folder.glob("finetune-*.npz"))  # a set whose arrays are gone is moved aside and done again
    lost.unlink()
    code, out, err = cli("run", suite, "--quiet", "--plugin", tmp_path / "explodes.py")
    assert code == 0, err
    assert "1 forget-quality sets" in out and lost.is_file() and "moved aside" in err


@pytest.mark.slow
def test_a_suite_without_the_protocol_says_why_its_board_has_no_forget_quality(cli, tiny_suite):
    code, _, err = cli("run", tiny_suite(TINY_SUITE.replace("seeds: [0, 1]", "seeds: [0]")), "--quiet",
                       "--methods", "finetune")
    assert code == 0, err
    board = Path("leaderboard.md").read_text()
    assert "Forget quality ↑" not in board
    assert "Forget quality (NeurIPS 2023): not run for this suite (it sets no `forget_quality.models`)" in board
    assert not list(Path("results").rglob("forget-quality"))


@pytest.mark.parametrize("models", [1, 2])
def test_too_few_models_are_refused_in_one_line(cli, tiny_suite, models):
    code, out, err = cli("run", tiny_suite(TINY_SUITE + f"forget_quality: {{models: {models}}}\n"), "--quiet")
    assert code != 0 and "forget_quality.models" in err and "at least 3" in err
    assert len(err.strip().splitlines()) == 1 and not Path("results").exists()


@pytest.mark.parametrize("published_fq, rerun_fq, same, level", [
    (0.20, 0.20, True, "printed equal"),
    (0.20, 0.21, True, "differs"),  # same fingerprint: only equal cells hold
    (0.20, 0.21, False, "within its sampling error"),  # 0.01 against a bound of 2.8 x 0.0141
    (0.20, 0.30, False, "differs"),
])
def test_a_forget_quality_cell_is_another_draw_only_within_its_sampling_error(published_fq, rerun_fq, same, level):
    row = {"forget_quality": published_fq, "forget_quality_se": 0.01}
    other = {"forget_quality": rerun_fq, "forget_quality_se": 0.01}
    assert _cell("s", "m", "forget_quality", row, other, {}, None, 10, same, True).level == level


@pytest.mark.slow
def test_reproduce_reruns_the_sets_and_a_changed_array_fails(published, tmp_path):
    from test_reproduce import _reproduce

    suite, _ = published
    code, out, err = _reproduce(suite, tmp_path / "s1", "--plugin", tmp_path / "explodes.py")
    assert code == 0, out + err
    assert "4 forget-quality sets, 4 exact" in out
    target = next(Path("results/tiny/random-10pct/forget-quality").glob("finetune-*.npz"))
    arrays = dict(np.load(target))
    arrays["phi"][0, 0] += 1e-3
    np.savez_compressed(target, **arrays)
    code, out, err = _reproduce(suite, tmp_path / "s2", "--plugin", tmp_path / "explodes.py")
    assert code != 0
    assert f"DIFFERS: tiny/random-10pct/forget-quality/{target.stem}.json" in out and "3 exact" in out
