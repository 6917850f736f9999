"""Verification (same class or not?): ROC curve, AUC and sensitivity at a fixed false-positive rate.

Pairs are scored by ``-distance``. Two pair sets:

- ``"balanced"`` (default, recommended): equal numbers of same-class and different-class pairs,
  seeded, drawn over all classes (a class, then two of its images; two classes, then one image
  of each).
- ``"first_n"``: all pairs among the first N images, as in the original articles (N = 3,000 for
  MNIST, 6,000 for Omniglot); kept for comparison with their numbers. Heavily unbalanced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import auc, roc_curve

from oneshot.checks import check_embeddings
from oneshot.data.labels import check_labels
from oneshot.evaluation.episodes import class_table, distances_by_index
from oneshot.evaluation.scoring import Scorer

PAIR_MODES = ("balanced", "first_n")


@dataclass(frozen=True)
class VerificationResult:
    """AUC, sensitivity at ``fpr_target`` and the ROC curve (distance thresholds)."""

    auc: float
    tpr_at_fpr: float
    fpr_target: float
    threshold: float
    fpr: np.ndarray = field(repr=False)
    tpr: np.ndarray = field(repr=False)
    protocol: dict[str, Any]

    def to_dict(self, include_curve: bool = False) -> dict[str, Any]:
        out = {
            "auc": self.auc,
            "tpr_at_fpr": self.tpr_at_fpr,
            "fpr_target": self.fpr_target,
            "threshold": self.threshold,
            "protocol": dict(self.protocol),
        }
        if include_curve:
            out["fpr"], out["tpr"] = self.fpr.tolist(), self.tpr.tolist()
        return out


def sample_balanced_pairs(
    labels: np.ndarray, pairs_per_kind: int = 10000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equal numbers of same-class and different-class pairs, drawn over all classes.

    Returns:
        ``(a, b, same)``: index arrays (2P,) and a boolean (2P,) that is True for the first P.
    """
    if pairs_per_kind < 1:
        raise ValueError(
            f"Invalid value for argument `pairs_per_kind`. Expected >= 1. Received: {pairs_per_kind}"
        )
    rng = np.random.default_rng(seed)
    _, counts, table = class_table(labels)
    multi = np.flatnonzero(counts >= 2)
    if len(multi) == 0 or len(counts) < 2:
        raise ValueError(
            "Argument `labels`: need at least two classes and one class with two images."
        )
    # same class: a class with >= 2 images, then two distinct positions in it
    cls = multi[rng.integers(len(multi), size=pairs_per_kind)]
    first = (rng.random(pairs_per_kind) * counts[cls]).astype(np.int64)
    second = (
        first + 1 + (rng.random(pairs_per_kind) * (counts[cls] - 1)).astype(np.int64)
    ) % counts[cls]
    same_a, same_b = table[cls, first], table[cls, second]
    # different classes: two distinct classes, one image of each
    c1 = rng.integers(len(counts), size=pairs_per_kind)
    c2 = (c1 + rng.integers(1, len(counts), size=pairs_per_kind)) % len(counts)
    diff_a = table[c1, (rng.random(pairs_per_kind) * counts[c1]).astype(np.int64)]
    diff_b = table[c2, (rng.random(pairs_per_kind) * counts[c2]).astype(np.int64)]
    same = np.r_[np.ones(pairs_per_kind, bool), np.zeros(pairs_per_kind, bool)]
    return np.r_[same_a, diff_a], np.r_[same_b, diff_b], same


def first_n_pairs(labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs i < j among the first ``n`` images (the original articles' ROC)."""
    labels = check_labels(labels)
    n = min(int(n), len(labels))
    a, b = np.triu_indices(n, k=1)
    return a, b, labels[a] == labels[b]


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float = 1e-3) -> float:
    """Best true-positive rate among ROC points whose false-positive rate is <= ``target``."""
    ok = fpr <= target
    return float(tpr[ok].max()) if ok.any() else 0.0


def verification_from_distances(
    distances: np.ndarray,
    same: np.ndarray,
    fpr_target: float = 1e-3,
    protocol: dict[str, Any] | None = None,
) -> VerificationResult:
    """ROC, AUC and TPR at ``fpr_target`` for pair distances (score = -distance).

    Args:
        distances: (P,) distance of each pair.
        same: (P,) True for same-class pairs; both kinds must be present.
        fpr_target: false-positive rate for the sensitivity. Defaults to 1e-3.
        protocol: description recorded in the result. Defaults to None.
    """
    distances, same = np.asarray(distances, dtype=np.float64), np.asarray(same, dtype=bool)
    if same.all() or not same.any():
        raise ValueError("Argument `same`: need both same-class and different-class pairs.")
    fpr, tpr, thresholds = roc_curve(same, -distances)  # corners kept: TPR@FPR exact
    ok = np.flatnonzero(fpr <= fpr_target)
    best = ok[np.argmax(tpr[ok])]
    threshold = float(-thresholds[best]) if np.isfinite(thresholds[best]) else float("-inf")
    return VerificationResult(
        auc=float(auc(fpr, tpr)),
        tpr_at_fpr=float(tpr[best]),
        fpr_target=fpr_target,
        threshold=threshold,
        fpr=fpr,
        tpr=tpr,
        protocol={
            **(protocol or {}),
            "positives": int(same.sum()),
            "negatives": int((~same).sum()),
        },
    )


def verification(
    scorer: Scorer,
    embeddings: np.ndarray,
    labels: np.ndarray,
    pairs: str = "balanced",
    pairs_per_kind: int = 10000,
    first_n: int = 3000,
    fpr_target: float = 1e-3,
    split: str | None = None,
    seed: int = 0,
) -> VerificationResult:
    """Verification metrics of a scorer from precomputed embeddings.

    Args:
        scorer: gives pair distances.
        embeddings: (M, D) embeddings of the whole set.
        labels: (M,) class labels, ints or strings ((M, 1) is flattened).
        pairs: "balanced" or "first_n" (see module docstring). Defaults to "balanced".
        pairs_per_kind: same-class (and different-class) pairs for "balanced". Defaults to 10000.
        first_n: N for "first_n" (3000 MNIST, 6000 Omniglot in the articles). Defaults to 3000.
        fpr_target: false-positive rate for the sensitivity. Defaults to 1e-3.
        split: dataset split recorded in the protocol. Defaults to None.
        seed: seed of the balanced sample. Defaults to 0.
    """
    check_embeddings(embeddings)
    labels = check_labels(labels, len(embeddings))
    if pairs == "balanced":
        a, b, same = sample_balanced_pairs(labels, pairs_per_kind, seed)
        protocol = {"task": "verification", "pairs": "balanced", "seed": seed}
        distances = distances_by_index(scorer, embeddings, a, b)
    elif pairs == "first_n":
        a, b, same = first_n_pairs(labels, first_n)
        n = min(int(first_n), len(labels))
        protocol = {"task": "verification", "pairs": f"all pairs of the first {n} images"}
        distances = np.asarray(scorer.pairwise(embeddings[:n]))[a, b]
    else:
        raise ValueError(
            f"Invalid value for argument `pairs`. Expected one of {PAIR_MODES}. Received: pairs={pairs!r}"
        )
    return verification_from_distances(distances, same, fpr_target, {**protocol, "split": split})
