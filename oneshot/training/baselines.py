"""Did training help? The trained model against two baselines on the same held-out episodes.

On few training classes a trained network can do worse on new classes than the same network
untrained, or than raw pixels (measured: a batch-hard conv4 trained on 5 classes of a 28x28
set, 53-57% 5-way 1-shot on 5 unseen classes against 60% untrained). So a run that holds out
classes also scores, on the very same episodes of those classes:

- ``untrained``: the run's network with the weights it had before the first step (same seed;
  saved by the runner as ``untrained.weights.h5`` in the run folder before training); for a run
  started from a pretrained network (``init_from``), that network: did training on the run's
  classes improve on it?
- ``pixels``: the images themselves, flattened, compared by Euclidean distance.

The model beats a baseline when the 95% confidence interval of the per-episode accuracy
difference (paired: same episodes) lies above zero. A model that does not beat both, or a
result measured on 2-way episodes (chance 50%), gets a warning (:func:`baseline_warning`),
which ``python -m oneshot.train`` prints and ``metrics.json`` keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from oneshot.data.datasets import LabelledImages
from oneshot.data.splits import class_names
from oneshot.distances import LpDistance
from oneshot.evaluation.episodes import (
    OneShotResult,
    evaluate_episodes,
    mean_ci95,
    sample_episodes,
)
from oneshot.evaluation.scoring import Scorer
from oneshot.training.callbacks import episode_task

UNTRAINED_FILE = "untrained.weights.h5"
SHOWN_NAMES = 8  # held-out class names printed in a line (all are in metrics.json)
BASELINES = {"untrained": "the untrained network", "pixels": "raw pixels"}  # name: label


def save_untrained(model: keras.Model, run_dir: Path) -> None:
    """Save ``model``'s weights before training, once per run (a resumed run rebuilds the same
    initial weights from its seed and keeps the first file)."""
    path = Path(run_dir) / UNTRAINED_FILE
    if not path.exists():
        model.save_weights(path)


def load_untrained(model: keras.Model, run_dir: Path) -> keras.Model | None:
    """``model`` (a freshly built model of the run's config) with the run's initial weights,
    or None if the run saved none."""
    path = Path(run_dir) / UNTRAINED_FILE
    if not path.exists():
        return None
    model.load_weights(path)
    return model


def pixel_scorer(input_shape: tuple[int, ...]) -> Scorer:
    """A scorer whose embedding is the image itself, flattened, with Euclidean distance."""
    inputs = keras.Input(input_shape)
    flatten = keras.Model(inputs, keras.layers.Flatten()(inputs), name="pixels")
    return Scorer(flatten, distance=LpDistance())


def paired_margin(model: OneShotResult, baseline: OneShotResult) -> dict[str, Any]:
    """Mean per-episode accuracy difference (model - baseline) with its 95% CI, and whether the
    model beats the baseline (the whole interval above zero)."""
    difference, ci95 = mean_ci95(model.episode_accuracies - baseline.episode_accuracies)
    return {"difference": difference, "ci95": ci95, "beaten": bool(difference - ci95 > 0)}


def compare_on_held_out(
    scorers: Mapping[str, Scorer],
    data: LabelledImages,
    episodes: int = 1000,
    seed: int = 0,
    split: str | None = None,
    embeddings: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Score ``scorers["model"]`` and the baselines (``"untrained"``, ``"pixels"``, those
    given) on one draw of 1-shot episodes of ``data``'s classes.

    Args:
        scorers: ``"model"`` and any of ``BASELINES``.
        data: the held-out classes (``alphabets`` used for within-group episodes).
        episodes: episodes drawn. Defaults to 1000.
        seed: the draw. Defaults to 0.
        split: the split name recorded in the protocol. Defaults to None.
        embeddings: embeddings already computed, by scorer name. Defaults to None.

    Returns:
        ``{"protocol", "model", <baseline>..., "vs_<baseline>"..., "warning"}``: the protocol
        names the held-out classes (``class_names``); each result's ``to_dict()``, each
        :func:`paired_margin`, and the warning (:func:`baseline_warning`).
    """
    groups = getattr(data, "alphabets", None)
    n_way, within = episode_task(data.labels, groups)
    drawn = sample_episodes(data.labels, n_way, 1, 1, episodes, groups, within, seed)
    results = {}
    for name, scorer in scorers.items():
        embedded = (embeddings or {}).get(name)
        embedded = scorer.embed(data.images) if embedded is None else embedded
        results[name] = evaluate_episodes(scorer, embedded, drawn, split=split)
    present = np.unique(data.labels)
    names = class_names(data)
    report: dict[str, Any] = {
        "protocol": {
            **drawn.protocol,
            "split": split,
            "classes": len(present),
            "class_names": [names[c] for c in present],
        }
    }
    report.update({name: result.to_dict() for name, result in results.items()})
    for name in BASELINES:
        if name in results:
            report[f"vs_{name}"] = paired_margin(results["model"], results[name])
    report["warning"] = baseline_warning(report)
    return report


def _task(report: Mapping[str, Any]) -> str:
    p = report["protocol"]
    within = " within-group" if p["within_alphabet"] else ""
    where = " (test split)" if report.get("evaluation_split") == "test" else ""
    names = p.get("class_names") or []
    shown = ", ".join(names[:SHOWN_NAMES]) + (" ..." if len(names) > SHOWN_NAMES else "")
    named = f" ({shown})" if names else ""
    return (
        f"{p['classes']} held-out classes{named}{where}, {p['task']}{within}, "
        f"{p['episodes']} episodes"
    )


def _pretrained(report: Mapping[str, Any]) -> bool:
    """Whether the ``untrained`` baseline is a pretrained network (the run's ``init_from``)."""
    return isinstance(report.get("untrained_weights"), Mapping)


def _labels(report: Mapping[str, Any]) -> dict[str, str]:
    start = "pretrained start" if _pretrained(report) else "untrained"
    return {"model": "trained", "untrained": start, "pixels": "raw pixels"}


def _scores(report: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{label} {report[name]['accuracy']:.1%} ± {100 * report[name]['ci95']:.1f}"
        for name, label in _labels(report).items()
        if name in report
    )


def _margins(report: Mapping[str, Any]) -> str:
    labels = _labels(report)
    return ", ".join(
        f"vs {labels[name]} {100 * report[f'vs_{name}']['difference']:+.1f} ± "
        f"{100 * report[f'vs_{name}']['ci95']:.1f} points"
        for name in BASELINES
        if f"vs_{name}" in report
    )


NARROW_WAYS = 2  # episodes this narrow say little: chance is 1/2, one pair of classes decides


def baseline_warning(report: Mapping[str, Any]) -> str | None:
    """The warning for a :func:`compare_on_held_out` report, or None when the model beats both
    baselines on episodes wider than 2-way:

    - a baseline the model does not beat (the 95% CI of the paired difference not above zero),
      or one that was not measured (no untrained weights), is named with the scores;
    - 2-way episodes (two held-out classes) are named too: chance is 50% and a single pair of
      classes decides the result, so it says little about new classes.
    """
    missing = [name for name in BASELINES if f"vs_{name}" not in report]
    lost = [
        name for name in BASELINES if name not in missing and not report[f"vs_{name}"]["beaten"]
    ]
    names = dict(BASELINES)
    if _pretrained(report):
        names["untrained"] = "the pretrained network it started from"
    parts = []
    if report.get("kept_start"):
        parts.append(
            "no checkpoint beat the start on the held-out monitor, so the run kept the weights "
            "it started from (step 0): training on these classes did not help. Try another "
            "start (--init-from) or more classes."
        )
    if lost:
        parts.append(
            f"the trained model does not beat {' nor '.join(names[n] for n in lost)} on "
            f"{_task(report)} ({_scores(report)}; the model beats a baseline when the 95% CI of "
            "their per-episode difference is above zero). Training did not transfer to unseen "
            "classes: try more classes, fewer steps, or another recipe."
        )
    if missing:
        parts.append(
            f"the trained model was not compared with {' nor '.join(names[n] for n in missing)} "
            "(not measured), so nothing shows that training helped."
        )
    n_way = report["protocol"].get("n_way")
    if n_way is not None and n_way <= NARROW_WAYS:
        parts.append(
            f"measured on {n_way}-way episodes of {report['protocol']['classes']} held-out "
            f"classes: chance is {1 / n_way:.0%} and one pair of classes decides the result, so "
            "it says little about new classes. Hold out more classes (add class folders) for "
            "wider episodes."
        )
    return " Also, ".join(parts) or None


def comparison_line(report: Mapping[str, Any]) -> str:
    """One line for a :func:`compare_on_held_out` report: each accuracy, the model's paired
    difference with each baseline, and the kept step, if known."""
    line = f"{_task(report)}: {_scores(report)}"
    margins = _margins(report)
    if margins:
        line += f" (trained {margins})"
    if "best_step" in report:
        line += f"; kept the checkpoint of step {report['best_step']} of {report['steps_trained']}"
    return line
