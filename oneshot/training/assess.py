"""After training: evaluate a run on held-out data and draw its plots into the run folder.

Writes ``metrics.json`` (every number with its protocol) and ``loss.png`` (with the held-out
accuracy of every chunk and the kept step, when monitored), ``roc.png``, ``cmc.png``,
``embedding_pca.png``, ``embedding_tsne.png``, ``distances.png`` (classes named).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import keras
import matplotlib.pyplot as plt
import numpy as np

from oneshot.data import load_lake_runs, load_mnist
from oneshot.data.datasets import LabelledImages
from oneshot.data.splits import class_names
from oneshot.evaluation.episodes import nway_accuracy
from oneshot.evaluation.report import evaluate_scorer
from oneshot.evaluation.scoring import Scorer
from oneshot.evaluation.verification import sample_balanced_pairs
from oneshot.names import PROTOCOLS
from oneshot.plots import (
    plot_cmc_curves,
    plot_distance_boxplots,
    plot_embedding_2d,
    plot_loss_curves,
    plot_roc_curves,
)
from oneshot.training.baselines import baseline_warning, compare_on_held_out, pixel_scorer
from oneshot.training.best import BEST_STEP
from oneshot.training.callbacks import episode_task
from oneshot.training.configs import RunConfig
from oneshot.training.experiment import EvalConfig
from oneshot.training.files import HISTORY_FILE, METRICS_FILE, read_history, run_labels
from oneshot.training.setup import TEST_SPLIT, held_out_split

EMBEDDING_CLASSES = 10  # classes shown in the embedding plots
PROJECTION_NAMES = {"pca": "PCA", "tsne": "t-SNE"}


def _nway_tasks(
    config: RunConfig, evaluation: EvalConfig, test: LabelledImages
) -> list[tuple[int, int, bool]]:
    """(n_way, k_shot, within_alphabet) tasks: the evaluation's ways, within and across
    alphabets when there are alphabets; on held-out classes, N at most their number and within
    groups only where a group is large enough (:func:`episode_task`)."""
    groups = getattr(test, "alphabets", None)
    withins = (False,) if groups is None else (True, False)
    if not config.held_out:
        return [(n, 1, within) for n in evaluation.ways for within in withins]
    tasks = []
    for n in evaluation.ways:
        n_way, can_within = episode_task(test.labels, groups, max_way=n)
        tasks += [(n_way, 1, within) for within in withins if can_within or not within]
    return list(dict.fromkeys(tasks))


def split_name(config: RunConfig) -> str:
    """What the run is evaluated on: the test split; the test split's images of the classes
    it held out (MNIST); Omniglot's test split (``evaluation``, all new classes); or, without
    a test split, the held-out classes or alphabets themselves."""
    if config.validation_alphabets:
        return "validation alphabets"
    if config.validation_classes is None:
        return TEST_SPLIT[config.dataset]
    if held_out_split(config) == "train":
        return "held-out classes"
    if config.dataset == "omniglot":
        return TEST_SPLIT["omniglot"]
    return "held-out classes, test split"


def _strip_curves(report: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split the plotted curves out of the report so metrics.json stays small."""
    curves = {}
    balanced = report.get("verification", {}).get("balanced", {})
    if "fpr" in balanced:
        curves["roc"] = {
            "fpr": balanced.pop("fpr"),
            "tpr": balanced.pop("tpr"),
            "auc": balanced["auc"],
        }
    if "curve" in report.get("cmc", {}):
        curves["cmc"] = report["cmc"].pop("curve")
    return report, curves


def _embedding_subset(test: LabelledImages, seed: int) -> np.ndarray:
    """Indices of every image of ``EMBEDDING_CLASSES`` classes (at most 100 images each)."""
    rng = np.random.default_rng(seed)
    present = np.unique(test.labels)
    classes = rng.choice(present, size=min(EMBEDDING_CLASSES, len(present)), replace=False)
    chosen = [rng.permutation(np.flatnonzero(test.labels == c))[:100] for c in np.sort(classes)]
    return np.concatenate(chosen)


def assess_run(
    model: keras.Model,
    config: RunConfig,
    evaluation: EvalConfig,
    test: LabelledImages,
    run_dir: Path,
    data_dir: str | Path | None = None,
    seed: int = 0,
    untrained: keras.Model | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``test`` with the experiment's protocols; write metrics and plots.

    ``test`` is the run's ``RunData.test``: for a run that holds out classes of a dataset with
    a test split, the test split's images of them (:func:`~oneshot.training.setup.
    load_train_and_test`). Such a run also compares the model with ``untrained`` (the run's
    network before the first step: random, or the pretrained ``init_from`` network) and raw
    pixels on the same episodes of ``test`` (``heldout`` in ``metrics.json``:
    :func:`held_out_report`), with the step of the kept checkpoint.
    """
    run_dir = Path(run_dir)
    scorer = Scorer.from_model(model, distance=config.eval_distance, shifts=config.test_shifts)
    start = time.perf_counter()
    embeddings = scorer.embed(test.images)
    embed_seconds = time.perf_counter() - start
    lake = None
    test_split = config.dataset == "omniglot" and not config.held_out
    if test_split and evaluation.lake_runs:
        lake = load_lake_runs(image_size=config.image_size, data_dir=data_dir)
    split = split_name(config)
    report = evaluate_scorer(
        scorer,
        test.images,
        test.labels,
        "mnist" if config.dataset == "folder" else config.dataset,  # the defaults: all given
        split,
        protocols=[p for p in PROTOCOLS if p != "lake" or config.dataset == "omniglot"],
        alphabets=getattr(test, "alphabets", None),
        lake_runs=lake,
        episodes=evaluation.episodes,
        nway_tasks=_nway_tasks(config, evaluation, test),
        cmc_classes=evaluation.cmc_classes,
        pairs_per_kind=evaluation.verification_pairs // 2,
        first_n=evaluation.first_n_images,
        seed=seed,
        embeddings=embeddings,
        include_curves=True,
        embed_seconds=embed_seconds,
    )
    report["dataset"] = config.dataset
    if test_split and evaluation.mnist_transfer:
        report["mnist_transfer"] = mnist_transfer(
            scorer, config.image_size, evaluation, data_dir, seed
        )
    if config.held_out:
        report["heldout"] = held_out_report(
            scorer, embeddings, untrained, config, test, evaluation.episodes, run_dir, seed
        )
    report["test_shifts"] = config.test_shifts
    report, curves = _strip_curves(report)
    (run_dir / METRICS_FILE).write_text(json.dumps(report, indent=2))
    _draw(run_dir, config, scorer, embeddings, test, curves, seed)
    return report


def held_out_report(
    scorer: Scorer,
    embeddings: np.ndarray,
    untrained: keras.Model | None,
    config: RunConfig,
    test: LabelledImages,
    episodes: int,
    run_dir: Path,
    seed: int,
) -> dict[str, Any]:
    """The model against the untrained network and raw pixels on the same held-out episodes
    (:func:`oneshot.training.baselines.compare_on_held_out`), the kept checkpoint's step, and
    where the numbers come from:

    - ``evaluation_split``: ``"test"`` (images that neither trained the network nor chose its
      checkpoint) or ``"train"`` (a folder, validation alphabets: the images the monitor chose
      the checkpoint on, so optimistic); ``monitor_split`` is always ``"train"``;
    - ``untrained_weights``: ``"random"`` (the seed's initial weights), or ``init_from`` and
      ``init_checksum`` when the run started from a pretrained network, which is then the
      ``untrained`` baseline.
    """
    scorers = {"model": scorer, "pixels": pixel_scorer(config.input_shape)}
    if untrained is not None:
        scorers["untrained"] = Scorer.from_model(
            untrained, distance=config.eval_distance, shifts=config.test_shifts
        )
    report = compare_on_held_out(
        scorers, test, episodes, seed, split_name(config), embeddings={"model": embeddings}
    )
    report["evaluation_split"] = held_out_split(config)
    report["monitor_split"] = "train"
    report["untrained_weights"] = (
        "random"
        if config.init_from is None
        else {"init_from": config.init_from, "init_checksum": config.init_checksum}
    )
    history = read_history(run_dir) if (run_dir / HISTORY_FILE).exists() else None
    if history is not None and BEST_STEP in history:
        report["best_step"] = int(history[BEST_STEP][-1])
        report["steps_trained"] = int(history["step"][-1])
        if config.keep_start:  # the start was a candidate: was it kept?
            report["kept_start"] = report["best_step"] == 0
    report["warning"] = baseline_warning(report)
    return report


def mnist_transfer(
    scorer: Scorer,
    image_size: int,
    evaluation: EvalConfig,
    data_dir: str | Path | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """10-way 1-shot accuracy on the MNIST test digits (resized to the network's input) of a
    network trained on Omniglot only: Koch et al.'s transfer test (their figure: 70.3%)."""
    digits = load_mnist("test", data_dir=data_dir, image_size=image_size)
    result = nway_accuracy(
        scorer, scorer.embed(digits.images), digits.labels, 10, 1, evaluation.episodes,
        split="mnist test (network trained on Omniglot)", seed=seed,
    )  # fmt: skip
    return result.to_dict()


def _draw(run_dir, config, scorer, embeddings, test, curves, seed) -> None:
    name = config.name
    if (run_dir / "history.csv").exists():
        history = read_history(run_dir)
        monitored = [k for k in history if k.startswith("monitor_") and k.endswith("way")]
        kept = history[BEST_STEP][-1] if BEST_STEP in history else None
        plot_loss_curves(
            {name: history}, path=run_dir / "loss.png",
            accuracy=monitored[0] if monitored else None, kept_step=kept,
        )  # fmt: skip
    if "roc" in curves:
        plot_roc_curves({name: curves["roc"]}, path=run_dir / "roc.png")
    if "cmc" in curves:
        plot_cmc_curves({name: np.asarray(curves["cmc"])}, path=run_dir / "cmc.png")
    names = class_names(test)
    subset = _embedding_subset(test, seed)
    shown = len(np.unique(test.labels[subset]))
    which = "held-out" if config.held_out else "test"
    for method in ("pca", "tsne"):
        plot_embedding_2d(
            embeddings[subset],
            test.labels[subset],
            method=method,
            title=f"{name}: {PROJECTION_NAMES[method]} of {shown} {which} classes",
            path=run_dir / f"embedding_{method}.png",
            seed=seed,
            class_names=names,
        )
    first, second, same = sample_balanced_pairs(test.labels, 2000, seed=seed)
    distances = scorer.paired(embeddings[first], embeddings[second])
    plot_distance_boxplots(
        distances, same, classes=test.labels[first], path=run_dir / "distances.png",
        class_names=names,
    )  # fmt: skip
    plt.close("all")


def compare_runs(run_dirs: list[Path], out: Path | None = None):
    """Plot the loss curves of ``run_dirs`` on one figure (saved to ``out``); return it."""
    histories = dict(zip(run_labels(run_dirs), (read_history(d) for d in run_dirs), strict=True))
    return plot_loss_curves(histories, path=out)
