"""Derived Omniglot sets: a validation split of whole alphabets, and rotated classes.

- :func:`hold_out_alphabets` splits the background set into training and validation alphabets,
  so that choices (image size, augmentation, schedules ...) are tuned without ever looking at
  the evaluation alphabets.
- :func:`with_rotated_classes` adds each character rotated by 90, 180 and 270 degrees as three
  new characters (Vinyals et al. 2016; Snell et al. 2017): four times the classes to learn from
  at no extra cost per step.
"""

from __future__ import annotations

import numpy as np

from oneshot.data.datasets import OmniglotSet
from oneshot.data.splits import VALIDATION_SEED, subset_classes

__all__ = ["VALIDATION_SEED", "hold_out_alphabets", "with_rotated_classes", "subset_alphabets"]


def subset_alphabets(data: OmniglotSet, keep: np.ndarray) -> OmniglotSet:
    """The images of the alphabets ``keep`` (indices into ``alphabet_names``), relabelled 0..C-1.

    Labels and alphabet ids are renumbered in their original order, so the subset is an
    ordinary ``OmniglotSet`` (:func:`oneshot.data.splits.subset_classes` of their classes).
    """
    keep = np.unique(np.asarray(keep, dtype=np.int64))
    if keep.size == 0 or keep.min() < 0 or keep.max() >= len(data.alphabet_names):
        raise ValueError(
            f"Invalid value for argument `keep`. Expected alphabet indices in "
            f"[0, {len(data.alphabet_names)}). Received: keep={keep.tolist()!r}"
        )
    return subset_classes(data, np.unique(data.labels[np.isin(data.alphabets, keep)]))


def hold_out_alphabets(
    data: OmniglotSet, count: int, seed: int = VALIDATION_SEED
) -> tuple[OmniglotSet, OmniglotSet]:
    """Split ``data`` into (training, validation) sets of whole alphabets.

    Args:
        data: an Omniglot split, normally the background set.
        count: number of alphabets held out for validation (at least 1, fewer than all).
        seed: which alphabets are held out (a seeded draw). Defaults to ``VALIDATION_SEED``.

    Returns:
        ``(train, validation)``, each relabelled from 0.

    Example:
    >>> train, val = hold_out_alphabets(load_omniglot("background"), count=6)
    >>> len(train.alphabet_names), len(val.alphabet_names)
    (24, 6)
    """
    total = len(data.alphabet_names)
    if not 1 <= int(count) < total:
        raise ValueError(
            f"Invalid value for argument `count`. Expected 1 <= count < {total} (the alphabets "
            f"of the set). Received: count={count!r}"
        )
    held = np.random.default_rng(seed).choice(total, size=int(count), replace=False)
    kept = np.setdiff1d(np.arange(total), held)
    return subset_alphabets(data, kept), subset_alphabets(data, held)


def with_rotated_classes(data: OmniglotSet) -> OmniglotSet:
    """``data`` plus each image rotated by 90, 180 and 270 degrees, each rotation a new class.

    Character ``c`` rotated by ``r`` quarter turns gets label ``c + r * C`` (C characters) and
    alphabet ``a + r * A``, so P x K batches and within-alphabet sampling treat a rotated
    alphabet as an alphabet of its own. Images must be square.
    """
    images = np.asarray(data.images)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(
            f"Expected square images (N, S, S) to rotate. Received shape {images.shape}."
        )
    classes, alphabets = len(data.character_names), len(data.alphabet_names)
    turns = range(4)
    return OmniglotSet(
        images=np.concatenate([np.rot90(images, r, axes=(1, 2)) for r in turns]),
        labels=np.concatenate([data.labels + r * classes for r in turns]).astype(np.int32),
        alphabets=np.concatenate([data.alphabets + r * alphabets for r in turns]).astype(np.int32),
        alphabet_names=[f"{n}{_suffix(r)}" for r in turns for n in data.alphabet_names],
        character_names=[f"{n}{_suffix(r)}" for r in turns for n in data.character_names],
        drawers=np.concatenate([data.drawers] * 4),
    )


def _suffix(turns: int) -> str:
    return f"/rot{90 * turns}" if turns else ""
