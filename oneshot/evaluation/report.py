"""The standard metric set for one scorer on one dataset, as a JSON-able dict.

Embeds the dataset once, then runs the chosen protocols on the embeddings:

- ``nway``: N-way 1-shot accuracy with 95% CI. MNIST: 10-way. Omniglot: 20-way
  within-alphabet, 20-way unstructured and 5-way unstructured.
- ``lake``: Lake's 20 official runs (Omniglot only; needs the runs).
- ``verification``: ROC AUC and TPR at FPR 1e-3 on class-balanced pairs, and on all pairs of
  the first N images as in the original articles (N = 3,000 MNIST, 6,000 Omniglot).
- ``cmc``: CMC with K classes, one gallery and one query each (K = 10 MNIST, 400 Omniglot).
- ``retrieval``: precision@1, R-precision, MAP@R (every image against all the others).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from oneshot.data.labels import check_labels
from oneshot.distances import distance_name
from oneshot.evaluation.episodes import OneShotResult, nway_accuracy
from oneshot.evaluation.lake import LakeRunLike, lake_evaluate
from oneshot.evaluation.retrieval import cmc, retrieval_metrics
from oneshot.evaluation.scoring import Scorer
from oneshot.evaluation.verification import verification
from oneshot.names import check_protocols

# (n_way, k_shot, within_alphabet) per dataset
NWAY_TASKS = {
    "mnist": [(10, 1, False)],
    "omniglot": [(20, 1, True), (20, 1, False), (5, 1, False)],
}
CMC_CLASSES = {"mnist": 10, "omniglot": 400}
FIRST_N = {"mnist": 3000, "omniglot": 6000}


def evaluate_scorer(
    scorer: Scorer,
    images: np.ndarray,
    labels: np.ndarray,
    dataset: str,
    split: str,
    protocols: Sequence[str] | str = "all",
    alphabets: np.ndarray | None = None,
    lake_runs: Sequence[LakeRunLike] | None = None,
    episodes: int = 1000,
    nway_tasks: Sequence[tuple[int, int, bool]] | None = None,
    cmc_classes: int | None = None,
    cmc_trials: int = 10,
    pairs_per_kind: int = 10000,
    first_n: int | None = None,
    seed: int = 0,
    embeddings: np.ndarray | None = None,
    include_curves: bool = False,
    embed_seconds: float | None = None,
) -> dict[str, Any]:
    """Run the standard protocols and return their numbers with their protocols.

    Args:
        scorer: the model's :class:`Scorer`.
        images: (M, H, W) images of the split, strokes bright.
        labels: (M,) class labels.
        dataset: "mnist" or "omniglot" (picks the defaults above).
        split: split name recorded in every protocol.
        protocols: names from ``oneshot.names.PROTOCOLS`` or "all". Defaults to "all".
        alphabets: (M,) alphabets, for within-alphabet episodes (Omniglot). Defaults to None.
        lake_runs: Lake's runs at the model's image size; "lake" is skipped (with a note)
            when None or for MNIST. Defaults to None.
        episodes: episodes per N-way task. Defaults to 1000.
        nway_tasks: (n_way, k_shot, within_alphabet) tasks; defaults to ``NWAY_TASKS[dataset]``.
        cmc_classes: K of the CMC; defaults to ``CMC_CLASSES[dataset]`` (capped by the classes).
        cmc_trials: CMC draws averaged. Defaults to 10.
        pairs_per_kind: balanced verification pairs of each kind. Defaults to 10000.
        first_n: N of the all-pairs-of-the-first-N-images ROC; defaults to ``FIRST_N[dataset]``.
        seed: seed of every sampled protocol. Defaults to 0.
        embeddings: the images' embeddings if already computed (skips embedding again).
        include_curves: keep the ROC (balanced pairs) and CMC curves in the report, for
            plotting. Defaults to False.
        embed_seconds: the time ``embeddings`` took, when they are given (recorded as
            ``seconds["embed"]``; left out if unknown). Defaults to None.

    Returns:
        The report; ``seconds`` holds the wall time of embedding and of each protocol, in
        seconds rounded to milliseconds.
    """
    if dataset not in NWAY_TASKS:
        raise ValueError(
            f"Invalid value for argument `dataset`. Expected one of {tuple(NWAY_TASKS)}. Received: dataset={dataset!r}"
        )
    names = check_protocols(protocols)
    labels = check_labels(labels, len(images))
    seconds: dict[str, float] = {}
    if embeddings is None:
        start = time.perf_counter()
        embeddings = scorer.embed(images)
        seconds["embed"] = time.perf_counter() - start
    elif embed_seconds is not None:
        seconds["embed"] = float(embed_seconds)
    report: dict[str, Any] = {
        "dataset": dataset,
        "split": split,
        "images": len(labels),
        "classes": len(np.unique(labels)),
        "embedding_dim": int(embeddings.shape[1]),
        "learned_metric": bool(scorer.uses_learned_metric),
        "distance": None if scorer.uses_learned_metric else distance_name(scorer.distance),
    }
    for name in names:
        start = time.perf_counter()
        if name == "nway":
            tasks = nway_tasks or NWAY_TASKS[dataset]
            report["nway"] = [
                nway_accuracy(
                    scorer, embeddings, labels, n, k, episodes,
                    alphabets=alphabets, within_alphabet=within and alphabets is not None,
                    split=split, seed=seed,
                ).to_dict()
                for n, k, within in tasks
            ]  # fmt: skip
        elif name == "lake":
            if dataset != "omniglot" or lake_runs is None:
                report["lake"] = {"skipped": "Lake's runs are an Omniglot protocol"}
                continue
            report["lake"] = lake_evaluate(scorer, lake_runs).to_dict()
        elif name == "verification":
            report["verification"] = {
                "balanced": verification(
                    scorer, embeddings, labels, "balanced", pairs_per_kind, split=split, seed=seed
                ).to_dict(include_curve=include_curves),
                "first_n": verification(
                    scorer,
                    embeddings,
                    labels,
                    "first_n",
                    first_n=first_n or FIRST_N[dataset],
                    split=split,
                ).to_dict(),
            }
        elif name == "cmc":
            k = min(cmc_classes or CMC_CLASSES[dataset], len(np.unique(labels)))
            report["cmc"] = cmc(
                scorer, embeddings, labels, k, cmc_trials, split=split, seed=seed
            ).to_dict(include_curve=include_curves)
        elif name == "retrieval":
            report["retrieval"] = retrieval_metrics(scorer, embeddings, labels, split=split)
        seconds[name] = time.perf_counter() - start
    report["seconds"] = {name: round(value, 3) for name, value in seconds.items()}
    return report


def evaluate_scorers(
    scorers: Mapping[str, Scorer],
    data: Any,
    dataset: str,
    split: str,
    protocols: Sequence[str] = ("nway", "verification", "cmc"),
    **options: Any,
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
    """Embed ``data`` once per scorer and run :func:`evaluate_scorer` on it (curves kept).

    Args:
        scorers: name -> scorer (e.g. untrained vs trained).
        data: the held-out ``LabelledImages`` (an ``OmniglotSet`` gives within-alphabet tasks).
        dataset, split: recorded in every protocol.
        protocols: protocol names of :func:`evaluate_scorer`.
        **options: other :func:`evaluate_scorer` arguments (episodes, lake_runs, ...).

    Returns:
        ``(embeddings, reports)``, both keyed by scorer name.
    """
    embeddings, reports = {}, {}
    for name, scorer in scorers.items():
        start = time.perf_counter()
        embeddings[name] = scorer.embed(data.images)
        reports[name] = evaluate_scorer(
            scorer, data.images, data.labels, dataset, split, protocols=list(protocols),
            alphabets=getattr(data, "alphabets", None), embeddings=embeddings[name],
            include_curves=True, embed_seconds=time.perf_counter() - start, **options,
        )  # fmt: skip
    return embeddings, reports


def accuracy_vs_ways(
    scorer: Scorer,
    embeddings: np.ndarray,
    data: Any,
    ways: Sequence[int],
    episodes: int = 1000,
    k_shot: int = 1,
    within_alphabet: bool = False,
    split: str | None = None,
    seed: int = 0,
) -> dict[int, OneShotResult]:
    """N-way K-shot accuracy for each N in ``ways``, on ``data``'s labels (and alphabets), with
    the same seed for every N: the points of an accuracy-vs-N curve."""
    return {
        n: nway_accuracy(
            scorer, embeddings, data.labels, n_way=n, k_shot=k_shot, episodes=episodes,
            alphabets=getattr(data, "alphabets", None), within_alphabet=within_alphabet,
            split=split, seed=seed,
        )
        for n in ways
    }  # fmt: skip


def task_name(task: Mapping[str, Any], dataset: str | None) -> str:
    """``"20-way 1-shot within-alphabet"``: an N-way task named with its protocol."""
    p = task.get("protocol", {})
    name = f"{p.get('n_way')}-way {p.get('k_shot', 1)}-shot"
    if dataset == "omniglot":
        name += " within-alphabet" if p.get("within_alphabet") else " unstructured"
    return name


def accuracy_line(result: OneShotResult | Mapping[str, Any], dataset: str) -> str:
    """``"20-way 1-shot within-alphabet: 0.853 ± 0.022 (95% CI, 1000 episodes, ...)"``: one
    accuracy with its protocol, for printing."""
    values = result.to_dict() if isinstance(result, OneShotResult) else dict(result)
    p = values["protocol"]
    return (
        f"{task_name(values, dataset)}: {values['accuracy']:.3f} ± {values['ci95']:.3f} "
        f"(95% CI, {p.get('episodes')} episodes, {p.get('queries_per_class', 1)} query per "
        f"class, {dataset} {p.get('split')} split)"
    )
