"""What `unlearn-bench reproduce` prints after the rerun: each record that is not exact, the code
and hardware differences, the board's conclusions, and the verdict line."""

from __future__ import annotations

from pathlib import Path

from bench import forget_quality_runs
from bench.conclusions import conclusions, stale_board
from bench.checkout import git
from bench.environment import hardware_note
from bench.reproduce import LEVELS, hashed_files, same_hardware, summary, verdicts
from bench.store import load_records


def report(published: list[dict], every_published: list[dict], rerun_dir: Path, tolerance: float,
           unreadable: list[str] = (), board_file: tuple | None = None) -> tuple[bool, str]:
    """Print what moved (records by level, the hardware, the code, the board); (passed, the verdict
    line). `board_file`: (published results folder, its leaderboard file, suite), checked too."""
    results = verdicts(published, every_published, rerun_dir, tolerance, list(unreadable),
                       board_file[0] if board_file else None)
    for v in results:
        if v.level != "exact":
            more = f" (and {len(v.differences) - 3} more)" if len(v.differences) > 3 else ""
            label = "DIFFERS" if v.level == "differs" else v.level
            worst = sorted(v.differences, key=lambda d: -LEVELS.index(d.level))  # what set the level first
            print(f"  {label}: {v.record}: {'; '.join(map(str, worst[:3]))}{more}")
    rerun = load_records(rerun_dir)
    top = Path(git("rev-parse", "--show-toplevel") or ".")
    for commit in sorted({(r.get("env") or {}).get("git_sha") or "unknown" for r in published}):
        changed = sorted(set(git("diff", "--name-only", commit, "HEAD").splitlines()) & hashed_files(top))
        if commit == "unknown" or changed:
            print(f"  code: {', '.join(changed[:3]) or 'the code'} changed since commit {commit[:10]}, which made "
                  "published records: the models or the attacks' reference models can differ")
    by_name = {Path(r["_file"]).name: r for r in rerun}
    pairs = [(p, by_name[Path(p["_file"]).name]) for p in published if Path(p["_file"]).name in by_name]
    same = bool(pairs) and all(same_hardware(p, r) for p, r in pairs)
    note = (hardware_note(published, rerun)
            or "the same fingerprint, but other threads, torch or device than the publisher")
    print(f"  hardware: {'the same fingerprint as the publisher: only exact numbers pass' if same else note}")
    board = conclusions(published, every_published, rerun, same, all(v.passed for v in results))
    for c in board:
        if not c.holds:
            print(f"  board DIFFERS: {c}")
    held = all(c.holds for c in board)
    if board_file is not None and not board_file[1].is_file():
        print(f"  board DIFFERS: no published leaderboard at {board_file[1]} (regenerate it with `unlearn-bench "
              "leaderboard`, or name it with --leaderboard)")
        held = False
    elif board_file is not None:
        stale = stale_board(*board_file)
        for title in stale:
            print(f"  board DIFFERS: {board_file[1]}: section '{title[3:]}' is not what the published records give "
                  "(edited by hand? regenerate it with `unlearn-bench leaderboard`)")
        held &= not stale
    sets = forget_quality_runs.compare_sets(board_file[0], rerun_dir, board_file[2]) if board_file else []
    for name, exact in sets:
        if not exact:
            print(f"  {'DIFFERS' if same else 'another draw'}: {name}: the forget-quality set's arrays are not bit-equal"
                  + ("; same hardware fingerprint: must be" if same else " (other kernels); its board cell is judged "
                     "by its sampling error"))
    sets_passed = not same or all(exact for _, exact in sets)
    cells = sum(c.what != "place" for c in board)
    fq = f"; {len(sets)} forget-quality sets, {sum(e for _, e in sets)} exact" if sets else ""
    verdict = (f"{summary(results)}{fq}; the published board's conclusions {'reproduced' if held else 'did NOT reproduce'} "
               f"({cells} headline cells, {len(board) - cells} place{'' if len(board) - cells == 1 else 's'})")
    return all(v.passed for v in results) and held and sets_passed, verdict
