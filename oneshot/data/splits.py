"""Validation splits by class, for any labelled set: train on some classes, validate on others.

One-shot learning is judged on classes the network never saw, so choices made during
training (when to stop, which checkpoint to keep) must be judged on unseen classes too, and
never on the test split. :func:`hold_out_classes` splits a ``LabelledImages`` (MNIST, a folder
of your images, Omniglot ...) into training classes and held-out classes, like
``oneshot.data.variants.hold_out_alphabets`` does with whole Omniglot alphabets. With groups
(an ``OmniglotSet``: alphabets, or the group folders of ``load_image_folder``), whole groups are
held out, so within-group episodes on the held-out side meet no class seen in training.

Example:
>>> train, held = hold_out_classes(load_mnist("train"), [5, 6, 7, 8, 9])
>>> held.class_names
['5', '6', '7', '8', '9']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from oneshot.data.datasets import LabelledImages, OmniglotSet

__all__ = [
    "VALIDATION_SEED",
    "ClassSpec",
    "check_class_spec",
    "hold_out_classes",
    "resolve_classes",
    "subset_classes",
]

Data = TypeVar("Data", bound=LabelledImages)
ClassSpec = int | float | Sequence[int | str]

# The draw of held-out classes (and alphabets) every run of a dataset shares, whatever its
# training seed: seeds of one recipe are then compared on the same held-out classes.
VALIDATION_SEED = 0
MIN_CLASSES = 2  # a one-shot episode and a metric-learning batch both need two classes


def class_names(data: LabelledImages) -> list[str]:
    """The name of every label 0..C-1: ``data.class_names``, or the labels themselves."""
    if data.class_names is not None:
        return list(data.class_names)
    return [str(label) for label in range(int(np.max(data.labels)) + 1)]


def subset_classes(data: Data, keep: np.ndarray) -> Data:
    """The images of the classes ``keep`` (labels of ``data``), relabelled 0..C-1 in order.

    Class names, files and (for an ``OmniglotSet``) alphabets and drawers follow their images;
    alphabets are renumbered among those that keep a class, so the subset is an ordinary set
    of the same type. Unnamed classes (MNIST digits) get their old labels as names.
    """
    names = class_names(data)
    keep = np.unique(np.asarray(keep, dtype=np.int64))
    if keep.size == 0 or keep.min() < 0 or keep.max() >= len(names):
        raise ValueError(
            f"Invalid value for argument `keep`. Expected class labels in [0, {len(names)}). "
            f"Received: keep={keep.tolist()!r}"
        )
    mask = np.isin(data.labels, keep)
    label_map = np.full(len(names), -1, np.int32)
    label_map[keep] = np.arange(len(keep), dtype=np.int32)
    labels = label_map[data.labels[mask]]
    kept_names = [names[i] for i in keep]
    files = None if data.files is None else [f for f, m in zip(data.files, mask, strict=True) if m]
    if not isinstance(data, OmniglotSet):
        return type(data)(data.images[mask], labels, class_names=kept_names, files=files)
    groups = np.unique(data.alphabets[mask])
    group_map = np.full(len(data.alphabet_names), -1, np.int32)
    group_map[groups] = np.arange(len(groups), dtype=np.int32)
    return type(data)(
        images=data.images[mask],
        labels=labels,
        alphabets=group_map[data.alphabets[mask]],
        alphabet_names=[data.alphabet_names[g] for g in groups],
        character_names=kept_names,
        drawers=data.drawers[mask],
        class_names=kept_names,
        files=files,
    )


def resolve_classes(data: LabelledImages, classes: Sequence[int | str]) -> np.ndarray:
    """The labels of ``classes``, given as labels (ints) or class names (strings)."""
    names = class_names(data)
    index = {name: i for i, name in enumerate(names)}
    labels, unknown = [], []
    for c in classes:
        if isinstance(c, str):
            labels.append(index.get(c, -1))
        elif isinstance(c, int | np.integer) and not isinstance(c, bool):
            labels.append(int(c) if 0 <= c < len(names) else -1)
        else:
            labels.append(-1)
        if labels[-1] < 0:
            unknown.append(c)
    if unknown:
        shown = ", ".join(repr(n) for n in names[:8]) + (" ..." if len(names) > 8 else "")
        raise ValueError(
            f"Invalid value for argument `classes`. Expected class names or labels of the "
            f"data ({len(names)} classes: {shown}). Received unknown class(es) {unknown!r}."
        )
    if len(set(labels)) != len(labels):
        raise ValueError(
            f"Invalid value for argument `classes`. Expected distinct classes. Received: "
            f"classes={list(classes)!r}"
        )
    return np.array(labels, dtype=np.int64)


def check_class_spec(classes: ClassSpec) -> ClassSpec:
    """``classes`` if it is a count (int >= 1), a fraction (0 < f < 1) or a non-empty list of
    class names or labels; else a ValueError saying what is expected."""
    is_list = isinstance(classes, Sequence | np.ndarray) and not isinstance(classes, str)
    if is_list:
        if len(classes) and all(isinstance(c, str | int | np.integer) for c in classes):
            if not any(isinstance(c, bool) for c in classes):
                return classes
    elif isinstance(classes, int | np.integer) and not isinstance(classes, bool):
        if classes >= 1:
            return classes
    elif isinstance(classes, float | np.floating) and 0 < classes < 1:
        return classes
    raise ValueError(
        "Invalid value for argument `classes`. Expected a count of classes (int >= 1), a "
        f"fraction of them (0 < f < 1) or a list of class names or labels. Received: "
        f"classes={classes!r}"
    )


def _count(spec: int | float, total: int) -> int:
    """Held-out classes asked for by a count or a fraction of ``total``."""
    if isinstance(spec, float | np.floating):
        return max(1, round(float(spec) * total))
    return int(spec)


def _draw(data: LabelledImages, count: int, total: int, seed: int) -> np.ndarray:
    """``count`` classes at random; with groups, whole groups until ``count`` is reached."""
    rng = np.random.default_rng(seed)
    groups = getattr(data, "alphabets", None)
    if groups is None or len(np.unique(groups)) < 2:
        return np.sort(rng.choice(total, size=min(count, total), replace=False))
    group_of_class = np.zeros(total, dtype=np.int64)
    group_of_class[data.labels] = groups
    held: list[int] = []
    for group in rng.permutation(np.unique(groups)):
        if len(held) >= count:
            break
        held.extend(np.flatnonzero(group_of_class == group).tolist())
    return np.sort(np.array(held, dtype=np.int64))


def hold_out_classes(
    data: Data,
    classes: ClassSpec,
    seed: int = VALIDATION_SEED,
    min_held_out: int = MIN_CLASSES,
) -> tuple[Data, Data]:
    """Split ``data`` into (training, held-out) sets of disjoint classes.

    Args:
        data: any labelled set (``LabelledImages`` or ``OmniglotSet``).
        classes: the held-out classes: a count (int >= 1), a fraction of the classes
            (0 < f < 1, rounded, at least 1), or a list of class names or labels (e.g.
            ``[5, 6, 7, 8, 9]`` for MNIST, ``["cat", "dog"]`` for a folder). A count or a
            fraction is drawn with ``seed``; on grouped data whole groups are drawn until there
            are at least that many classes.
        seed: the draw of a count or a fraction. Defaults to ``VALIDATION_SEED``.
        min_held_out: the fewest held-out classes with two images (a support and a query)
            accepted: the N of the N-way episodes validation can run. Defaults to 2.

    Returns:
        ``(train, held_out)``, each relabelled from 0 and of the type of ``data``.

    Raises:
        ValueError: for a bad ``classes``, or a split that leaves fewer than 2 training
            classes or fewer than ``min_held_out`` usable held-out classes (the message says
            how many the data has).

    Example:
    >>> train, held = hold_out_classes(load_image_folder("my_logos"), 0.2)
    """
    total = len(class_names(data))
    check_class_spec(classes)
    if not isinstance(classes, Sequence | np.ndarray):
        held = _draw(data, _count(classes, total), total, seed)
    else:
        held = np.sort(resolve_classes(data, list(classes)))
    kept = np.setdiff1d(np.arange(total), held)
    present = np.unique(data.labels)
    kept = kept[np.isin(kept, present)]
    if len(kept) < MIN_CLASSES:
        raise ValueError(
            f"Invalid value for argument `classes`. Expected to leave at least {MIN_CLASSES} "
            f"of the {total} classes for training. Received: classes={_shown(classes)}, which "
            f"holds out {len(held)} and leaves {len(kept)}."
        )
    counts = np.bincount(data.labels, minlength=total)
    usable = int(np.sum(counts[held] >= 2))
    if usable < min_held_out:
        raise ValueError(
            f"Invalid value for argument `classes`. Expected at least {min_held_out} held-out "
            f"classes with 2 or more images (N-way one-shot episodes need N such classes). "
            f"Received: classes={_shown(classes)}, which holds out {len(held)} of the {total} "
            f"classes, {usable} of them with 2 or more images."
        )
    return subset_classes(data, kept), subset_classes(data, held)


def _shown(classes: ClassSpec) -> str:
    values = list(classes) if isinstance(classes, Sequence | np.ndarray) else classes
    return repr(
        values if not isinstance(values, list) or len(values) <= 10 else values[:10] + ["..."]
    )
