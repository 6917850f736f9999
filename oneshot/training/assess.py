"""After training: evaluate a run on held-out data and draw its plots into the run folder.

Writes ``metrics.json`` (every number with its protocol) and ``loss.png``, ``roc.png``,
``cmc.png``, ``embedding_pca.png``, ``embedding_tsne.png``, ``distances.png``.
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
from oneshot.evaluation.episodes import nway_accuracy
from oneshot.evaluation.report import evaluate_scorer
from oneshot.evaluation.verification import sample_balanced_pairs
from oneshot.experiments import EvalConfig, RunConfig
from oneshot.inference import Scorer
from oneshot.plots import (
    plot_cmc_curves,
    plot_distance_boxplots,
    plot_embedding_2d,
    plot_loss_curves,
    plot_roc_curves,
)
from oneshot.runs import METRICS_FILE, read_history
from oneshot.training.setup import TEST_SPLIT

EMBEDDING_CLASSES = 10  # classes shown in the embedding plots


def _nway_tasks(config: RunConfig, evaluation: EvalConfig) -> list[tuple[int, int, bool]]:
    if config.dataset == "mnist":
        return [(n, 1, False) for n in evaluation.ways]
    return [(n, 1, within) for n in evaluation.ways for within in (True, False)]


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
    classes = rng.choice(np.unique(test.labels), size=EMBEDDING_CLASSES, replace=False)
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
) -> dict[str, Any]:
    """Evaluate ``model`` on ``test`` with the experiment's protocols; write metrics and plots."""
    run_dir = Path(run_dir)
    scorer = Scorer.from_model(model, distance=config.eval_distance, shifts=config.test_shifts)
    start = time.perf_counter()
    embeddings = scorer.embed(test.images)
    embed_seconds = time.perf_counter() - start
    lake = None
    held_out = config.dataset == "omniglot" and not config.validation_alphabets
    if held_out and evaluation.lake_runs:
        lake = load_lake_runs(image_size=config.image_size, data_dir=data_dir)
    split = "validation alphabets" if config.validation_alphabets else TEST_SPLIT[config.dataset]
    report = evaluate_scorer(
        scorer,
        test.images,
        test.labels,
        config.dataset,
        split,
        alphabets=getattr(test, "alphabets", None),
        lake_runs=lake,
        episodes=evaluation.episodes,
        nway_tasks=_nway_tasks(config, evaluation),
        cmc_classes=evaluation.cmc_classes,
        pairs_per_kind=evaluation.verification_pairs // 2,
        first_n=evaluation.first_n_images,
        seed=seed,
        embeddings=embeddings,
        include_curves=True,
        embed_seconds=embed_seconds,
    )
    if held_out and evaluation.mnist_transfer:
        report["mnist_transfer"] = mnist_transfer(
            scorer, config.image_size, evaluation, data_dir, seed
        )
    report["test_shifts"] = config.test_shifts
    report, curves = _strip_curves(report)
    (run_dir / METRICS_FILE).write_text(json.dumps(report, indent=2))
    _draw(run_dir, config, scorer, embeddings, test, curves, seed)
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
        plot_loss_curves({name: read_history(run_dir)}, path=run_dir / "loss.png")
    if "roc" in curves:
        plot_roc_curves({name: curves["roc"]}, path=run_dir / "roc.png")
    if "cmc" in curves:
        plot_cmc_curves({name: np.asarray(curves["cmc"])}, path=run_dir / "cmc.png")
    subset = _embedding_subset(test, seed)
    for method in ("pca", "tsne"):
        plot_embedding_2d(
            embeddings[subset],
            test.labels[subset],
            method=method,
            title=f"{name}: {method.upper()} of {EMBEDDING_CLASSES} test classes",
            path=run_dir / f"embedding_{method}.png",
            seed=seed,
        )
    first, second, same = sample_balanced_pairs(test.labels, 2000, seed=seed)
    distances = scorer.paired(embeddings[first], embeddings[second])
    plot_distance_boxplots(
        distances, same, classes=test.labels[first], path=run_dir / "distances.png"
    )
    plt.close("all")
