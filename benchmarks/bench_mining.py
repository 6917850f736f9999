"""Cost of online mining: training-step time with each miner, mining share, peak memory.

    python benchmarks/bench_mining.py [--batch-sizes 64,128,256,512,1024] [--repeats 5]
                                      [--quick] [--out results/benchmarks/mining.txt]

For each batch size B (P x K layout, K = 4, random labels and random 28x28 images):

- ``step ms``: median time of one compiled training step (forward, loss, backward, Adam update)
  of a conv4 embedding network (width 32, embedding 64) with each online loss, and with
  ``none``: a miner-free triplet loss on fixed triplets (a, its next class-mate, the image at
  the same place in the next class block), i.e. O(B) paired distances, no B x B matrix.
- ``mine ms``: median time of the loss alone (distance matrix, mining, loss and its gradient
  with respect to the embeddings), compiled; ``share`` = mine ms / step ms.
- ``loss MB``: peak extra resident memory of the loss alone, in a fresh process per loss:
  Linux's peak-RSS mark is reset (``/proc/self/clear_refs`` <- 5), the loss and its gradient
  run once at B, and ``VmHWM - VmRSS(before)`` from ``/proc/self/status`` is reported.
  TensorFlow's allocator statistics are not available on CPU, hence RSS. The row ``naive_b3``
  is a control: batch-all written with an explicit (B, B, B) tensor, showing what a cubic
  tensor costs (B = 512: 512 MB per float32 copy) and that the measurement sees it.
- ``step MB``: the same peak-RSS measure around the timed training steps (in the timing
  process, so memory the allocator kept from earlier runs is not counted again).

Timings are medians after warm-up; the machine may be shared, so they carry noise (the header
records the load average). ``--quick`` (smoke test): B = 16 (and the ``naive_b3`` row at 16), one
warm-up and one timed step, and the fresh processes run side by side (their numbers mean little).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # measure.py
from measure import (  # noqa: E402
    finish_fresh,
    header,
    median_seconds,
    peak_since_mb,
    reset_peak,
    start_fresh,
    write_table,
)

K = 4
DIM = 64
WIDTH = 32
LOSSES = ("none", "batch_hard", "batch_all", "semi_hard", "quadruplet", "contrastive")


def _specs():
    import tensorflow as tf

    return (
        tf.TensorSpec((None, 28, 28, 1), tf.float32),
        tf.TensorSpec((None,), tf.int32),
        tf.TensorSpec((None, DIM), tf.float32),
    )


def make_loss(name: str):
    """A callable (labels, embeddings) -> scalar for each benchmarked loss."""
    import tensorflow as tf

    from oneshot.distances import paired_distances
    from oneshot.losses import ContrastiveLoss, QuadrupletLoss, TripletMarginLoss
    from oneshot.miners import BatchAllMiner, BatchHardMiner, HardPairMiner, SemiHardMiner
    from oneshot.reducers import MeanNonZeroReducer, MeanReducer

    if name == "none":

        def fixed_triplets(labels, emb):
            b = tf.shape(emb)[0]
            idx = tf.range(b)
            pos = (idx // K) * K + (idx + 1) % K
            neg = (idx + K) % b
            d_ap = paired_distances(emb, tf.gather(emb, pos))
            d_an = paired_distances(emb, tf.gather(emb, neg))
            return tf.reduce_mean(tf.nn.relu(d_ap - d_an + 0.2))

        return fixed_triplets
    if name == "naive_b3":
        from oneshot.distances import pairwise_distances

        def naive(labels, emb):
            d = pairwise_distances(emb)
            same = tf.equal(labels[:, None], labels[None, :])
            pos = tf.logical_and(same, tf.logical_not(tf.eye(tf.shape(d)[0], dtype=tf.bool)))
            valid = tf.logical_and(pos[:, :, None], tf.logical_not(same)[:, None, :])
            cube = tf.nn.relu(d[:, :, None] - d[:, None, :] + 0.2) * tf.cast(valid, d.dtype)
            return tf.reduce_sum(cube) / tf.maximum(tf.reduce_sum(tf.cast(cube > 0, d.dtype)), 1.0)

        return naive
    # the losses of oneshot 0.1 (OnlineTripletLoss(name), OnlineQuadrupletLoss(),
    # OnlineContrastiveLoss()), so the rows stay comparable with earlier runs
    if name == "quadruplet":
        return QuadrupletLoss(alpha1=1.0, alpha2=0.5, adaptive_margin=True)
    if name == "contrastive":
        return ContrastiveLoss(0.0, 1.0, miner=HardPairMiner(0.0, 1.0))
    miner, reducer = {
        "batch_hard": (BatchHardMiner(), MeanReducer()),
        "batch_all": (BatchAllMiner(margin=0.2), MeanNonZeroReducer()),
        "semi_hard": (SemiHardMiner(margin=0.2, fallback="hardest"), MeanReducer()),
    }[name]
    return TripletMarginLoss(0.2, miner=miner, reducer=reducer)


def batch(b: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = np.repeat(rng.permutation(10 * b)[: b // K], K).astype(np.int32)
    images = rng.random((b, 28, 28, 1), dtype=np.float32)
    return images, labels


def median_ms(fn, warmup: int, repeats: int) -> float:
    return 1000.0 * median_seconds(fn, repeats, warmup)


def time_all(sizes: list[int], warmup: int, repeats: int) -> dict:
    """Step time and loss-alone time for every (loss, B)."""
    import keras
    import tensorflow as tf

    from oneshot.models.networks import conv4

    IMAGES, LABELS, EMBEDDINGS = _specs()  # noqa: N806
    results = {}
    for name in LOSSES:
        loss_fn = make_loss(name)
        net = conv4((28, 28, 1), embedding_dim=DIM, width=WIDTH)
        opt = keras.optimizers.Adam(1e-4)
        opt.build(net.trainable_variables)

        @tf.function(input_signature=[IMAGES, LABELS])
        def step(x, y, net=net, opt=opt, loss_fn=loss_fn):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, net(x, training=True))
            grads = tape.gradient(loss, net.trainable_variables)
            opt.apply_gradients(zip(grads, net.trainable_variables, strict=True))
            return loss

        @tf.function(input_signature=[EMBEDDINGS, LABELS])
        def mine(emb, y, loss_fn=loss_fn):
            with tf.GradientTape() as tape:
                tape.watch(emb)
                loss = loss_fn(y, emb)
            return loss, tape.gradient(loss, emb)

        for b in sizes:
            x, y = batch(b)
            x, y = tf.constant(x), tf.constant(y)
            emb = tf.math.l2_normalize(tf.random.stateless_normal((b, DIM), (1, b)), axis=1)
            base = reset_peak()
            step_ms = median_ms(lambda: step(x, y).numpy(), warmup, repeats)  # noqa: B023
            step_mb = peak_since_mb(base)
            mine_ms = median_ms(lambda: mine(emb, y)[0].numpy(), warmup, repeats)  # noqa: B023
            results[(name, b)] = (step_ms, mine_ms, step_mb)
            print(
                f"  {name:12s} B={b:5d} step {step_ms:8.1f} ms  loss alone {mine_ms:7.2f} ms"
                f"  step peak {step_mb:7.1f} MB",
                flush=True,
            )
    return results


def memory_probe(name: str, sizes: list[int]) -> None:
    """(Run in a fresh process.) Print JSON {B: extra peak MB} for the loss alone."""
    import tensorflow as tf

    loss_fn = make_loss(name)
    _, LABELS, EMBEDDINGS = _specs()  # noqa: N806

    @tf.function(input_signature=[EMBEDDINGS, LABELS])
    def mine(emb, y):
        with tf.GradientTape() as tape:
            tape.watch(emb)
            loss = loss_fn(y, emb)
        return loss, tape.gradient(loss, emb)

    x, y = batch(16)
    mine(tf.random.normal((16, DIM)), tf.constant(y))  # trace and warm up on a tiny batch
    out = {}
    for b in sorted(sizes):
        _, y = batch(b)
        emb = tf.math.l2_normalize(tf.random.stateless_normal((b, DIM), (1, b)), axis=1)
        y = tf.constant(y)
        base = reset_peak()
        mine(emb, y)[1].numpy()
        out[b] = peak_since_mb(base)
    print(json.dumps(out))


def memory_all(sizes: list[int], naive_sizes: list[int], together: bool = False) -> dict:
    """Extra peak MB of the loss alone for every (loss, B), in a fresh process per loss
    (``together``: all processes at once, for the smoke test)."""
    jobs = [(n, sizes) for n in LOSSES if sizes] + (
        [("naive_b3", naive_sizes)] if naive_sizes else []
    )

    def start(name, bs):
        return start_fresh(__file__, ["--_probe", name, "--batch-sizes", ",".join(map(str, bs))])

    started = [start(*job) for job in jobs] if together else []
    results = {}
    for i, (name, bs) in enumerate(jobs):
        for b, mb in finish_fresh(started[i] if together else start(name, bs)).items():
            results[(name, int(b))] = mb
        print(f"  memory {name}: done", flush=True)
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="64,128,256,512,1024")
    parser.add_argument("--out", default="results/benchmarks/mining.txt")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--naive-sizes",
        default="128,256,512",
        help="sizes for the (B, B, B) control row ('' to skip)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny and fast")
    parser.add_argument("--_probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_sizes, args.naive_sizes, args.warmup, args.repeats = "16", "16", 1, 1
    return args


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark; write and return the text table."""
    args = parse_args(argv)
    sizes = [int(s) for s in args.batch_sizes.split(",") if s]
    if args._probe:
        memory_probe(args._probe, sizes)
        return ""
    if any(b % K or b < 2 * K for b in sizes):
        raise ValueError(
            f"Invalid value for `--batch-sizes`: each must be a multiple of {K} "
            f"and >= {2 * K}. Received {sizes}."
        )
    naive = [int(s) for s in args.naive_sizes.split(",") if s]
    started = time.perf_counter()
    print("timing ...", flush=True)
    times = time_all(sizes, args.warmup, args.repeats)
    print("memory ...", flush=True)
    memory = memory_all(sizes, naive, together=args.quick)

    command = sys.argv[1:] if argv is None else argv
    lines = [
        *header("bench_mining.py", command, time.perf_counter() - started),
        f"# conv4 width {WIDTH}, embedding {DIM}, 28x28 inputs, P x K with K = {K}; medians of "
        f"{args.repeats} steps after {args.warmup} warm-up steps; tf.function-compiled",
        "# step ms: whole training step; loss ms: distances + mining + loss + gradient on the",
        "# embeddings alone; share = loss ms / step ms; loss MB / step MB: extra peak RSS (VmHWM",
        "# after reset minus VmRSS before) of the loss alone (fresh process) / of the steps",
        "",
        f"{'loss':12s} {'B':>5s} {'step ms':>9s} {'loss ms':>9s} {'share':>7s} {'loss MB':>8s}"
        f" {'step MB':>8s}",
    ]
    for name in LOSSES + ("naive_b3",):
        for b in sizes if name != "naive_b3" else naive:
            nan = float("nan")
            step_ms, mine_ms, step_mb = times.get((name, b), (nan, nan, nan))
            mb = memory.get((name, b), nan)
            share = mine_ms / step_ms if step_ms == step_ms else nan
            lines.append(
                f"{name:12s} {b:5d} {step_ms:9.1f} {mine_ms:9.2f} {share:7.1%} {mb:8.1f}"
                f" {step_mb:8.1f}"
            )
        lines.append("")
    return write_table("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
