"""The loss-family comparison's experiments (oneshot.experiments.losses)."""

from __future__ import annotations

import keras

import oneshot.losses as losses
from oneshot.experiments import get_experiment
from oneshot.experiments.losses import CHOSEN, FAMILIES, FAMILY, TUNING_STEPS, tuning_run_name
from oneshot.training.configs import RunConfig

# every in-batch loss class the comparison must train (issue: "every loss above ... trained")
IN_BATCH = {
    "TripletMarginLoss", "ContrastiveLoss", "QuadrupletLoss", "LiftedStructureLoss",
    "GeneralizedLiftedStructureLoss", "MultiSimilarityLoss", "MarginLoss", "NPairsLoss",
    "NTXentLoss", "SupConLoss", "CircleLoss", "NormalizedSoftmaxLoss", "CosFaceLoss", "ArcFaceLoss",
    "SubCenterArcFaceLoss", "SphereFaceLoss", "ProxyAnchorLoss", "ProxyNCALoss", "SoftTripleLoss",
}  # fmt: skip


def test_every_loss_family_is_compared_once():
    classes = [type(f.make(f.default)).__name__ for f in FAMILIES]
    assert sorted(classes) == sorted(IN_BATCH)
    assert len(FAMILY) == len(FAMILIES)
    for name in IN_BATCH:
        assert hasattr(losses, name)
    assert losses.KerasCircleLoss is keras.losses.Circle


def test_every_loss_has_the_same_grid_size_around_its_default():
    for family in FAMILIES:
        assert len(family.grid) == 3 and len(set(family.grid)) == 3, family.name
        assert min(family.grid) <= family.default <= max(family.grid), family.name
    assert FAMILY["sphereface"].default == 4  # Liu et al.'s m, at the grid's end
    assert FAMILY["arcface"].make(0.3).margin == 0.3


def test_tuning_runs_hold_out_alphabets_and_differ_only_in_the_loss():
    tuning = get_experiment("omniglot-losses-tuning")
    assert len(tuning.runs) == 3 * len(FAMILIES)
    assert len({r.name for r in tuning.runs}) == len(tuning.runs)
    assert not tuning.evaluation.lake_runs and not tuning.evaluation.mnist_transfer
    common = None
    for run in tuning.runs:
        assert run.validation_alphabets == 6 and run.steps == TUNING_STEPS
        fields = run.to_dict()
        for key in ("name", "loss", "network_kwargs", "learning_rate"):
            fields.pop(key)
        assert common is None or fields == common
        common = fields
    npairs = [r for r in tuning.runs if r.name.startswith("n-pairs-")]
    assert [r.learning_rate for r in npairs] == list(FAMILY["n-pairs"].grid)
    assert tuning_run_name(FAMILY["arcface"], 0.3) == "arcface-margin=0.3"


def test_comparison_uses_the_chosen_values_on_the_evaluation_set():
    comparison = get_experiment("omniglot-losses")
    assert [r.name for r in comparison.runs] == [f.name for f in FAMILIES]
    assert comparison.evaluation.lake_runs and comparison.evaluation.mnist_transfer
    for run in comparison.runs:
        assert run.validation_alphabets == 0
        assert RunConfig.from_dict(run.to_dict()) == run  # the config.json round trip
    for name, value in CHOSEN.items():
        assert value in FAMILY[name].grid


def test_chosen_values_are_the_argmax_of_the_committed_tuning_runs():
    from pathlib import Path

    from oneshot.experiments.losses import choose, tuning_scores

    tuning = Path(__file__).resolve().parents[1] / "results" / "omniglot-losses-tuning"
    chosen = choose(tuning_scores(tuning))
    assert CHOSEN == chosen, "update CHOSEN in oneshot/experiments/losses.py from the tuning runs"
    assert set(CHOSEN) == set(FAMILY), "every loss is tuned on its whole grid"


def test_tuning_table_shows_every_grid_value_and_the_chosen_one(tmp_path):
    import json
    import shutil
    from pathlib import Path

    from oneshot.experiments.losses import tuning_table

    tuning = Path(__file__).resolve().parents[1] / "results" / "omniglot-losses-tuning"
    rows = {
        line.split(" | ")[0].strip("| `"): line for line in tuning_table(tuning).splitlines()[2:]
    }
    assert list(rows) == [f.name for f in FAMILIES]
    report = json.loads((tuning / "margin-beta=0.8" / "metrics.json").read_text())
    within = [
        t
        for t in report["nway"]
        if t["protocol"]["n_way"] == 20 and t["protocol"]["within_alphabet"]
    ]
    expected = f"beta=0.8: {100 * within[0]['accuracy']:.1f} ± {100 * within[0]['ci95']:.1f}"
    assert expected in rows["margin"] and rows["margin"].endswith("| 0.8 |")
    # a missing run shows as "-" (the table can be read while the grid runs)
    partial = tmp_path / "tuning"
    shutil.copytree(tuning / "margin-beta=0.8", partial / "margin-beta=0.8",
                    ignore=shutil.ignore_patterns("*.keras", "*.png"))  # fmt: skip
    margin = [line for line in tuning_table(partial).splitlines() if line.startswith("| `margin`")]
    assert "beta=1.2: -" in margin[0] and expected in margin[0]


def test_choose_takes_the_best_value_of_complete_grids_only():
    from oneshot.experiments.losses import choose

    scores = {
        "arcface": {0.3: 0.5, 0.5: 0.7, 0.7: 0.6},
        "cosface": {0.2: 0.9, 0.35: 0.8},  # incomplete grid: no choice yet
        "supcon": {0.05: 0.6, 0.1: 0.6, 0.2: 0.6},  # a tie: the paper's value
        "lifted": {0.5: 0.7, 1.0: 0.6, 2.0: 0.7},  # a tie without it: the smaller value
    }
    assert choose(scores) == {"arcface": 0.5, "supcon": 0.1, "lifted": 0.5}
