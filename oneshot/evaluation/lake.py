"""Lake et al. (2015) official one-shot task: 20 runs of 20-way within-alphabet classification.

Each run has 20 training images (one per character) and 20 test images; every test image is
classified to the nearest training image, 400 trials in all. Errors are reported in percent per
run and as the mean over runs (= the error over the 400 trials, every run having 20 trials).

The modified Hausdorff distance baseline (Dubuisson & Jain 1994), as in Lake's official demo
``demo_classification.py``: each image becomes the coordinates of its inked pixels, centred on
their mean; the distance between two point sets is the larger of the two mean nearest-neighbour
distances (A to B and B to A). Published error: 38.8%. Reproducing it proves the runs are read
and scored right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy.spatial import cKDTree

from oneshot.evaluation.scoring import Scorer

PUBLISHED_HAUSDORFF_ERROR = 38.8
_PROTOCOL = {
    "task": "Lake 2015 official one-shot runs",
    "n_way": 20,
    "k_shot": 1,
    "runs": 20,
    "trials": 400,
    "within_alphabet": True,
    "split": "evaluation (all_runs.zip)",
}


class LakeRunLike(Protocol):
    """What is read from a run (``oneshot.data.LakeRun``)."""

    name: str
    training_images: np.ndarray
    test_images: np.ndarray
    answers: np.ndarray


@dataclass(frozen=True)
class LakeResult:
    """Errors in percent per run and overall."""

    run_errors: np.ndarray
    mean_error: float
    protocol: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean_error": self.mean_error,
            "accuracy": 1.0 - self.mean_error / 100.0,
            "run_errors": [float(e) for e in self.run_errors],
            "protocol": dict(self.protocol),
        }


def lake_errors_from_distances(
    distances: np.ndarray, answers: np.ndarray, method: str = ""
) -> LakeResult:
    """Errors of nearest-training-image classification.

    Args:
        distances: (R, T, C) distance from each of T test images to each of C training images.
        answers: (R, T) index of the right training image for each test image.
        method: name recorded in the protocol. Defaults to "".
    """
    distances, answers = np.asarray(distances), np.asarray(answers)
    if distances.ndim != 3 or answers.shape != distances.shape[:2]:
        raise ValueError(
            "Expected `distances` of shape (runs, tests, trainings) and `answers` of shape "
            f"(runs, tests). Received: {distances.shape} and {answers.shape}."
        )
    wrong = np.argmin(distances, axis=2) != answers
    run_errors = 100.0 * wrong.mean(axis=1)
    protocol = {**_PROTOCOL, "runs": len(run_errors), "trials": int(wrong.size), "method": method}
    return LakeResult(run_errors, float(100.0 * wrong.mean()), protocol)


def _check_runs(runs: Sequence[LakeRunLike]) -> None:
    if len(runs) == 0:
        raise ValueError("Argument `runs` is empty: load them with oneshot.data.load_lake_runs().")


def lake_evaluate(scorer: Scorer, runs: Sequence[LakeRunLike]) -> LakeResult:
    """Error of a scorer on Lake's runs; all 800 images are embedded in one call."""
    _check_runs(runs)
    images = np.concatenate([np.concatenate([r.training_images, r.test_images]) for r in runs])
    sizes = [(len(r.training_images), len(r.test_images)) for r in runs]
    embeddings = scorer.embed(images)
    distances, start = [], 0
    for n_train, n_test in sizes:
        train = embeddings[start : start + n_train]
        test = embeddings[start + n_train : start + n_train + n_test]
        distances.append(scorer.pairwise(test, train))
        start += n_train + n_test
    answers = np.stack([r.answers for r in runs])
    return lake_errors_from_distances(np.stack(distances), answers, method="scorer")


def ink_points(image: np.ndarray, threshold: int = 128) -> np.ndarray:
    """Coordinates (P, 2) of the inked pixels (value >= threshold; strokes bright), centred."""
    rows, cols = np.nonzero(np.asarray(image) >= threshold)
    points = np.stack([rows, cols], axis=1).astype(np.float64)
    if len(points) == 0:
        raise ValueError("An image has no inked pixel: expected strokes bright (invert=True).")
    return points - points.mean(axis=0)


def modified_hausdorff(a: np.ndarray, b: np.ndarray) -> float:
    """Modified Hausdorff distance between point sets a (P, 2) and b (Q, 2)."""
    d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    return float(max(d.min(axis=1).mean(), d.min(axis=0).mean()))


def modified_hausdorff_matrix(
    images_a: np.ndarray, images_b: np.ndarray, threshold: int = 128
) -> np.ndarray:
    """(len(a), len(b)) modified Hausdorff distances between two stacks of images.

    Nearest-neighbour distances come from k-d trees built once per image (an image has about
    a thousand inked pixels, so dense point-to-point matrices would be slow).
    """
    points_a = [ink_points(im, threshold) for im in images_a]
    points_b = [ink_points(im, threshold) for im in images_b]
    trees_a = [cKDTree(p) for p in points_a]
    trees_b = [cKDTree(p) for p in points_b]
    out = np.empty((len(points_a), len(points_b)))
    for i, (pa, ta) in enumerate(zip(points_a, trees_a, strict=True)):
        for j, (pb, tb) in enumerate(zip(points_b, trees_b, strict=True)):
            out[i, j] = max(tb.query(pa)[0].mean(), ta.query(pb)[0].mean())
    return out


def lake_hausdorff_baseline(runs: Sequence[LakeRunLike], threshold: int = 128) -> LakeResult:
    """Lake's modified Hausdorff baseline on the runs (published: 38.8% error on all 20).

    Runs must hold the original 105x105 images, strokes bright (``load_lake_runs()``).
    """
    _check_runs(runs)
    distances = np.stack(
        [modified_hausdorff_matrix(r.test_images, r.training_images, threshold) for r in runs]
    )
    answers = np.stack([r.answers for r in runs])
    return lake_errors_from_distances(distances, answers, method="modified Hausdorff distance")
