"""From a RunConfig to the pieces of a run: data, optimiser, compiled model and tf.data input."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from oneshot.data import DataError, load_image_folder, load_mnist, load_omniglot
from oneshot.data.datasets import TEST_SPLIT, TRAIN_SPLIT, LabelledImages
from oneshot.data.fingerprint import fingerprint
from oneshot.data.samplers import pair_dataset, pk_dataset, quadruplet_dataset, triplet_dataset
from oneshot.data.splits import class_names, hold_out_classes, resolve_classes, subset_classes
from oneshot.data.variants import hold_out_alphabets, with_rotated_classes
from oneshot.losses import GlobalBatchLoss
from oneshot.losses.proxies import ProxyLoss
from oneshot.miners import HardBatchMiner
from oneshot.models.builders import build_online, build_quadruplet, build_siamese, build_triplet
from oneshot.models.networks import build_network
from oneshot.training.configs import OnlineRun, QuadrupletRun, RunConfig, SiameseRun, TripletRun
from oneshot.training.pretrained import initialise


def load_split(config: RunConfig, split: str, data_dir: str | Path | None) -> LabelledImages:
    """The run's dataset split at the run's image size (MNIST's 28x28 digits resized by area
    averaging when ``image_size`` is not 28, e.g. 35 for a network pretrained on Omniglot)."""
    if config.dataset == "mnist":
        size = None if config.image_size == 28 else config.image_size
        return load_mnist(split, data_dir=data_dir, image_size=size)
    return load_omniglot(split, image_size=config.image_size, data_dir=data_dir)


def load_folder(config: RunConfig) -> LabelledImages:
    """The run's folder of images at its size and channels; a DataError if its content is no
    longer the one the run recorded (``folder_checksum``)."""
    data = load_image_folder(config.folder, image_size=config.image_size, channels=config.channels)
    found = fingerprint(data)
    if config.folder_checksum is not None and found != config.folder_checksum:
        raise DataError(
            f"The folder {config.folder} changed since the run started: its content checksum "
            f"is {found}, the run recorded {config.folder_checksum}. Restore the folder, or "
            "train a new run on it (--overwrite or another --out)."
        )
    return data


class RunData(NamedTuple):
    """A run's data (:func:`load_train_and_test`).

    Attributes:
        train: what it trains on.
        test: what its final evaluation (``metrics.json``) uses.
        monitor: what the episode monitor measures during training, and ``keep_best`` chooses
            the kept checkpoint on (a few images of each class: ``monitor_indices``).
    """

    train: LabelledImages
    test: LabelledImages
    monitor: LabelledImages


def as_run_data(data: RunData | tuple[LabelledImages, LabelledImages]) -> RunData:
    """``data`` as a :class:`RunData`; a ``(train, held_out)`` pair monitors and evaluates on
    the same held-out set (a folder, which has no test split)."""
    if isinstance(data, RunData):
        return data
    train, test = data
    return RunData(train, test, test)


def held_out_split(config: RunConfig) -> str:
    """Which split a run with held-out classes is evaluated on: ``"test"`` (the dataset's test
    split: images that neither trained the network nor chose its checkpoint) or ``"train"``
    (a folder, which has no test split, and validation alphabets: the images the monitor chose
    the checkpoint on, so its numbers are optimistic)."""
    if config.validation_classes is not None and config.dataset != "folder":
        return "test"
    return "train"


def load_train_and_test(config: RunConfig, data_dir: str | Path | None) -> RunData:
    """The run's training set, the set its final evaluation uses and the set its monitor
    watches (:class:`RunData`).

    - Normally the dataset's training and test splits (the monitor, if any, logs on the test
      split; nothing is chosen with it).
    - ``validation_alphabets`` (tuning, Omniglot): whole background alphabets are held out, and
      both monitored and evaluated on; the evaluation alphabets are never touched.
    - ``validation_classes``: classes of the training split are held out
      (``oneshot.data.splits.hold_out_classes``); the monitor (and ``keep_best``) watch their
      training-split images. The final evaluation uses the TEST split: on MNIST its images of
      the same held-out classes (the training classes' test images are left out); on Omniglot,
      whose test split (the evaluation alphabets) holds only classes never trained on, all of
      it. A folder has no test split: it is evaluated on the images the monitor watched
      (:func:`held_out_split`).

    ``rotated_classes`` adds rotations to training.
    """
    if config.dataset == "folder":
        train = load_folder(config)
    else:
        train = load_split(config, TRAIN_SPLIT[config.dataset], data_dir)
    if config.validation_alphabets:
        train, test = hold_out_alphabets(train, config.validation_alphabets)
        monitor = test
    elif config.validation_classes is not None:
        train, monitor = hold_out_classes(train, config.validation_classes)
        test = monitor
        if held_out_split(config) == "test":
            test = held_out_test(config, monitor, data_dir)
    else:
        test = load_split(config, TEST_SPLIT[config.dataset], data_dir)
        monitor = test
    if config.rotated_classes:  # Omniglot only (checked by the config)
        train = with_rotated_classes(train)
    return RunData(train, test, monitor)


def held_out_test(
    config: RunConfig, held_out: LabelledImages, data_dir: str | Path | None
) -> LabelledImages:
    """The test split's images of the classes ``held_out`` holds (by name, labelled in its
    order); all of Omniglot's test split, whose classes are all new."""
    test = load_split(config, TEST_SPLIT[config.dataset], data_dir)
    if config.dataset == "omniglot":
        return test
    return subset_classes(test, resolve_classes(test, class_names(held_out)))


def make_optimizer(config: RunConfig) -> keras.optimizers.Optimizer:
    """Adam; with ``final_learning_rate`` the rate follows a cosine from start to final."""
    rate: float | keras.optimizers.schedules.LearningRateSchedule = config.learning_rate
    if config.final_learning_rate is not None:
        rate = keras.optimizers.schedules.CosineDecay(
            config.learning_rate,
            decay_steps=config.steps,
            alpha=config.final_learning_rate / config.learning_rate,
        )
    return keras.optimizers.Adam(rate)


def build_model(
    config: RunConfig, train: LabelledImages | None = None, global_mining: bool = False
) -> keras.Model:
    """The compiled training model of the config's kind around a fresh embedding network, or
    one that starts from the pretrained weights of ``init_from``
    (:func:`oneshot.training.pretrained.initialise`).

    ``train``: the training set, for losses with class weights (``oneshot.losses.ProxyLoss``):
    their ``num_classes`` is set from its labels when the config leaves it None, and must
    match them otherwise. ``global_mining``: wrap an online loss in
    :class:`oneshot.losses.GlobalBatchLoss` (training under a tf.distribute strategy; the
    other kinds ignore it).
    """
    with dtype_policy(config.precision):
        embedding = build_network(
            config.network, config.input_shape, config.embedding_dim, **config.network_kwargs
        )
    if config.init_from is not None:
        initialise(embedding, config)
    optimizer = make_optimizer(config)
    if isinstance(config, SiameseRun):
        return build_siamese(
            embedding, config.head, config.margin, config.hidden, optimizer=optimizer
        )
    if isinstance(config, TripletRun):
        return build_triplet(
            embedding, config.margin, config.distance, config.soft_margin, optimizer=optimizer
        )
    if isinstance(config, QuadrupletRun):
        return build_quadruplet(
            embedding, config.metric, config.alpha1, config.alpha2, config.squared,
            config.adaptive_margin, config.metric_hidden, optimizer=optimizer,
        )  # fmt: skip
    # a fresh copy of the loss: a compiled loss object belongs to one model
    loss = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(config.loss))
    if isinstance(loss, ProxyLoss) and train is not None:
        loss = with_training_classes(loss, train.labels)
    if global_mining:  # under a tf.distribute strategy: mine the whole global batch
        loss = GlobalBatchLoss(loss)
    return build_online(embedding, loss=loss, optimizer=optimizer)


@contextlib.contextmanager
def dtype_policy(name: str):
    """Layers built inside compute with Keras's dtype policy ``name`` (e.g. "mixed_bfloat16":
    bfloat16 maths, float32 variables); the global policy is restored afterwards."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def in_float32(model: keras.Model, config: RunConfig, train: LabelledImages | None) -> keras.Model:
    """``model`` itself for a float32 run; for a mixed-precision one, the same model rebuilt in
    float32 with its weights: what is saved and evaluated (bfloat16's 8-bit mantissa would
    round every distance), while training ran in bfloat16."""
    if config.precision == "float32":
        return model
    rebuilt = build_model(dataclasses.replace(config, precision="float32", init_from=None,
                                              init_checksum=None), train)  # fmt: skip
    rebuilt.set_weights(model.get_weights())
    trained = model.optimizer
    if trained is not None and trained.built:  # the optimizer's state too, as saved for fit
        rebuilt.optimizer.build(rebuilt.trainable_variables)
        for mine, theirs in zip(rebuilt.optimizer.variables, trained.variables, strict=True):
            mine.assign(theirs)
    return rebuilt


def with_training_classes(loss: ProxyLoss, labels: np.ndarray) -> ProxyLoss:
    """``loss`` with one class weight per training class 0..C-1 of ``labels`` (set when it
    is None; a clear error when the config's ``num_classes`` disagrees with the data)."""
    classes = int(np.max(labels)) + 1
    if loss.num_classes is None:
        return loss.with_num_classes(classes)
    if loss.num_classes != classes:
        raise ValueError(
            f"Invalid value for argument `num_classes` of {type(loss).__name__}: the training "
            f"labels run from 0 to {classes - 1} ({classes} classes). Received: "
            f"num_classes={loss.num_classes}. Set num_classes=None to take it from the data."
        )
    return loss


def build_dataset(
    config: RunConfig, model: keras.Model, train: LabelledImages, seed: int, skip: int = 0
) -> tf.data.Dataset:
    """Infinite training input for ``model`` (the kind's element structure), seeded.

    Hard batches are mined with what the built model trains with (its embedding network,
    learned metric, distance and squaring: ``HardBatchMiner.from_model``), so mining and the
    loss cannot disagree.

    ``skip``: the stream starts at that batch, exactly as the stream with ``skip=0`` continues
    after ``skip`` batches (a resumed run; for hard batches the model must already hold the
    weights it had then, since the next batch is mined when the dataset is built).
    """
    augment = config.augment_strength if config.augment else False
    common = dict(seed=seed, augment=augment, skip=skip)
    if isinstance(config, OnlineRun):
        return pk_dataset(
            train.images,
            train.labels,
            p=config.classes_per_batch,
            k=config.samples_per_class,
            alphabets=getattr(train, "alphabets", None),
            within_alphabet=config.within_alphabet,
            **common,
        )
    if isinstance(config, SiameseRun):
        return pair_dataset(train.images, train.labels, config.batch_size, **common)
    original = getattr(config, "original_quadruplet_sampling", False)
    if config.sampler == "hard_batch":
        miner = HardBatchMiner.from_model(
            model,
            train.images,
            train.labels,
            candidates=config.candidates,
            hardest=config.hardest,
            random=config.random_extra,
            seed=seed,
            reproduce_original_bug=original,
        )
        return miner.dataset(skip=skip)
    if isinstance(config, TripletRun):
        return triplet_dataset(train.images, train.labels, config.batch_size, **common)
    return quadruplet_dataset(
        train.images,
        train.labels,
        config.batch_size,
        reproduce_original_bug=original,
        **common,
    )
