"""Typed run configs: one per model kind, so a setting the run would ignore cannot be written.

:class:`SiameseRun`, :class:`TripletRun`, :class:`QuadrupletRun` and :class:`OnlineRun` share
the fields of :class:`RunConfig` (data, network, optimisation, evaluation, monitoring) and add
only what their kind uses; combinations that cannot work are refused naming the field.
``to_dict`` / ``RunConfig.from_dict`` give the ``config.json`` of a run folder (losses and
distances as Keras configs); :func:`from_legacy_dict` reads oneshot 0.1's format.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import keras

from oneshot.distances import Distance, get_distance
from oneshot.losses import (
    CrossBatchMemory,
    MetricLoss,
    OnlineContrastiveLoss,
    OnlineQuadrupletLoss,
    OnlineTripletLoss,
)
from oneshot.models.builders import SIAMESE_HEADS
from oneshot.training.config_checks import (
    check_augment,
    check_data,
    check_held_out,
    check_init,
    refuse,
)

MODEL_KINDS = ("siamese", "triplet", "quadruplet", "online")
SAMPLERS = ("random", "hard_batch", "pk")
DATASETS = ("mnist", "omniglot", "folder")
# Fields added after oneshot 0.3: written to config.json only when set, so the config.json of an
# older run stays what this code writes for it.
WRITTEN_WHEN_SET = (
    "folder", "folder_checksum", "channels", "validation_classes", "keep_best", "patience",
    "augment_strength", "init_from", "init_checksum", "precision", "keep_start",
)  # fmt: skip
PRECISIONS = ("float32", "mixed_bfloat16")  # Keras dtype policies a run can train with


@dataclass(frozen=True, kw_only=True, eq=False)
class RunConfig:
    """What every run has: data, network, optimisation, evaluation and monitoring.

    Use one of the typed subclasses, one per model kind: :class:`SiameseRun`,
    :class:`TripletRun`, :class:`QuadrupletRun`, :class:`OnlineRun`. Each holds only the
    fields its kind uses, so a setting that would be ignored cannot be written.
    """

    kind: ClassVar[str] = ""
    name: str
    # data
    dataset: str = "mnist"  # or "folder": your images (``folder``, read by load_image_folder)
    folder: str | None = None  # dataset="folder": the folder of class sub-folders
    folder_checksum: str | None = None  # its content (oneshot.data.fingerprint): resume checks it
    image_size: int = 28
    channels: int = 1  # 3: colour images (folders only)
    augment: bool = False
    # augment: Koch's affine ranges multiplied by this (oneshot.data.augment.random_affine)
    augment_strength: float = 1.0
    rotated_classes: bool = False  # Omniglot: add 90/180/270-degree rotations as new classes
    validation_alphabets: int = 0  # >0: tune mode, hold out this many background alphabets
    # any dataset: hold out these classes of the training split (a count, a fraction or a list
    # of names or labels; oneshot.data.splits.hold_out_classes), monitored on; evaluated on
    # the test split (MNIST: its images of these classes) or, for a folder, on the same images
    validation_classes: int | float | tuple[int | str, ...] | None = None
    # network
    network: str = "conv4"
    embedding_dim: int = 64
    network_kwargs: dict[str, Any] = field(default_factory=dict)
    # start from the embedding network of this model.keras (same architecture and input shape)
    # instead of random weights; its sha256 is pinned in init_checksum (oneshot.training.pretrained)
    init_from: str | None = None
    init_checksum: str | None = None
    # optimisation
    steps: int = 2000
    # "mixed_bfloat16": the embedding network computes in bfloat16 while training (variables
    # stay float32); the saved model and the evaluation are float32 (oneshot.training.setup)
    precision: str = "float32"
    learning_rate: float = 1e-3
    final_learning_rate: float | None = None
    log_every: int = 100
    # evaluation after training
    eval_distance: str | None = None  # None: the distance the model was trained with
    test_shifts: int = 0  # test-time shift averaging in pixels (0: off); see inference.Scorer
    # monitoring during training: 20-way within-alphabet accuracy every log chunk (0: off)
    monitor_episodes: int = 0
    monitor_drawers: int = 4  # images of this many drawers per class form the monitor set
    # held-out classes only: keep the weights of the best monitored chunk (restored at the end)
    keep_best: bool = False
    patience: int = 0  # keep_best: stop after this many chunks without improvement (0: never)
    # keep_best: the weights before the first step are a candidate too (monitored at step 0),
    # so a run that does not beat its start keeps it (oneshot.training.best.KeepBest.offer_start)
    keep_start: bool = False

    def __post_init__(self) -> None:
        if type(self) is RunConfig:
            raise TypeError(
                "RunConfig is the common base; use SiameseRun, TripletRun, QuadrupletRun or "
                "OnlineRun (one per model kind)."
            )
        if self.dataset not in DATASETS:
            refuse("dataset", self.dataset, f"one of {DATASETS}")
        if self.validation_alphabets and self.dataset != "omniglot":
            refuse("validation_alphabets", self.validation_alphabets, "0 unless dataset='omniglot'")
        check_data(self)
        check_held_out(self)
        check_init(self)
        check_augment(self)
        if self.rotated_classes and self.dataset != "omniglot":
            refuse("rotated_classes", self.rotated_classes, "False unless dataset='omniglot'")
        for name in ("steps", "log_every", "image_size", "embedding_dim"):
            if int(getattr(self, name)) < 1:
                refuse(name, getattr(self, name), "a positive integer")
        if self.precision not in PRECISIONS:
            refuse("precision", self.precision, f"one of {PRECISIONS}")
        if not self.learning_rate > 0:
            refuse("learning_rate", self.learning_rate, "a number > 0")
        if self.final_learning_rate is not None and not self.final_learning_rate > 0:
            refuse("final_learning_rate", self.final_learning_rate, "None or a number > 0")
        if self.test_shifts < 0 or self.monitor_episodes < 0:
            refuse(
                "test_shifts/monitor_episodes",
                (self.test_shifts, self.monitor_episodes),
                "values >= 0",
            )

    @property
    def held_out(self) -> bool:
        """Whether the run holds out classes of its training split (monitored, and compared
        with the untrained network and raw pixels after training): ``validation_classes`` or
        ``validation_alphabets``. Their evaluation uses the test split when the dataset has
        one and the classes are not alphabets for tuning
        (:func:`oneshot.training.setup.held_out_split`)."""
        return self.validation_classes is not None or bool(self.validation_alphabets)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, self.channels)

    @property
    def epochs(self) -> int:
        """Keras epochs: one epoch = ``log_every`` steps, so history.csv has a row per chunk."""
        return -(-self.steps // self.log_every)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, ``kind`` first; losses and distances as Keras configs."""
        values: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in WRITTEN_WHEN_SET and value == f.default:
                continue
            if isinstance(value, (keras.losses.Loss, Distance)):
                value = keras.saving.serialize_keras_object(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            values[f.name] = value
        return values

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunConfig) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    @staticmethod
    def from_dict(values: dict[str, Any]) -> RunConfig:
        """The typed config of a ``config.json`` (this version's, or oneshot 0.1's with a free
        ``loss`` dict, converted by :func:`from_legacy_dict`). Unknown fields are refused."""
        values = {k: v for k, v in values.items() if k != "seed"}
        if "loss" in values and isinstance(values.get("loss"), dict) and "sampler" in values:
            return from_legacy_dict(values)
        kind = values.pop("kind", None)
        if kind not in CONFIG_TYPES:
            refuse("kind", kind, f"one of {MODEL_KINDS}")
        cls = CONFIG_TYPES[kind]
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown field(s) {unknown} for a {cls.__name__} (kind={kind!r}). "
                f"Known fields: {sorted(known)}"
            )
        if kind == "online":
            values["loss"] = keras.saving.deserialize_keras_object(values["loss"])
        for key in ("metric_hidden",):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


_OFFLINE_SAMPLERS = ("random", "hard_batch")


@dataclass(frozen=True, kw_only=True, eq=False)
class _TupleSampling:
    """Sampling of offline tuple models: random tuples or the original hard batches."""

    sampler: str = "random"
    batch_size: int = 32
    candidates: int = 200
    hardest: int = 16
    random_extra: int = 16

    def _check_sampling(self) -> None:
        if self.sampler not in _OFFLINE_SAMPLERS:
            refuse(
                "sampler", self.sampler,
                f"one of {_OFFLINE_SAMPLERS} for a {type(self).__name__} (P x K batches are for "
                "an OnlineRun)",
            )  # fmt: skip
        if self.sampler == "hard_batch":
            if (
                min(self.hardest, self.random_extra) < 0
                or self.hardest + self.random_extra > self.candidates
            ):
                refuse("hardest/random_extra", (self.hardest, self.random_extra),
                        f"non-negative with hardest + random_extra <= candidates={self.candidates}")  # fmt: skip
        elif self.batch_size < 1:
            refuse("batch_size", self.batch_size, "a positive integer")


@dataclass(frozen=True, kw_only=True, eq=False)
class SiameseRun(RunConfig):
    """A siamese model on balanced random pairs (``oneshot.models.build_siamese``)."""

    kind: ClassVar[str] = "siamese"
    head: str = "contrastive"
    margin: float = 1.0
    hidden: int = 64
    batch_size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()

        if self.head not in SIAMESE_HEADS:
            refuse("head", self.head, f"one of {SIAMESE_HEADS}")

    @property
    def sampler(self) -> str:
        return "random"

    @property
    def loss(self) -> dict[str, Any]:
        return {"head": self.head, "margin": self.margin}


@dataclass(frozen=True, kw_only=True, eq=False)
class TripletRun(_TupleSampling, RunConfig):
    """A triplet model with its loss layer (``oneshot.models.build_triplet``)."""

    kind: ClassVar[str] = "triplet"
    margin: float = 0.2
    distance: str = "euclidean"
    soft_margin: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_sampling()
        get_distance(self.distance)

    @property
    def loss(self) -> dict[str, Any]:
        extra = {"soft_margin": True} if self.soft_margin else {}
        return {"margin": self.margin, "distance": self.distance, **extra}


@dataclass(frozen=True, kw_only=True, eq=False)
class QuadrupletRun(_TupleSampling, RunConfig):
    """A quadruplet model, learned metric or fixed distance (``oneshot.models.build_quadruplet``)."""

    kind: ClassVar[str] = "quadruplet"
    metric: str = "learned"
    alpha1: float = 1.0
    alpha2: float = 0.5
    squared: bool = True
    adaptive_margin: bool = False
    metric_hidden: tuple[int, ...] = (10, 10, 10)
    original_quadruplet_sampling: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_sampling()
        if self.metric != "learned":
            get_distance(self.metric)

    @property
    def loss(self) -> dict[str, Any]:
        return {"metric": self.metric, "alpha1": self.alpha1, "alpha2": self.alpha2}


@dataclass(frozen=True, kw_only=True, eq=False)
class OnlineRun(RunConfig):
    """An embedding network trained with an in-batch loss on P x K batches
    (``oneshot.models.build_online``). ``loss`` is the loss object itself, with its distance,
    miner and reducer (e.g. ``TripletMarginLoss(miner=BatchHardMiner())``)."""

    kind: ClassVar[str] = "online"
    loss: keras.losses.Loss
    classes_per_batch: int = 32
    samples_per_class: int = 4
    within_alphabet: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()

        # keras.losses.Circle takes labels and embeddings too (oneshot.losses.KerasCircleLoss)
        if not isinstance(self.loss, (MetricLoss, CrossBatchMemory, keras.losses.Circle)):
            refuse(
                "loss", self.loss, "an in-batch loss of oneshot.losses (e.g. TripletMarginLoss())"
            )
        if self.classes_per_batch < 2 or self.samples_per_class < 2:
            refuse("classes_per_batch/samples_per_class", (self.classes_per_batch, self.samples_per_class),
                    "at least 2 classes of at least 2 images (positives and negatives in every batch)")  # fmt: skip
        if self.within_alphabet and self.dataset != "omniglot":
            refuse("within_alphabet", True, "False unless dataset='omniglot' (alphabets)")

    @property
    def sampler(self) -> str:
        return "pk"


CONFIG_TYPES: dict[str, type[RunConfig]] = {
    "siamese": SiameseRun,
    "triplet": TripletRun,
    "quadruplet": QuadrupletRun,
    "online": OnlineRun,
}


def from_legacy_dict(values: dict[str, Any]) -> RunConfig:
    """Convert a oneshot 0.1 ``config.json`` (one bag of fields with a free ``loss`` dict) to its
    typed config, refusing loss keys that the run would have ignored."""
    values = dict(values)
    kind, loss, sampler = values.pop("kind"), dict(values.pop("loss")), values.pop("sampler")
    offline = ("batch_size", "candidates", "hardest", "random_extra")
    pk = ("classes_per_batch", "samples_per_class", "within_alphabet")
    common = {
        k: v for k, v in values.items() if k not in (*offline, *pk, "original_quadruplet_sampling")
    }

    def take(allowed: tuple[str, ...]) -> dict[str, Any]:
        unknown = sorted(set(loss) - set(allowed))
        if unknown:
            raise ValueError(
                f"Loss key(s) {unknown} are not used by a {kind} run; known: {allowed}"
            )
        return loss

    if kind == "siamese":
        return SiameseRun(
            **common, **take(("head", "margin", "hidden")), batch_size=values["batch_size"]
        )
    sampling = {k: values[k] for k in offline}
    if kind == "triplet":
        loss = {"distance": "squared_euclidean", **take(("margin", "distance", "soft_margin"))}
        return TripletRun(**common, **loss, sampler=sampler, **sampling)  # 0.1: squared L2
    if kind == "quadruplet":
        options = take(
            ("metric", "alpha1", "alpha2", "squared", "adaptive_margin", "metric_hidden")
        )
        if "metric_hidden" in options:
            options["metric_hidden"] = tuple(options["metric_hidden"])
        return QuadrupletRun(**common, **options, sampler=sampler, **sampling,
                             original_quadruplet_sampling=values["original_quadruplet_sampling"])  # fmt: skip

    miner = loss.pop("miner", "batch_hard")
    if miner == "quadruplet_margin":
        built = OnlineQuadrupletLoss(**loss)
    elif miner == "hard_pairs":
        built = OnlineContrastiveLoss(**loss)
    else:
        built = OnlineTripletLoss(miner=miner, **loss)
    return OnlineRun(**common, loss=built, **{k: values[k] for k in pk})
