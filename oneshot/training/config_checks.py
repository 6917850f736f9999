"""The checks of a run config's data, held-out classes, pretrained start and augmentation
(:class:`oneshot.training.configs.RunConfig` runs them when it is made): each refuses a value
with the field's name, what was expected and what arrived."""

from __future__ import annotations

import os
from typing import Any

from oneshot.data.splits import check_class_spec

MAX_AUGMENT_STRENGTH = 3.0  # beyond, the scale range (1 +- 0.2 x strength) nears zero
CHECKSUM_PREFIX = "sha256:"


def refuse(field_name: str, value: Any, expected: str) -> None:
    raise ValueError(
        f"Invalid value for `{field_name}`. Expected {expected}. Received: {field_name}={value!r}"
    )


def check_data(config: Any) -> None:
    if (config.dataset == "folder") != (config.folder is not None):
        refuse("folder", config.folder, "a folder path exactly when dataset='folder'")
    if config.dataset == "folder" and config.validation_classes is None:
        refuse("validation_classes", None,
               "held-out classes for dataset='folder' (a folder has no test split)")  # fmt: skip
    if config.channels not in (1, 3) or (config.channels == 3 and config.dataset != "folder"):
        refuse("channels", config.channels, "1 (grey), or 3 (colour) when dataset='folder'")


def check_init(config: Any) -> None:
    if isinstance(config.init_from, os.PathLike):
        object.__setattr__(config, "init_from", os.fspath(config.init_from))
    if config.init_from is not None and not (
        isinstance(config.init_from, str) and config.init_from
    ):
        refuse("init_from", config.init_from, "None or the path of a model.keras")
    checksum = config.init_checksum
    if checksum is not None and (
        config.init_from is None
        or not isinstance(checksum, str)
        or not checksum.startswith(CHECKSUM_PREFIX)
    ):
        refuse("init_checksum", checksum,
               f"None, or '{CHECKSUM_PREFIX}<hex>' of the init_from file (set by "
               "oneshot.training.pretrained.pinned)")  # fmt: skip


def check_augment(config: Any) -> None:
    strength = config.augment_strength
    number = isinstance(strength, int | float) and not isinstance(strength, bool)
    if not (number and 0 < strength <= MAX_AUGMENT_STRENGTH) or (
        strength != 1.0 and not config.augment
    ):
        refuse("augment_strength", strength,
               f"a number in (0, {MAX_AUGMENT_STRENGTH:g}] (1: Koch's ranges), other than 1 "
               "only with augment=True")  # fmt: skip


def check_held_out(config: Any) -> None:
    spec = config.validation_classes
    if isinstance(spec, list):  # from JSON
        spec = tuple(spec)
        object.__setattr__(config, "validation_classes", spec)
    if spec is not None:
        try:
            check_class_spec(spec)
        except ValueError:
            refuse("validation_classes", spec,
                   "None, a count >= 1, a fraction 0 < f < 1 or a list of classes")  # fmt: skip
        if config.validation_alphabets:
            refuse("validation_classes", spec, "None when validation_alphabets is set")
    if config.keep_best and not (config.held_out and config.monitor_episodes):
        refuse("keep_best", True,
               "False unless held-out classes are monitored (validation_classes or "
               "validation_alphabets, and monitor_episodes > 0)")  # fmt: skip
    if config.keep_start and not config.keep_best:
        refuse("keep_start", True, "False unless keep_best is set")
    if config.patience < 0 or (config.patience and not config.keep_best):
        refuse("patience", config.patience, "0, or a number of chunks >= 1 with keep_best")
