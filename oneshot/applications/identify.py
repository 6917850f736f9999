"""Identification: which enrolled class is this image? Closed set (rank-1) and open set (with
a reject threshold for images of classes never enrolled).

The gallery is a labelled :class:`EmbeddingIndex` of the enrolled images (one or a few per
class). A query is identified as the label of its nearest gallery item (1-NN: the one-shot
rule; with several shots the nearest shot of any class decides).

- Closed set (:func:`identify`): every query belongs to an enrolled class; the metric is the
  rank-1 rate, the fraction identified correctly.
- Open set (:func:`calibrate_reject_threshold`, :func:`open_set`): some queries belong to no
  enrolled class. A query is accepted when its nearest distance is <= a reject threshold,
  calibrated at a false-accept rate (FAR) on held-out queries: the nearest distances of
  unknown-class queries are the impostor scores, those of known-class queries the genuine ones
  (``oneshot.applications.verify.calibrate_threshold``). The metric is the
  detection-and-identification rate (DIR) at that FAR: the fraction of known-class queries
  that are both accepted and identified correctly (Phillips et al., FRVT; it is at most the
  rank-1 rate). The FAR is measured again on other unknown-class queries (the
  false-positive identification rate, FPIR: the fraction of them accepted).

Usage (the command line is ``python -m oneshot.identify``):

>>> gallery = EmbeddingIndex.for_model(model)
>>> gallery.add(embed(enrolled_images), labels=enrolled_labels)
>>> identify(gallery, embed(queries), labels).rank1
0.94
>>> calibration = calibrate_reject_threshold(gallery, embed(held_out_known), embed(held_out_unknown), far=0.01)
>>> open_set(gallery, embed(queries), labels, embed(unknown), calibration).dir
0.81
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from oneshot.applications.index import EmbeddingIndex
from oneshot.applications.verify import Calibration, calibrate_threshold
from oneshot.data.labels import check_labels


@dataclasses.dataclass(frozen=True)
class Identification:
    """The nearest enrolled item of each query.

    Attributes:
        labels: (Q,) the label of the nearest gallery item: the identity given.
        distances: (Q,) the distance to it.
        ids: (Q,) its item id.
        rank1: fraction of queries whose identity is their true label; None when the true
            labels are not given.
    """

    labels: np.ndarray
    distances: np.ndarray
    ids: np.ndarray
    rank1: float | None = None

    def __len__(self) -> int:
        return len(self.labels)


def _check_gallery(index: EmbeddingIndex) -> None:
    if index.labels is None or not len(index):
        raise ValueError(
            "Invalid value for argument `index`. Expected a gallery: an index of enrolled "
            f"items with labels. Received: an index of {len(index)} items"
            f"{' without labels' if index.labels is None else ''}."
        )


def identify(index: EmbeddingIndex, queries: np.ndarray, labels: Any = None) -> Identification:
    """Closed-set identification: the label of each query's nearest gallery item.

    Args:
        index: the gallery (labelled).
        queries: (Q, D) query embeddings from the index's model.
        labels: (Q,) true labels, of the gallery's kind (ints or strings), for the rank-1
            rate. Defaults to None.

    Returns:
        An :class:`Identification`.
    """
    _check_gallery(index)
    found = index.search(queries, k=1)
    rank1 = None
    if labels is not None:
        labels = check_labels(labels, len(found))
        rank1 = float(np.mean(found.labels[:, 0] == labels))
    return Identification(found.labels[:, 0], found.distances[:, 0], found.ids[:, 0], rank1)


def calibrate_reject_threshold(
    index: EmbeddingIndex,
    known_queries: np.ndarray,
    unknown_queries: np.ndarray,
    far: float = 1e-2,
) -> Calibration:
    """The reject threshold: the largest nearest-gallery distance at which at most ``far`` of
    held-out unknown-class queries are accepted.

    Args:
        index: the gallery.
        known_queries: (Q, D) held-out queries of enrolled classes (genuine searches).
        unknown_queries: (U, D) held-out queries of classes not enrolled (impostors).
        far: the target false-accept rate (FPIR). Defaults to 1e-2.

    Returns:
        A ``Calibration``: ``threshold``, and the FAR / TAR (known queries accepted, right or
        wrong) on these queries.
    """
    _check_gallery(index)
    known = index.search(known_queries, k=1).distances[:, 0]
    unknown = index.search(unknown_queries, k=1).distances[:, 0]
    return calibrate_threshold(known, unknown, far)


@dataclasses.dataclass(frozen=True)
class OpenSetResult:
    """Open-set identification at a reject threshold.

    Attributes:
        threshold: queries with a nearest distance <= threshold are accepted.
        far_target: the FAR the threshold was calibrated at.
        dir: detection-and-identification rate: fraction of known-class queries accepted and
            identified correctly.
        fpir: fraction of the unknown-class queries accepted (the FAR measured on them); None
            without unknown queries.
        rank1: closed-set rank-1 rate of the known-class queries (DIR without a threshold).
        known: the identification of the known-class queries.
        accepted: (Q,) which known-class queries were accepted.
    """

    threshold: float
    far_target: float
    dir: float
    fpir: float | None
    rank1: float
    known: Identification = dataclasses.field(repr=False)
    accepted: np.ndarray = dataclasses.field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        keys = ("threshold", "far_target", "dir", "fpir", "rank1")
        return {key: getattr(self, key) for key in keys}


def open_set(
    index: EmbeddingIndex,
    queries: np.ndarray,
    labels: Any,
    unknown_queries: np.ndarray | None,
    calibration: Calibration,
) -> OpenSetResult:
    """Open-set identification of known-class ``queries`` (and ``unknown_queries``, if given)
    at ``calibration``'s reject threshold (from :func:`calibrate_reject_threshold` on other
    queries than these).

    Args:
        index: the gallery.
        queries: (Q, D) queries of enrolled classes.
        labels: (Q,) their true labels.
        unknown_queries: (U, D) queries of classes not enrolled, or None.
        calibration: the reject threshold.
    """
    known = identify(index, queries, labels)
    labels = check_labels(labels, len(known))
    accepted = known.distances <= calibration.threshold
    fpir = None
    if unknown_queries is not None:
        unknown = index.search(unknown_queries, k=1).distances[:, 0]
        fpir = float(np.mean(unknown <= calibration.threshold))
    return OpenSetResult(
        threshold=calibration.threshold,
        far_target=calibration.far_target,
        dir=float(np.mean(accepted & (known.labels == labels))),
        fpir=fpir,
        rank1=known.rank1,
        known=known,
        accepted=accepted,
    )
