"""Verification: are two images of the same class? A distance threshold calibrated at a target
false-accept rate (FAR) on held-out pairs, saved beside the model.

Two images are declared the same when their distance is <= the threshold.
:func:`calibrate_threshold` sets it from the distances of held-out same-class and
different-class pairs: the largest threshold whose FAR (the fraction of different-class pairs
accepted) is <= the target, read from the ROC of ``oneshot.evaluation.verification``. The
acceptance of same-class pairs at that threshold (TAR) is the standard metric, reported with
it. A FAR target below 1 / (different pairs) cannot be measured (:attr:`Calibration.resolved`),
and a threshold that accepts fewer than 10% of the same-class pairs is useless
(:attr:`Calibration.useful`); :meth:`Calibration.problems` says both in words.

A :class:`Verifier` holds the threshold, the distance and the identity of the model; it is
saved as JSON (beside ``model.keras``: ``model.verify.json``) and refuses another model.

Usage (the command line is ``python -m oneshot.verify``):

>>> verifier = Verifier.calibrate(model, held_out.images, held_out.labels, far=1e-3)
>>> verifier.save(verifier_path("runs/mnist/model.keras"))
>>> Verifier.load("runs/mnist/model.verify.json", model).verify(model, image1, image2)
VerifyResult(same=True, distance=0.41, threshold=0.73)
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import keras
import numpy as np

from oneshot.applications.files import atomic_write
from oneshot.applications.inputs import scorer_for
from oneshot.data.labels import check_labels
from oneshot.distances import Distance, get_distance, paired_distances
from oneshot.errors import UsageError
from oneshot.evaluation.episodes import distances_by_index
from oneshot.evaluation.scoring import Scorer
from oneshot.evaluation.verification import (
    first_n_pairs,
    sample_balanced_pairs,
    verification_from_distances,
)
from oneshot.models.identity import ModelIdentity, embedding_network

FORMAT = "oneshot.Verifier"
FORMAT_VERSION = 1
SUFFIX = ".verify.json"
MIN_USEFUL_TAR = 0.10  # a threshold accepting fewer same-class pairs is useless
ALL_PAIRS_UP_TO = 3000  # images whose pairs are all used; larger sets draw balanced pairs


class VerifierFileError(UsageError, ValueError):
    """A file that is not a verifier this version can load; the message names it."""


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A threshold calibrated at a false-accept rate, with what it does on its pairs.

    Attributes:
        threshold: accept (same) when the distance is <= threshold.
        far_target: the false-accept rate asked for.
        far: different-class pairs accepted at the threshold (<= far_target).
        tar: same-class pairs accepted at the threshold (the true-accept rate).
        auc: area under the ROC of the pairs.
        same_pairs: same-class pairs used.
        different_pairs: different-class pairs used.
    """

    threshold: float
    far_target: float
    far: float
    tar: float
    auc: float
    same_pairs: int
    different_pairs: int

    @property
    def resolved(self) -> bool:
        """True when there are enough different-class pairs to measure ``far_target`` (at
        least 1 / far_target of them)."""
        return self.different_pairs * self.far_target >= 1.0

    @property
    def pairs_needed(self) -> int:
        """Different-class pairs needed to measure ``far_target``: ceil(1 / far_target)."""
        return math.ceil(1.0 / self.far_target - 1e-9)

    @property
    def useful(self) -> bool:
        """False when the threshold accepts fewer than ``MIN_USEFUL_TAR`` of the same-class
        pairs: at that false-accept rate it rejects almost every genuine pair."""
        return self.tar >= MIN_USEFUL_TAR

    def problems(self) -> list[str]:
        """What makes the threshold untrustworthy or useless, one sentence each (empty when
        nothing does): too few different-class pairs to measure the FAR, a TAR below
        ``MIN_USEFUL_TAR``."""
        found = []
        if not self.resolved:
            found.append(
                f"{self.different_pairs} different-class pairs cannot measure a FAR of "
                f"{self.far_target:g} (it needs at least {self.pairs_needed}): add held-out "
                "images or classes for a trustworthy threshold"
            )
        if not self.useful:
            found.append(
                f"the threshold is useless: it accepts {self.tar:.1%} of the same-class pairs "
                f"at FAR {self.far_target:g} (below {MIN_USEFUL_TAR:.0%}). Ask for a larger FAR "
                "(--far), or use a better model"
            )
        return found


def _check_far(far: float, argument: str = "far") -> float:
    if isinstance(far, bool) or not isinstance(far, (int, float)) or not 0.0 < far < 1.0:
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected a rate in (0, 1), e.g. 1e-3. "
            f"Received: {argument}={far!r}"
        )
    return float(far)


def _check_distances(values: Any, argument: str) -> np.ndarray:
    d = np.asarray(values, dtype=np.float64).reshape(-1)
    if not len(d) or not np.isfinite(d).all():
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected a non-empty 1-D array of finite "
            f"distances. Received: {len(d)} values"
            f"{', some NaN or infinite' if len(d) and not np.isfinite(d).all() else ''}"
        )
    return d


def calibrate_threshold(
    distances_same: np.ndarray, distances_diff: np.ndarray, far: float = 1e-3
) -> Calibration:
    """The largest distance threshold whose false-accept rate is <= ``far``.

    Args:
        distances_same: (P,) distances of held-out same-class (genuine) pairs.
        distances_diff: (N,) distances of held-out different-class (impostor) pairs.
        far: the target false-accept rate, in (0, 1). Defaults to 1e-3.

    Returns:
        A :class:`Calibration`; its threshold is a distance of a same-class pair.

    Raises:
        ValueError: for empty or non-finite distances, a bad ``far``, or when no threshold
            accepts any same-class pair within the FAR (every different pair is closer than
            every same pair: a larger ``far`` or a better model is needed).
    """
    far = _check_far(far)
    same = _check_distances(distances_same, "distances_same")
    diff = _check_distances(distances_diff, "distances_diff")
    labels = np.r_[np.ones(len(same), bool), np.zeros(len(diff), bool)]
    roc = verification_from_distances(np.r_[same, diff], labels, fpr_target=far)
    if not np.isfinite(roc.threshold) or roc.tpr_at_fpr == 0.0:
        raise ValueError(
            f"No threshold accepts a same-class pair at a false-accept rate <= {far:g}: the "
            f"closest different-class pair ({diff.min():.4g}) is closer than every same-class "
            f"pair (nearest {same.min():.4g}). Pass a larger `far`, or use a better model."
        )
    return Calibration(
        threshold=roc.threshold,
        far_target=far,
        far=float(np.mean(diff <= roc.threshold)),
        tar=float(np.mean(same <= roc.threshold)),
        auc=roc.auc,
        same_pairs=len(same),
        different_pairs=len(diff),
    )


def pair_distances(
    scorer: Scorer,
    embeddings: np.ndarray,
    labels: np.ndarray,
    max_images: int = ALL_PAIRS_UP_TO,
    pairs_per_kind: int = 100_000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(same, different)`` pair distances of a labelled set: all pairs when it has at most
    ``max_images`` images, else ``pairs_per_kind`` balanced pairs of each kind (seeded)."""
    labels = check_labels(labels, len(embeddings))
    if len(labels) <= max_images:
        a, b, same = first_n_pairs(labels, len(labels))
    else:
        a, b, same = sample_balanced_pairs(labels, pairs_per_kind, seed)
    if same.all() or not same.any():
        raise ValueError(
            "Invalid value for argument `labels`. Expected at least two classes and a class "
            "with two images, to form same-class and different-class pairs. Received "
            f"{len(np.unique(labels))} classes for {len(labels)} images."
        )
    d = distances_by_index(scorer, embeddings, a, b)
    return d[same], d[~same]


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    """The answer for one pair: ``same`` when ``distance <= threshold``."""

    same: bool
    distance: float
    threshold: float


@dataclasses.dataclass(frozen=True)
class Verifier:
    """A calibrated same/different decision for one model.

    Args:
        threshold: accept (same) when the distance is <= threshold.
        distance: the distance between embeddings (the model's own, usually).
        model: the identity of the model the threshold was calibrated for.
        calibration: how the threshold was set, and its FAR and TAR on its pairs.
    """

    threshold: float
    distance: Distance
    model: ModelIdentity
    calibration: Calibration

    @classmethod
    def calibrate(
        cls,
        model: keras.Model,
        images: np.ndarray,
        labels: np.ndarray,
        far: float = 1e-3,
        distance: Distance | str | None = None,
        shifts: int = 0,
        seed: int = 0,
        embeddings: np.ndarray | None = None,
    ) -> Verifier:
        """Calibrate on held-out labelled images (classes and images the model did not train
        on, like the ones it will verify).

        Args:
            model: a oneshot model or a bare embedding network.
            images: (N, H, W[, C]) held-out images.
            labels: (N,) their classes.
            far: the target false-accept rate. Defaults to 1e-3.
            distance: None for the model's own (``oneshot.evaluation.scoring.trained_distance``).
                Defaults to None.
            shifts: test-time shift averaging (``Scorer(shifts=...)``). Defaults to 0.
            seed: seed of the balanced pairs of a large set. Defaults to 0.
            embeddings: the images' embeddings if already computed (with this model, distance
                and shifts). Defaults to None (embedded here).
        """
        scorer = scorer_for(model, distance, shifts)
        if embeddings is None:
            embeddings = scorer.embed(images)
        same, diff = pair_distances(scorer, embeddings, labels, seed=seed)
        calibration = calibrate_threshold(same, diff, far)
        identity = ModelIdentity.of(model, shifts)
        return cls(calibration.threshold, scorer.distance, identity, calibration)

    def check_model(self, model: keras.Model) -> None:
        """Raise a ValueError naming both models unless ``model`` is the calibrated one."""
        self.model.check(ModelIdentity.of(model, self.model.shifts), "this verifier")

    def verify_embeddings(self, a: np.ndarray, b: np.ndarray) -> list[VerifyResult]:
        """The answer for each pair of rows of two (N, D) embedding arrays."""
        d = np.asarray(paired_distances(a, b, self.distance), np.float64)
        return [VerifyResult(bool(x <= self.threshold), float(x), self.threshold) for x in d]

    def verify(self, model: keras.Model, image1: np.ndarray, image2: np.ndarray) -> VerifyResult:
        """Same or different: embed two images (H, W[, C]) with ``model`` (checked to be the
        calibrated one) and compare their distance with the threshold."""
        self.check_model(model)
        scorer = Scorer(embedding_network(model), self.distance, shifts=self.model.shifts)
        e = scorer.embed(np.stack([np.asarray(image1), np.asarray(image2)]))
        return self.verify_embeddings(e[:1], e[1:])[0]

    # ------------------------------------------------------------------------------- files
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "threshold": self.threshold,
            "distance": keras.saving.serialize_keras_object(self.distance),
            "model": self.model.to_json(),
            "calibration": dataclasses.asdict(self.calibration),
        }

    def save(self, path: str | Path, overwrite: bool = True) -> Path:
        """Write the verifier as JSON, atomically; return the path."""
        text = json.dumps(self.to_json(), indent=2) + "\n"
        return atomic_write(path, lambda tmp: tmp.write_text(text), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path, model: keras.Model | None = None) -> Verifier:
        """Read a verifier written by :meth:`save`; with ``model``, refuse it unless it is the
        calibrated model (ValueError naming both)."""
        path = Path(path)
        if not path.is_file():
            raise VerifierFileError(
                f"No verifier file {path}. Calibrate one first: python -m oneshot.verify "
                "calibrate --model MODEL --images HELD_OUT_FOLDER."
            )
        try:
            record = json.loads(path.read_text())
            if record.get("format") != FORMAT:
                raise ValueError(f"format {record.get('format')!r}")
            if record.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format version {record.get('format_version')!r}")
            verifier = cls(
                threshold=float(record["threshold"]),
                distance=get_distance(record["distance"]),
                model=ModelIdentity.from_json(record["model"]),
                calibration=Calibration(**record["calibration"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as error:
            raise VerifierFileError(
                f"{path} is not a verifier this version reads ({type(error).__name__}: "
                f"{error}). Expected a {SUFFIX} file written by Verifier.save; calibrate again."
            ) from None
        if model is not None:
            verifier.check_model(model)
        return verifier


def verifier_path(model_path: str | Path) -> Path:
    """Where a model's verifier is kept: ``runs/x/model.keras`` -> ``runs/x/model.verify.json``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + SUFFIX)
