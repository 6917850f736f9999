"""The lever experiments (oneshot.experiments.levers): each changes one lever of the ``omniglot-tuning`` recipe, so
that its runs compare fairly with the committed 2,500-step point."""

from __future__ import annotations

import dataclasses

from oneshot.experiments import get_experiment
from oneshot.experiments.levers import FRONTIER_STEPS


def _fields(run) -> dict:
    values = run.to_dict()
    values.pop("loss")  # compared through its config below
    return values


def test_frontier_runs_change_only_width_input_size_and_steps():
    reference = get_experiment("omniglot-tuning").runs[0]  # 'rotated': the 2,500-step point
    assert reference.name == "rotated" and reference.steps == 2500
    frontier = get_experiment("omniglot-frontier").runs
    assert [r.name for r in frontier] == [f"{n}-{s}" for n, s in FRONTIER_STEPS.items()]
    for run in frontier:
        assert run.loss.get_config() == reference.loss.get_config()
        width = int(run.name.split("-")[0][1:])
        size = 48 if "48px" in run.name else 35
        expected = dataclasses.replace(
            reference, name=run.name, steps=FRONTIER_STEPS[run.name.rsplit("-", 1)[0]],
            network_kwargs={"width": width}, image_size=size,
        )  # fmt: skip
        assert _fields(run) == _fields(expected), run.name
        assert run.validation_alphabets == 6  # the evaluation set is never used for choices


def test_alphabet_batches_change_only_the_batch_sampling():
    reference = get_experiment("omniglot-precision").runs[0]  # 'float32': the baseline
    run, long = get_experiment("omniglot-alphabet-batches").runs
    assert run.within_alphabet and not reference.within_alphabet
    expected = dataclasses.replace(reference, name=run.name, within_alphabet=True)
    assert _fields(run) == _fields(expected)
    assert run.loss.get_config() == reference.loss.get_config()
    w64 = next(r for r in get_experiment("omniglot-frontier").runs if r.name == "w64-8500")
    assert _fields(long) == _fields(dataclasses.replace(w64, name=long.name, within_alphabet=True))


def test_best_30min_is_the_validation_recipe_on_the_whole_background_set():
    validation = get_experiment("omniglot-alphabet-batches").runs[1]  # w64-within-alphabet-8500
    best = get_experiment("omniglot-best")
    (run,) = get_experiment("omniglot-best-30min").runs
    assert run.validation_alphabets == 0 and validation.validation_alphabets == 6
    assert _fields(run) == _fields(dataclasses.replace(validation, validation_alphabets=0))
    assert run.loss.get_config() == validation.loss.get_config()
    # measured like omniglot-best: Lake's runs, 400-way, MNIST transfer, the same episodes
    assert get_experiment("omniglot-best-30min").evaluation == best.evaluation
    assert _fields(best.runs[0]) == _fields(
        dataclasses.replace(run, name=best.runs[0].name, steps=6000, within_alphabet=False)
    )
