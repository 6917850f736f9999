"""Numbers over seeds: t intervals, paired differences, the ``--seeds`` table and figures."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from oneshot import runs
from oneshot.cli import compare
from oneshot.evaluation.seeds import paired_difference, seed_summary

RESULTS = Path(__file__).resolve().parents[1] / "results"
BEST_SEEDS = [RESULTS / "omniglot-best" / f"seed{i}" for i in range(3)]
WITHIN = "20-way 1-shot within-alphabet"


def test_seed_summary_uses_the_t_quantile_of_its_degrees_of_freedom():
    summary = seed_summary([1.0, 2.0, 3.0])  # sd 1, sem 1/sqrt(3), t(0.975, 2) = 4.3027
    assert summary.mean == 2.0
    assert summary.ci95 == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert seed_summary([1.0, 3.0]).ci95 == pytest.approx(12.7062 * 1.0, rel=1e-4)
    assert summary.format(100.0) == "200.0 ± 248.4"


def test_one_seed_has_no_interval_and_bad_values_are_refused():
    one = seed_summary([0.85])
    assert math.isnan(one.ci95) and one.format(100.0) == "85.0" and not one.excludes_zero()
    for bad in ([], [1.0, float("nan")]):
        with pytest.raises(ValueError, match="`values`"):
            seed_summary(bad)


def test_paired_difference_removes_what_the_seeds_share():
    # the seeds move both runs together: unpaired intervals overlap, the paired one does not
    a, b = [0.80, 0.85, 0.90], [0.79, 0.84, 0.885]
    assert seed_summary(a).mean - seed_summary(a).ci95 < seed_summary(b).mean
    difference = paired_difference(a, b)
    assert difference.mean == pytest.approx(0.0116667, abs=1e-6)
    assert difference.excludes_zero()
    with pytest.raises(ValueError, match="`baseline`"):
        paired_difference(a, b[:2])


def _columns(values: dict[str, list[float]]) -> dict[str, dict[str, dict[str, float]]]:
    return {
        name: {f"seed{i}": {WITHIN: v, "Lake runs error (%)": 10 * (1 - v)} for i, v in enumerate(vs)}
        for name, vs in values.items()
    }  # fmt: skip


def test_seeds_table_marks_only_differences_outside_the_interval():
    columns = _columns(
        {"base": [0.80, 0.85, 0.90], "better": [0.81, 0.86, 0.91], "noisy": [0.90, 0.80, 0.86]}
    )
    table = runs.seeds_table(columns, [WITHIN, "Lake runs error (%)"], baseline="base")
    rows = {line.split(" | ")[0].strip("| `"): line for line in table.splitlines()[2:]}
    assert table.splitlines()[0] == "| run | seeds | 20-way 1-shot within-alphabet | Lake error |"
    assert "85.0 ± 12.4 |" in rows["base"] and "▲" not in rows["base"]
    # higher accuracy and lower error both count as better
    assert rows["better"].count("▲") == 2 and "▼" not in rows["better"]
    assert "▲" not in rows["noisy"] and "▼" not in rows["noisy"]
    ordered = runs.seeds_table(columns, [WITHIN], order_by=WITHIN).splitlines()[2:]
    assert [line.split(" | ")[0].strip("| `") for line in ordered] == ["better", "noisy", "base"]
    by_error = runs.seeds_table(columns, [WITHIN], order_by="Lake runs error (%)").splitlines()[2:]
    assert [line.split(" | ")[0].strip("| `") for line in by_error] == ["better", "noisy", "base"]


def test_seed_columns_of_the_committed_best_runs_match_their_reports():
    columns = runs.seed_columns(BEST_SEEDS)
    assert list(columns) == ["batch-hard"]
    assert list(columns["batch-hard"]) == ["seed0", "seed1", "seed2"]
    for seed_dir in BEST_SEEDS:
        report = json.loads((seed_dir / "batch-hard" / runs.METRICS_FILE).read_text())
        column = columns["batch-hard"][seed_dir.name]
        assert column[WITHIN] == report["nway"][2]["accuracy"]
        assert column["Lake runs error (%)"] == report["lake"]["mean_error"]
        assert column["training steps"] == 6000


def test_seed_columns_skip_unfinished_runs_and_keep_seed_names(tmp_path):
    for i in (0, 2):
        shutil.copytree(BEST_SEEDS[i] / "batch-hard", tmp_path / f"seed{i}" / "batch-hard",
                        ignore=shutil.ignore_patterns("*.keras", "*.png"))  # fmt: skip
    unfinished = tmp_path / "seed1" / "batch-hard"
    unfinished.mkdir(parents=True)
    (unfinished / runs.HISTORY_FILE).write_text("step,seconds\n100,20\n")
    columns = runs.seed_columns([tmp_path / f"seed{i}" for i in range(3)])
    assert list(columns["batch-hard"]) == ["seed0", "seed2"]


def test_compare_seeds_prints_the_table_and_writes_both_figures(tmp_path, capsys):
    out = tmp_path / "best.png"
    args = ["--seeds", *map(str, BEST_SEEDS), "--out", str(out), "--baseline", "batch-hard"]
    assert compare.main(args) == 0
    printed = capsys.readouterr().out
    assert "| `batch-hard` | 3 | 3.8 ± 0.4 | 85.1 ± 0.3 |" in printed
    assert out.exists() and (tmp_path / "best-time.png").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "{tmp}/nope"], "not folders"),
        (["--seeds", "{tmp}"], "no evaluated run"),
        (["--seeds", "{seed0}", "--baseline", "zz"], "--baseline 'zz' is not an evaluated run"),
        (["{seed0}/batch-hard", "--baseline", "batch-hard"], "--baseline goes with --seeds"),
    ],
)
def test_compare_seeds_bad_input_is_one_error_line(tmp_path, capsys, args, message):
    args = [a.format(tmp=tmp_path, seed0=BEST_SEEDS[0]) for a in args]
    assert compare.main([*args, "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def _fake_run(folder: Path, within: float) -> None:
    folder.mkdir(parents=True)
    (folder / runs.HISTORY_FILE).write_text(
        f"step,seconds,monitor_20way\n500,60,{within - 0.05}\n1000,120,{within}\n"
    )
    report = {"dataset": "omniglot", "nway": [{
        "protocol": {"task": "20-way 1-shot", "n_way": 20, "k_shot": 1, "within_alphabet": True},
        "accuracy": within}]}  # fmt: skip
    (folder / runs.METRICS_FILE).write_text(json.dumps(report))


def test_compare_seeds_pairs_runs_of_two_experiments_by_seed_folder(tmp_path, capsys):
    """A lever's experiment against another experiment's baseline: seed0 with seed0, seed1
    with seed1; the monitor curves of both go into the -time figure. The same run name twice
    under one seed name is refused (one run would silently replace the other)."""
    for seed in (0, 1):
        _fake_run(tmp_path / "base" / f"seed{seed}" / "base", 0.70 + seed / 100)
        _fake_run(tmp_path / "lever" / f"seed{seed}" / "lever", 0.72 + seed / 100)
    seeds = [str(tmp_path / e / f"seed{s}") for e in ("base", "lever") for s in (0, 1)]
    out = tmp_path / "mixed.png"
    assert compare.main(["--seeds", *seeds, "--baseline", "base", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("| `lever` | 2 | 72.5 ± ") and "▲" in lines[2]
    assert lines[3].startswith("| `base` | 2 | 70.5 ± ")
    assert (tmp_path / "mixed-time.png").exists()
    _fake_run(tmp_path / "again" / "seed0" / "base", 0.9)
    args = ["--seeds", *seeds, str(tmp_path / "again" / "seed0"), "--out", str(tmp_path / "x.png")]
    assert compare.main(args) == 2
    err = capsys.readouterr().err
    assert "Run 'base' is in several seed folders of the same name" in err
    assert "Traceback" not in err and not (tmp_path / "x.png").exists()


def test_compare_seeds_of_held_out_runs_shows_the_model_beside_its_baselines(tmp_path, capsys):
    """Runs that hold out classes (mnist-few-class) have no Omniglot metric: the table leads
    with the held-out model, the untrained network and raw pixels, best model first."""
    for seed in (0, 1):
        for name, model in (("plain", 0.60 + seed / 100), ("better", 0.80 + seed / 100)):
            run = tmp_path / f"seed{seed}" / name
            run.mkdir(parents=True)
            (run / runs.HISTORY_FILE).write_text("step,seconds\n100,60\n")
            report = {
                "dataset": "mnist",
                "heldout": {
                    "protocol": {"task": "5-way 1-shot"},
                    "model": {"accuracy": model},
                    "untrained": {"accuracy": 0.42},
                    "pixels": {"accuracy": 0.50},
                },
            }
            (run / runs.METRICS_FILE).write_text(json.dumps(report))
    seeds = [str(tmp_path / "seed0"), str(tmp_path / "seed1")]
    assert compare.main(["--seeds", *seeds, "--out", str(tmp_path / "few.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "| run | seeds | held-out 5-way 1-shot: model | held-out 5-way 1-shot: untrained network "
        "| held-out 5-way 1-shot: raw pixels | training minutes |"
    )
    assert lines[2].startswith("| `better` | 2 | 80.5 ± ") and lines[3].startswith("| `plain` |")


def test_runs_are_grouped_by_loss_family_only_when_every_run_is_a_loss():
    """omniglot-losses colours and splits its figures by family; a lever against the
    batch-hard baseline (omniglot-best-30min) gets one panel, not 'tuple' and an untitled one."""
    grouping = compare.loss_family_grouping(["batch-hard", "nt-xent", "arcface"])
    assert grouping is not None
    assert [grouping(n) for n in ("batch-hard", "nt-xent", "arcface")] == [
        "tuple", "pair", "classification"
    ]  # fmt: skip
    assert compare.loss_family_grouping(["batch-hard", "w64-within-alphabet-8500"]) is None
    assert compare.loss_family_grouping(["readme", "nt-xent"]) is None
