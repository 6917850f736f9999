"""Training throughput (images/s) of the default network: the project's ``model.fit`` against
the plain-TensorFlow reference step.

    python benchmarks/bench_throughput.py [--steps 10] [--repeats 4] [--threads N]
                                          [--quick] [--data-dir DIR]
                                          [--out results/benchmarks/throughput.txt]

Needs the real data (``export ONESHOT_DATA_DIR=...``): Omniglot background at 28x28. The default
network (conv4 width 64, embedding 64, 28x28, online batch-hard triplet loss, margin 0.2,
P x K = 32 x 4 = 128 images per step), one row per way of training it:

- ``fit pk augment=off`` / ``on``: the project's own path, ``model.fit`` of the model made by
  ``oneshot.training.setup.build_model`` on ``build_dataset`` (``pk_dataset`` over the real
  Omniglot background images), without / with random affine augmentation;
- ``fit pk determinism``: the same as ``augment=off`` with ``enable_op_determinism()``, as
  ``python -m oneshot.train`` runs it (measured in a fresh process: it cannot be undone);
- ``fit in-memory``: ``model.fit`` on 8 pre-gathered P x K batches held in memory
  (``Dataset.from_tensor_slices``): the same fit without the sampling pipeline;
- ``plain TF keras-layers`` / ``plain TF tf.nn``: the two variants of ``reference_step.py`` (the
  same conv4 layers, or raw ``tf.nn`` ops and a hand-written Adam; the batch-hard loss written
  plainly) over the same in-memory batches.

``images/s`` = images per step / median step time; ``step ms`` = that median; ``vs plain`` =
images/s divided by that of ``plain TF keras-layers``. Step times are medians over ``--repeats``
timed chunks of ``--steps`` steps each, after one warm-up chunk (tracing). ``--quick`` (smoke
test): P x K = 8 x 4, chunks of 2 steps, and the fresh process runs alongside the in-process
timings (so its numbers mean nothing). ``--threads N`` sets TensorFlow's intra- and inter-op
threads and the tf.data private thread pool; 0 keeps TensorFlow's defaults. The machine may be
shared: the header records the load average.

Output committed as ``results/benchmarks/throughput.txt`` (formerly table 1 of ``training.txt``,
written by ``bench_training.py``, which this file replaces).
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
sys.path.insert(0, str(Path(__file__).resolve().parent))  # measure.py and friends
from measure import (  # noqa: E402
    finish_fresh,
    header,
    set_threads,
    start_fresh,
    time_fit,
    time_loop,
    with_threads,
    write_table,
)
from reference_step import reference_step  # noqa: E402
from training_setups import (  # noqa: E402
    DEFAULT_NETWORK,
    HEADLINE_P,
    MARGIN,
    K,
    load_train,
    memory_batches,
    run_config,
)

PATHS = (
    "fit pk augment=off",
    "fit pk augment=on",
    "fit pk determinism",
    "fit in-memory",
    "plain TF keras-layers",
    "plain TF tf.nn",
)
REFERENCE = "plain TF keras-layers"
DETERMINISM = "fit pk determinism"


def time_path(path: str, train, p: int, steps: int, repeats: int, threads: int) -> float:
    """Median seconds per step of the default network trained along ``path``."""
    import keras
    import tensorflow as tf

    from oneshot.training.setup import build_dataset, build_model

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    size = DEFAULT_NETWORK.image_size
    if path.startswith("plain TF"):
        step = reference_step(path.removeprefix("plain TF "), size)
        return time_loop(step, memory_batches(train, p), steps, repeats)
    config = run_config(DEFAULT_NETWORK, "online", p=p, augment=path.endswith("augment=on"))
    model = build_model(config)
    if path == "fit in-memory":
        xs, ys = zip(*memory_batches(train, p), strict=True)
        dataset = tf.data.Dataset.from_tensor_slices((tf.stack(xs), tf.stack(ys))).repeat()
    else:
        dataset = build_dataset(config, model, train, seed=0)
    return time_fit(model, with_threads(dataset, threads), steps, repeats)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="steps per timed chunk")
    parser.add_argument("--repeats", type=int, default=4, help="timed chunks (median)")
    parser.add_argument("--threads", type=int, default=0, help="TF threads (0: TF default)")
    parser.add_argument("--data-dir", default=None, help="default: $ONESHOT_DATA_DIR")
    parser.add_argument("--out", default="results/benchmarks/throughput.txt")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny and fast")
    parser.add_argument("--_determinism", type=int, help=argparse.SUPPRESS)  # fresh process: P
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 2, 1
    return args


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark; write and return the text table."""
    args = parse_args(argv)
    set_threads(args.threads)
    train_size = DEFAULT_NETWORK.image_size
    if args._determinism:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        train = load_train(train_size, args.data_dir)
        p = args._determinism
        seconds = time_path(DETERMINISM, train, p, args.steps, args.repeats, args.threads)
        print(json.dumps({"seconds": seconds}))
        return ""
    p = 8 if args.quick else HEADLINE_P
    started = time.perf_counter()
    fresh = [__file__, "--_determinism", str(p), "--threads", str(args.threads)]
    fresh += ["--steps", str(args.steps), "--repeats", str(args.repeats)]
    fresh += ["--data-dir", args.data_dir] if args.data_dir else []
    # --quick: the fresh process runs alongside the in-process timings (which then suffer)
    early = start_fresh(fresh[0], fresh[1:]) if args.quick else None
    train = load_train(train_size, args.data_dir)
    seconds = {}
    for path in PATHS:
        if path != DETERMINISM:
            seconds[path] = time_path(path, train, p, args.steps, args.repeats, args.threads)
            print(f"  {path:24s} {p * K / seconds[path]:8.1f} images/s", flush=True)
    print("determinism, fresh process ...", flush=True)
    seconds[DETERMINISM] = finish_fresh(early or start_fresh(fresh[0], fresh[1:]))["seconds"]
    text = format_table(args, argv, p, seconds, time.perf_counter() - started)
    return write_table(text, args.out)


def format_table(args, argv, p: int, seconds: dict[str, float], wall: float) -> str:
    """The text table written to ``--out``."""
    command = sys.argv[1:] if argv is None else argv
    b = p * K
    lines = [
        *header("bench_throughput.py", command, wall),
        f"# medians of {args.repeats} chunks of {args.steps} steps after one warm-up chunk; "
        "images/s = images per step / median step time",
        "",
        f"## conv4 width 64, embedding 64, 28x28, online batch-hard (margin {MARGIN}), "
        f"P x K = {p} x {K} = {b}, real Omniglot background images",
        f"{'path':24s} {'images/s':>9s} {'step ms':>8s} {'vs plain':>9s}",
    ]
    reference = seconds[REFERENCE]
    for path in PATHS:
        s = seconds[path]
        lines.append(f"{path:24s} {b / s:9.1f} {1000 * s:8.1f} {reference / s:9.2f}")
    fit = seconds["fit pk augment=off"]
    lines.append(
        f"# project fit (pk_dataset, augment off) / plain TF: {reference / fit:.2f} "
        f"({b / fit:.0f} vs {b / reference:.0f} images/s); vs raw tf.nn: "
        f"{seconds['plain TF tf.nn'] / fit:.2f}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
