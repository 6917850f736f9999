"""The training set-ups the training benchmarks time: networks at an input size, the project's
run configs, the real training data and in-memory P x K batches.

Shared by ``bench_throughput.py``, ``bench_models.py`` and ``bench_memory.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

K = 4  # images per class in a P x K batch
MARGIN = 0.2
HEADLINE_P = 32
MEMORY_BATCHES = 8  # distinct in-memory P x K batches cycled by the in-memory paths
KINDS = ("online", "triplet", "quadruplet", "siamese")


@dataclass(frozen=True)
class NetworkSpec:
    """An embedding network at one input size."""

    label: str
    network: str
    image_size: int
    embedding_dim: int
    kwargs: dict


def parse_network(label: str) -> NetworkSpec:
    """``conv4@28``, ``conv4w32@35``, ``eric_mnist@28``, ``koch@105`` -> a NetworkSpec."""
    name, _, size_text = label.partition("@")
    if not size_text.isdigit():
        raise ValueError(
            f"Invalid value for `--networks`. Expected NAME@SIZE such as conv4@28. "
            f"Received: {label!r}"
        )
    size = int(size_text)
    if name.startswith("conv4"):
        width = int(name[len("conv4w") :]) if name.startswith("conv4w") else 64
        return NetworkSpec(label, "conv4", size, 64, {"width": width})
    if name == "eric_mnist":
        if size != 28:
            raise ValueError(
                "Invalid value for `--networks`. eric_mnist is an MNIST network: expected "
                f"eric_mnist@28. Received: {label!r}"
            )
        return NetworkSpec(label, "eric_mnist", 28, 10, {"padding": "valid"})
    if name == "koch":
        return NetworkSpec(label, "koch", size, 4096, {})
    raise ValueError(
        "Invalid value for `--networks`. Expected conv4@S, conv4wW@S, eric_mnist@28 or koch@S. "
        f"Received: {label!r}"
    )


DEFAULT_NETWORK = parse_network("conv4@28")


def run_config(spec: NetworkSpec, kind: str, p: int = HEADLINE_P, augment: bool = False):
    """The RunConfig of one benchmarked model (the project's own config types)."""
    from oneshot.experiments import OnlineRun, QuadrupletRun, SiameseRun, TripletRun
    from oneshot.losses import TripletMarginLoss
    from oneshot.miners import BatchHardMiner
    from oneshot.reducers import MeanReducer

    common = dict(
        name=f"{spec.label}-{kind}",
        dataset="omniglot",
        image_size=spec.image_size,
        augment=augment,
        network=spec.network,
        embedding_dim=spec.embedding_dim,
        network_kwargs=dict(spec.kwargs),
    )
    if kind == "online":
        loss = TripletMarginLoss(MARGIN, miner=BatchHardMiner(), reducer=MeanReducer())
        return OnlineRun(**common, loss=loss, classes_per_batch=p, samples_per_class=K)
    if kind == "triplet":
        return TripletRun(**common, margin=MARGIN, distance="squared_euclidean", batch_size=32)
    if kind == "quadruplet":
        return QuadrupletRun(**common, metric="learned", alpha1=0.5, alpha2=0.25, batch_size=32)
    if kind == "siamese":
        return SiameseRun(**common, head="contrastive", batch_size=64)
    raise ValueError(f"Invalid value for `kind`. Expected one of {KINDS}. Received: {kind!r}")


def images_per_step(config) -> int:
    """Images through the embedding network in one training step."""
    if config.kind == "online":
        return config.classes_per_batch * config.samples_per_class
    return config.batch_size * {"siamese": 2, "triplet": 3, "quadruplet": 4}[config.kind]


_DATA: dict[int, object] = {}


def load_train(image_size: int, data_dir: str | None):
    """Omniglot background at ``image_size`` (105: the original size), cached per size."""
    from oneshot.data import load_omniglot

    if image_size not in _DATA:
        size = None if image_size == 105 else image_size
        _DATA[image_size] = load_omniglot("background", image_size=size, data_dir=data_dir)
    return _DATA[image_size]


def memory_batches(train, p: int, n: int = MEMORY_BATCHES, seed: int = 0):
    """``n`` P x K batches of real images as in-memory tensors ``[(x, y), ...]``."""
    import numpy as np
    import tensorflow as tf

    from oneshot.data.samplers import ClassIndex, sample_pk_indices

    index, rng = ClassIndex(train.labels), np.random.default_rng(seed)
    out = []
    for _ in range(n):
        idx = sample_pk_indices(index, p, K, rng)
        x = train.images[idx][..., None].astype(np.float32) / 255.0
        out.append((tf.constant(x), tf.constant(train.labels[idx].astype(np.int32))))
    return out
