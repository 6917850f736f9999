"""Training throughput (images/s) and peak memory, the project's path against plain TensorFlow.

    python benchmarks/bench_training.py [--networks conv4@28,conv4@35,conv4w32@28,eric_mnist@28]
                                        [--kinds online,triplet,quadruplet,siamese]
                                        [--steps 10] [--repeats 4] [--threads N]
                                        [--memory-sizes 128,512,1024] [--memory-paths fit,plain]
                                        [--quick] [--data-dir DIR]
                                        [--out results/benchmarks/training.txt]

Needs the real data (``export ONESHOT_DATA_DIR=...``): Omniglot background, resized to each
network's input size (every network trains on it: the speed does not depend on the images, and
MNIST's 10 classes cannot fill P = 32). Three tables:

1. Default network (conv4 width 64, embedding 64, 28x28, online batch-hard triplet loss, margin
   0.2, P x K = 32 x 4 = 128 images per step), one row per way of training it:

   - ``fit pk augment=off`` / ``on``: the project's own path, ``model.fit`` of the model made by
     ``oneshot.training.setup.build_model`` on ``build_dataset`` (``pk_dataset`` over the real
     Omniglot background images), without / with random affine augmentation;
   - ``fit pk determinism``: the same as ``augment=off`` with ``enable_op_determinism()``, as
     ``python -m oneshot.train`` runs it (measured in a fresh process: it cannot be undone);
   - ``fit in-memory``: ``model.fit`` on 8 pre-gathered P x K batches held in memory
     (``Dataset.from_tensor_slices``): the same fit without the sampling pipeline;
   - ``plain TF keras-layers``: the same conv4 layers called in a hand-written
     ``@tf.function`` step with ``tf.GradientTape``, the batch-hard loss written plainly
     (pairwise distances, masks, max/min, relu) and ``keras.optimizers.Adam``, over the same
     in-memory batches;
   - ``plain TF tf.nn``: everything in raw TensorFlow: the conv4 architecture with
     ``tf.nn.conv2d`` / moments / ``max_pool2d`` on ``tf.Variable``s and a hand-written Adam.

   ``images/s`` = images per step / median step time; ``step ms`` = that median;
   ``vs plain`` = images/s divided by that of ``plain TF keras-layers``.
2. Networks x model kinds, each trained with ``model.fit`` on the project's tf.data input
   (``build_model`` + ``build_dataset``, real data, no augmentation): online (batch-hard,
   P x K = 32 x 4), triplet (32 triplets, random), quadruplet (learned metric, 32
   quadruplets, margins 0.5 / 0.25), siamese (contrastive, 64 pairs). ``images`` = images
   through the embedding network per step (online 128, triplet 96, quadruplet 128, siamese 128);
   ``params`` = parameters of the embedding network (the quadruplet's metric not counted).
   Networks: ``conv4@S`` (width 64, embedding 64, SxS), ``conv4w32@S`` (width 32),
   ``eric_mnist@28`` (Eric's MNIST network, 'valid', embedding 10), ``koch@105``
   (Koch et al., embedding 4096, 38.9M parameters; seconds per step on a CPU, so not in the
   default list: ``--networks koch@105 --steps 3 --repeats 2``).
3. Peak memory of training the default network at P x K = B (K = 4), in a fresh process per
   row: Linux's peak-RSS mark is reset (``/proc/self/clear_refs`` <- 5) after the data, model
   and input are built, then ``--memory-steps`` steps run (the first one traces). ``peak MB`` =
   ``VmHWM`` of the whole process (what must fit in RAM); ``extra MB`` = ``VmHWM`` minus
   ``VmRSS`` before the steps (what training itself adds). Paths: ``fit`` (the project's
   ``model.fit`` on ``pk_dataset``) and ``plain`` (the plain-TF step with Keras layers).

Step times are medians over ``--repeats`` timed chunks of ``--steps`` steps each, after one
warm-up chunk (tracing). ``--quick`` (smoke test): conv4w32@28 only, chunks of 2 steps, table 1
at P x K = 8 x 4, memory of ``fit`` at B = 32, and the fresh processes run alongside the
in-process timings (so its numbers mean nothing). ``--threads N`` sets TensorFlow's intra- and inter-op threads and the
tf.data private thread pool; 0 keeps TensorFlow's defaults. The machine may be shared, so the
numbers carry noise: the header records the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # measure.py
from measure import header, reset_peak, rss_kb, set_threads  # noqa: E402

K = 4
MARGIN = 0.2
HEADLINE_P = 32
MEMORY_BATCHES = 8  # distinct in-memory P x K batches cycled by the in-memory paths
DEFAULT_NETWORKS = "conv4@28,conv4@35,conv4w32@28,eric_mnist@28"
KINDS = ("online", "triplet", "quadruplet", "siamese")
HEADLINE_PATHS = (
    "fit pk augment=off",
    "fit pk augment=on",
    "fit pk determinism",
    "fit in-memory",
    "plain TF keras-layers",
    "plain TF tf.nn",
)
REFERENCE = "plain TF keras-layers"
DETERMINISM = "fit pk determinism"


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
    return SiameseRun(**common, head="contrastive", batch_size=64)


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


def with_threads(dataset, threads: int):
    """Limit a tf.data pipeline's private thread pool to ``threads`` (0: unchanged)."""
    import tensorflow as tf

    if threads <= 0:
        return dataset
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    return dataset.with_options(options)


# ---------------------------------------------------------------------------------------------
# Timing helpers
# ---------------------------------------------------------------------------------------------


def _epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Wall time of every epoch (an epoch = ``steps`` steps; logs are synced at its end)."""

        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self._start = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def time_fit(model, dataset, steps: int, repeats: int) -> float:
    """Median seconds per step of ``model.fit``: 1 warm-up epoch + ``repeats`` epochs."""
    timer = _epoch_timer()
    model.fit(
        dataset,
        epochs=1 + repeats,
        steps_per_epoch=steps,
        verbose=0,
        callbacks=[timer],
        shuffle=False,  # as the runner: the samplers already draw at random
    )
    return statistics.median(timer.seconds[1:]) / steps


def time_loop(step, batches, steps: int, repeats: int) -> float:
    """Median seconds per step of a hand-written loop: 1 warm-up chunk + ``repeats`` chunks."""
    chunks = []
    for chunk in range(1 + repeats):
        start = time.perf_counter()
        for i in range(steps):
            loss = step(*batches[(chunk * steps + i) % len(batches)])
        loss.numpy()  # wait for the chunk's last step
        chunks.append((time.perf_counter() - start) / steps)
    return statistics.median(chunks[1:])


# ---------------------------------------------------------------------------------------------
# The plain TensorFlow step
# ---------------------------------------------------------------------------------------------


def plain_batch_hard_loss(labels, embeddings, margin: float = MARGIN):
    """Batch-hard triplet loss, plainly: euclidean distances, label masks, max/min, relu."""
    import tensorflow as tf

    dot = tf.matmul(embeddings, embeddings, transpose_b=True)
    norms = tf.linalg.diag_part(dot)
    squared = tf.maximum(norms[:, None] - 2.0 * dot + norms[None, :], 0.0)
    dist = tf.sqrt(tf.maximum(squared, 1e-12))
    same = tf.equal(labels[:, None], labels[None, :])
    positive = tf.logical_and(same, tf.logical_not(tf.eye(tf.shape(labels)[0], dtype=tf.bool)))
    hardest_positive = tf.reduce_max(tf.where(positive, dist, 0.0), axis=1)
    hardest_negative = tf.reduce_min(tf.where(same, tf.reduce_max(dist) + 1.0, dist), axis=1)
    return tf.reduce_mean(tf.nn.relu(hardest_positive - hardest_negative + margin))


def _raw_conv4(image_size: int, width: int = 64, dim: int = 64, momentum: float = 0.9):
    """conv4 in raw TensorFlow: 4 x [conv3x3 'same' no bias, BN, ReLU, max-pool 2], dense, BN,
    L2; returns ``(forward(x), trainable variables)``; BN moving statistics are updated."""
    import tensorflow as tf

    def glorot(shape, fan_in, fan_out, seed):
        limit = (6.0 / (fan_in + fan_out)) ** 0.5
        return tf.Variable(tf.random.stateless_uniform(shape, (seed, 0), -limit, limit))

    def bn_vars(n):
        return {
            "gamma": tf.Variable(tf.ones(n)),
            "beta": tf.Variable(tf.zeros(n)),
            "mean": tf.Variable(tf.zeros(n), trainable=False),
            "var": tf.Variable(tf.ones(n), trainable=False),
        }

    kernels, norms, channels, size = [], [], 1, image_size
    for i in range(4):
        kernels.append(glorot((3, 3, channels, width), 9 * channels, 9 * width, i))
        norms.append(bn_vars(width))
        channels, size = width, size // 2
    flat = size * size * width
    dense_w, dense_b = glorot((flat, dim), flat, dim, 9), tf.Variable(tf.zeros(dim))
    norms.append(bn_vars(dim))

    def batch_norm(x, bn, axes):
        mean, var = tf.nn.moments(x, axes)
        bn["mean"].assign(momentum * bn["mean"] + (1.0 - momentum) * mean)
        bn["var"].assign(momentum * bn["var"] + (1.0 - momentum) * var)
        return tf.nn.batch_normalization(x, mean, var, bn["beta"], bn["gamma"], 1e-3)

    def forward(x):
        for kernel, bn in zip(kernels, norms[:4], strict=True):
            x = tf.nn.conv2d(x, kernel, 1, "SAME")
            x = tf.nn.relu(batch_norm(x, bn, [0, 1, 2]))
            x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        x = tf.matmul(tf.reshape(x, [-1, flat]), dense_w) + dense_b
        return tf.math.l2_normalize(batch_norm(x, norms[4], [0]), axis=1)

    trainable = kernels + [dense_w, dense_b]
    trainable += [bn[key] for bn in norms for key in ("gamma", "beta")]
    return forward, trainable


def _raw_adam(variables, rate: float = 1e-3, b1: float = 0.9, b2: float = 0.999, eps=1e-7):
    """Hand-written Adam: returns ``apply(gradients)``."""
    import tensorflow as tf

    m = [tf.Variable(tf.zeros_like(v)) for v in variables]
    v2 = [tf.Variable(tf.zeros_like(v)) for v in variables]
    t = tf.Variable(0.0)

    def apply(gradients):
        t.assign_add(1.0)
        step_rate = rate * tf.sqrt(1.0 - b2**t) / (1.0 - b1**t)
        for var, g, m_i, v_i in zip(variables, gradients, m, v2, strict=True):
            m_i.assign(b1 * m_i + (1.0 - b1) * g)
            v_i.assign(b2 * v_i + (1.0 - b2) * tf.square(g))
            var.assign_sub(step_rate * m_i / (tf.sqrt(v_i) + eps))

    return apply


def plain_step(kind: str, image_size: int, width: int = 64):
    """A compiled plain-TF training step ``(images, labels) -> loss`` of the default network."""
    import keras
    import tensorflow as tf

    from oneshot.networks import conv4

    signature = [
        tf.TensorSpec((None, image_size, image_size, 1), tf.float32),
        tf.TensorSpec((None,), tf.int32),
    ]
    if kind == "keras-layers":
        net = conv4((image_size, image_size, 1), embedding_dim=64, width=width)
        optimizer = keras.optimizers.Adam(1e-3)
        optimizer.build(net.trainable_variables)

        @tf.function(input_signature=signature)
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = plain_batch_hard_loss(y, net(x, training=True))
            grads = tape.gradient(loss, net.trainable_variables)
            optimizer.apply_gradients(zip(grads, net.trainable_variables, strict=True))
            return loss

        return step
    forward, variables = _raw_conv4(image_size, width)
    apply = _raw_adam(variables)

    @tf.function(input_signature=signature)
    def raw_step(x, y):
        with tf.GradientTape() as tape:
            loss = plain_batch_hard_loss(y, forward(x))
        apply(tape.gradient(loss, variables))
        return loss

    return raw_step


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


def headline_path(path: str, train, p: int, steps: int, repeats: int, threads: int) -> float:
    """Median seconds per step of the default network trained along ``path``."""
    import keras
    import tensorflow as tf

    from oneshot.training.setup import build_dataset, build_model

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    spec = parse_network("conv4@28")
    if path.startswith("plain TF"):
        step = plain_step("keras-layers" if "keras" in path else "tf.nn", 28)
        return time_loop(step, memory_batches(train, p), steps, repeats)
    config = run_config(spec, "online", p=p, augment=path.endswith("augment=on"))
    model = build_model(config)
    if path == "fit in-memory":
        xs, ys = zip(*memory_batches(train, p), strict=True)
        dataset = tf.data.Dataset.from_tensor_slices((tf.stack(xs), tf.stack(ys))).repeat()
    else:
        dataset = build_dataset(config, model, train, seed=0)
    return time_fit(model, with_threads(dataset, threads), steps, repeats)


def time_headline(args, train, p: int) -> dict[str, float]:
    """Seconds per step of every in-process headline path (not the determinism one)."""
    results = {}
    for path in HEADLINE_PATHS:
        if path != DETERMINISM:
            results[path] = headline_path(path, train, p, args.steps, args.repeats, args.threads)
            print(f"  {path:24s} {p * K / results[path]:8.1f} images/s", flush=True)
    return results


def time_grid(args, specs: list[NetworkSpec], kinds: list[str]) -> list[tuple]:
    """(spec, config, seconds per step, parameters) for every network x model kind."""
    import keras

    from oneshot.training.setup import build_dataset, build_model

    rows = []
    for spec in specs:
        train = load_train(spec.image_size, args.data_dir)
        for kind in kinds:
            keras.backend.clear_session()
            keras.utils.set_random_seed(0)
            config = run_config(spec, kind)
            model = build_model(config)
            dataset = with_threads(build_dataset(config, model, train, seed=0), args.threads)
            seconds = time_fit(model, dataset, args.steps, args.repeats)
            params = model.get_layer("embedding").count_params()
            rows.append((spec, config, seconds, params))
            print(
                f"  {spec.label:14s} {kind:10s} {images_per_step(config) / seconds:8.1f} images/s",
                flush=True,
            )
    return rows


# ---------------------------------------------------------------------------------------------
# Memory (fresh process per row)
# ---------------------------------------------------------------------------------------------


def memory_probe(path: str, batch: int, steps: int, threads: int, data_dir: str | None) -> dict:
    """(Fresh process.) Peak RSS while training the default network at P x K = ``batch``."""
    import keras

    from oneshot.training.setup import build_dataset, build_model

    keras.utils.set_random_seed(0)
    train = load_train(28, data_dir)
    p = batch // K
    if path == "plain":
        step, batches = plain_step("keras-layers", 28), memory_batches(train, p, n=2)
        base = reset_peak()
        for i in range(steps):
            loss = step(*batches[i % len(batches)])
        loss.numpy()
    else:
        config = run_config(parse_network("conv4@28"), "online", p=p)
        model = build_model(config)
        dataset = with_threads(build_dataset(config, model, train, seed=0), threads)
        base = reset_peak()
        model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    peak = rss_kb("VmHWM")
    return {"peak_mb": peak / 1024.0, "extra_mb": (peak - base) / 1024.0}


def _probe_command(args, extra: list[str]) -> list[str]:
    cmd = [sys.executable, __file__, "--threads", str(args.threads), *extra]
    cmd += ["--steps", str(args.steps), "--repeats", str(args.repeats)]
    cmd += ["--memory-steps", str(args.memory_steps)]
    return cmd + (["--data-dir", args.data_dir] if args.data_dir else [])


def start_probe(args, extra: list[str]) -> tuple[list[str], subprocess.Popen]:
    """Start this script in a fresh process with ``extra`` arguments."""
    cmd = _probe_command(args, extra)
    return cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_probe(started: tuple[list[str], subprocess.Popen]) -> dict:
    """Wait for a probe; return the JSON it printed last."""
    cmd, proc = started
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=DEFAULT_NETWORKS, help="NAME@SIZE, comma-separated")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--steps", type=int, default=10, help="steps per timed chunk")
    parser.add_argument("--repeats", type=int, default=4, help="timed chunks (median)")
    parser.add_argument("--memory-sizes", default="128,512,1024", help="P x K batch sizes")
    parser.add_argument("--memory-steps", type=int, default=3)
    parser.add_argument("--memory-paths", default="fit,plain", help="fit and/or plain")
    parser.add_argument("--threads", type=int, default=0, help="TF threads (0: TF default)")
    parser.add_argument("--data-dir", default=None, help="default: $ONESHOT_DATA_DIR")
    parser.add_argument("--out", default="results/benchmarks/training.txt")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny and fast")
    parser.add_argument("--_memory", help=argparse.SUPPRESS)
    parser.add_argument("--_time-determinism", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.networks, args.steps, args.repeats = "conv4w32@28", 2, 1
        args.memory_sizes, args.memory_steps, args.memory_paths = "32", 2, "fit"
    return args


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark; write and return the text table."""
    args = parse_args(argv)
    set_threads(args.threads)
    if args._memory:
        path, b = args._memory.split(":")
        peak = memory_probe(path, int(b), args.memory_steps, args.threads, args.data_dir)
        print(json.dumps(peak))
        return ""
    if args._time_determinism:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        train = load_train(28, args.data_dir)
        p = args._time_determinism
        seconds = headline_path(DETERMINISM, train, p, args.steps, args.repeats, args.threads)
        print(json.dumps({"seconds": seconds}))
        return ""
    specs = [parse_network(s) for s in args.networks.split(",") if s]
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"Invalid value for `--kinds`. Expected some of {KINDS}. Received {kinds}")
    sizes = [int(s) for s in args.memory_sizes.split(",") if s]
    paths = [m for m in args.memory_paths.split(",") if m]
    if any(m not in ("fit", "plain") for m in paths):
        raise ValueError(
            "Invalid value for `--memory-paths`. Expected some of ('fit', 'plain'). "
            f"Received {paths}."
        )
    if any(b % K or b < 2 * K for b in sizes):
        raise ValueError(
            f"Invalid value for `--memory-sizes`: each must be a multiple of {K} and >= {2 * K}. "
            f"Received {sizes}."
        )
    p = 8 if args.quick else HEADLINE_P
    started = time.perf_counter()
    memory_rows = [(m, b) for m in paths for b in sizes]
    probes = [["--_time-determinism", str(p)]] + [["--_memory", f"{m}:{b}"] for m, b in memory_rows]
    # --quick: the fresh processes run alongside the in-process timings (which then suffer)
    early = [start_probe(args, extra) for extra in probes] if args.quick else []
    print("default network ...", flush=True)
    headline = time_headline(args, load_train(28, args.data_dir), p)
    print("networks x kinds ...", flush=True)
    grid = time_grid(args, specs, kinds)
    print("determinism and memory, fresh processes ...", flush=True)
    if early:
        determinism, *peaks = [finish_probe(probe) for probe in early]
    else:
        determinism, *peaks = [finish_probe(start_probe(args, extra)) for extra in probes]
    headline[DETERMINISM] = determinism["seconds"]
    memory = dict(zip(memory_rows, peaks, strict=True))
    text = format_table(args, argv, p, headline, grid, memory, time.perf_counter() - started)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    return text


def format_table(args, argv, p, headline, grid, memory, seconds: float) -> str:
    """The text table written to ``--out``."""
    command = sys.argv[1:] if argv is None else argv
    b = p * K
    lines = [
        *header("bench_training.py", command, seconds),
        f"# medians of {args.repeats} chunks of {args.steps} steps after one warm-up chunk; "
        "images/s = images per step / median step time",
        "",
        f"## 1. conv4 width 64, embedding 64, 28x28, online batch-hard (margin {MARGIN}), "
        f"P x K = {p} x {K} = {b}, real Omniglot background images",
        f"{'path':24s} {'images/s':>9s} {'step ms':>8s} {'vs plain':>9s}",
    ]
    reference = headline[REFERENCE]
    for path in HEADLINE_PATHS:
        s = headline[path]
        lines.append(f"{path:24s} {b / s:9.1f} {1000 * s:8.1f} {reference / s:9.2f}")
    fit, plain = headline["fit pk augment=off"], headline[REFERENCE]
    lines += [
        f"# project fit (pk_dataset, augment off) / plain TF: {plain / fit:.2f} "
        f"({b / fit:.0f} vs {b / plain:.0f} images/s); vs raw tf.nn: "
        f"{headline['plain TF tf.nn'] / fit:.2f}",
        "",
        "## 2. networks x model kinds: model.fit on build_dataset (real data, no augmentation)",
        f"{'network':14s} {'size':>5s} {'kind':10s} {'images':>6s} {'params':>10s} "
        f"{'step ms':>8s} {'images/s':>9s}",
    ]
    for spec, config, s, params in grid:
        n = images_per_step(config)
        lines.append(
            f"{spec.label:14s} {spec.image_size:5d} {config.kind:10s} {n:6d} {params:10,d} "
            f"{1000 * s:8.1f} {n / s:9.1f}"
        )
    lines += [
        "",
        f"## 3. peak memory, conv4 width 64 at 28x28, online batch-hard, P x K = B (K = {K}); "
        f"fresh process per row, {args.memory_steps} steps",
        "# peak MB: VmHWM of the process; extra MB: VmHWM after reset minus VmRSS before steps",
        f"{'path':6s} {'B':>5s} {'peak MB':>9s} {'extra MB':>9s}",
    ]
    for (path, b), m in memory.items():
        lines.append(f"{path:6s} {b:5d} {m['peak_mb']:9.1f} {m['extra_mb']:9.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
