"""Which images are enrolled and which query, and which classes are held out: seeded index
splits of a labelled set for the identification and novelty tasks.

- :func:`enrolment_split`: ``shots`` images of each class enrolled (the gallery), the rest
  query, as in one-shot identification.
- :func:`class_split`: whole classes in two parts, e.g. held-out unknown classes for
  calibrating a reject threshold and others for measuring it.
"""

from __future__ import annotations

import numpy as np

from oneshot.data.labels import check_labels
from oneshot.evaluation.episodes import class_table


def enrolment_split(labels, shots: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(gallery, queries)`` indices: ``shots`` seeded images of every class, and the rest.

    Args:
        labels: (N,) class of each image, ints or strings.
        shots: images enrolled per class, >= 1; every class needs more than ``shots`` images
            (at least one query). Defaults to 1.
        seed: which images are enrolled. Defaults to 0.

    Returns:
        Two sorted int64 index arrays that split ``range(N)``.
    """
    labels = check_labels(labels)
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1:
        raise ValueError(
            f"Invalid value for argument `shots`. Expected an int >= 1. Received: shots={shots!r}"
        )
    classes, counts, table = class_table(labels)
    small = counts <= shots
    if small.any():
        raise ValueError(
            f"Invalid value for argument `shots`. Expected fewer than the images of every "
            f"class ({shots} enrolled + at least one query). Received: shots={shots}, but class "
            f"{classes[small][0].item()!r} has {counts[small][0]} image(s)."
        )
    rng = np.random.default_rng(seed)
    gallery = np.concatenate(
        [rng.choice(table[c, : counts[c]], shots, replace=False) for c in range(len(classes))]
    )
    queries = np.setdiff1d(np.arange(len(labels)), gallery)
    return np.sort(gallery), queries


def class_split(labels, fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(first, second)`` indices of two disjoint sets of whole classes: a seeded
    ``fraction`` of the classes (at least one, and one left) in the first.

    Args:
        labels: (N,) class of each image; at least two classes.
        fraction: share of the classes in the first part, in (0, 1). Defaults to 0.5.
        seed: which classes. Defaults to 0.
    """
    labels = check_labels(labels)
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(
            "Invalid value for argument `labels`. Expected at least two classes to split. "
            f"Received {len(classes)}."
        )
    if not 0.0 < fraction < 1.0:
        raise ValueError(
            "Invalid value for argument `fraction`. Expected a share in (0, 1). Received: "
            f"fraction={fraction!r}"
        )
    count = min(max(int(round(fraction * len(classes))), 1), len(classes) - 1)
    first = np.random.default_rng(seed).choice(classes, count, replace=False)
    mask = np.isin(labels, first)
    return np.flatnonzero(mask), np.flatnonzero(~mask)
