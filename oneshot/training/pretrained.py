"""Start a run from a pretrained network: ``init_from``, the ``model.keras`` of another run, or
the name of a start that ships with the package (``"omniglot"``, ``"mnist"``:
:mod:`oneshot.models.starts`).

The run builds its embedding network from its config as usual, then gives it every weight of
the file's embedding network (BatchNormalization statistics included) before the first step
(:func:`initialise`). Both must be the same network: same input shape, same layers with the
same weight shapes; otherwise the run is refused naming both and what to change, before
anything is written (:func:`pinned`).

The file's sha256 is recorded in the run's config (``init_checksum``, set by :func:`pinned` when
a run starts), so a result says which network it started from, and ``--resume`` refuses a file
that changed since.

The runner saves the weights before the first step as the run's "untrained" baseline
(:mod:`oneshot.training.baselines`): with ``init_from`` that is the pretrained network itself,
so the ``heldout`` report of ``metrics.json`` says whether training on the run's data improved
on the network it started from.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import keras

from oneshot.data.sources import file_digests
from oneshot.errors import UsageError
from oneshot.models.identity import embedding_network
from oneshot.models.networks import build_network
from oneshot.models.saving import ModelFileError, load_model
from oneshot.models.starts import STARTS, start_path
from oneshot.training.config_checks import CHECKSUM_PREFIX
from oneshot.training.configs import RunConfig
from oneshot.training.files import CONFIG_FILE

__all__ = ["InitFromError", "file_checksum", "initialise", "pinned", "pretrained_network"]


class InitFromError(UsageError, ValueError):
    """``init_from`` cannot start the run: a missing or changed file, or another network."""


def file_checksum(path: str | Path) -> str:
    """``"sha256:<64 hex digits>"`` of the file's bytes (as ``sha256sum`` prints them)."""

    return CHECKSUM_PREFIX + file_digests(path)[0]


def pretrained_network(config: RunConfig) -> keras.Model:
    """The embedding network of the config's ``init_from`` file; an :class:`InitFromError`
    naming the file (and how to produce it) if it is missing or not a model."""

    path = start_path(config.init_from)
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative to the current folder {Path.cwd()})"
        raise InitFromError(
            f"Invalid value for `init_from`. Expected the model.keras of a trained run or a "
            f"shipped start ({', '.join(STARTS)}). "
            f"Received: init_from={config.init_from!r}, which does not exist{where}. "
            + "Point init_from to the model.keras of a finished run (python -m oneshot.train "
            "writes OUT/<run>/model.keras)."
        )
    try:
        return embedding_network(load_model(path, compile=False))
    except ModelFileError as error:
        raise InitFromError(f"Invalid value for `init_from`: {error}") from None


def _layers(network: keras.Model) -> list[tuple[str, tuple[tuple[int, ...], ...]]]:
    """(layer type, weight shapes) of every layer: the architecture as the weights see it."""
    return [
        (type(layer).__name__, tuple(tuple(w.shape) for w in layer.weights))
        for layer in network.layers
    ]


def _describe(network: keras.Model) -> str:
    return (
        f"input {tuple(network.input_shape[1:])}, output {tuple(network.output_shape[1:])}, "
        f"{len(network.layers)} layers, {network.count_params():,} parameters"
    )


def _trained_with(path: Path) -> str:
    """The network settings in the ``config.json`` beside ``path`` (a run folder), if any."""
    try:
        values: dict[str, Any] = json.loads((path.parent / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return ""
    keys = ("network", "image_size", "channels", "embedding_dim", "network_kwargs")
    shown = ", ".join(f"{k}={values[k]!r}" for k in keys if k in values)
    return f" Its run's {CONFIG_FILE} has {shown}." if shown else ""


def check_architecture(network: keras.Model, source: keras.Model, config: RunConfig) -> None:
    """An :class:`InitFromError` naming both networks unless ``source`` (from ``init_from``)
    has the input shape and the layers of ``network`` (built from ``config``)."""
    ours = f"network={config.network!r}, embedding_dim={config.embedding_dim}, " + (
        f"network_kwargs={config.network_kwargs!r}"
    )
    start = (
        f"Invalid value for `init_from`. Expected a model whose embedding network is the run's "
        f"({ours}; {_describe(network)}). Received: init_from={config.init_from!r}, whose "
        f"embedding network {source.name!r} has {_describe(source)}"
    )
    hint = _trained_with(start_path(config.init_from))
    if tuple(source.input_shape[1:]) != tuple(network.input_shape[1:]):
        size, channels = source.input_shape[1], source.input_shape[-1]
        raise InitFromError(
            f"{start}: the input shapes differ. Set the run's image_size to {size} and channels "
            f"to {channels} (--image-size {size} with --images); images are resized to it.{hint}"
        )
    mine, theirs = _layers(network), _layers(source)
    if mine != theirs:
        first = next(
            (i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b),
            min(len(mine), len(theirs)),
        )
        at = (
            f"layer {first}: {mine[first] if first < len(mine) else None} in the run's, "
            f"{theirs[first] if first < len(theirs) else None} in the file's"
        )
        raise InitFromError(
            f"{start}: the architectures differ (first at {at}). Set network, embedding_dim "
            f"and network_kwargs to those the pretrained network was trained with.{hint}"
        )


def pinned(config: RunConfig) -> RunConfig:
    """``config`` with ``init_checksum`` set to its ``init_from`` file's sha256, after checking
    that the file's network fits the run (:func:`check_architecture`); ``config`` itself without
    ``init_from``.

    Raises:
        InitFromError: the file is missing, not a model, another network, or not the one
            ``init_checksum`` already records (it changed since the run started).
    """
    if config.init_from is None:
        return config

    source = pretrained_network(config)
    _check_unchanged(config)
    network = build_network(
        config.network, config.input_shape, config.embedding_dim, **config.network_kwargs
    )
    check_architecture(network, source, config)
    return dataclasses.replace(config, init_checksum=file_checksum(start_path(config.init_from)))


def _check_unchanged(config: RunConfig) -> None:
    found = file_checksum(start_path(config.init_from))
    if config.init_checksum is not None and found != config.init_checksum:
        raise InitFromError(
            f"The pretrained model init_from={config.init_from!r} changed since the run "
            f"recorded it: its sha256 is {found}, the run has init_checksum="
            f"{config.init_checksum!r}. Restore the file, or train a new run from it "
            "(--overwrite or another --out)."
        )


def initialise(network: keras.Model, config: RunConfig) -> None:
    """Give ``network`` (just built from ``config``) the weights of the ``init_from`` file's
    embedding network, after checking that the file is the one ``init_checksum`` records (if
    set) and the same network."""
    source = pretrained_network(config)
    _check_unchanged(config)
    check_architecture(network, source, config)
    network.set_weights(source.get_weights())
