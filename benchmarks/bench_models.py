"""Training throughput (images/s) of every network x model kind, each with the project's
``model.fit`` on its tf.data input.

    python benchmarks/bench_models.py [--networks conv4@28,conv4@35,conv4w32@28,eric_mnist@28]
                                      [--kinds online,triplet,quadruplet,siamese]
                                      [--steps 10] [--repeats 4] [--threads N]
                                      [--quick] [--data-dir DIR] [--precision P]
                                      [--out results/benchmarks/models.txt]

Needs the real data (``export ONESHOT_DATA_DIR=...``): Omniglot background, resized to each
network's input size (every network trains on it: the speed does not depend on the images, and
MNIST's 10 classes cannot fill P = 32). Each row: ``build_model`` + ``build_dataset`` (real data,
no augmentation) trained with ``model.fit``: online (batch-hard, P x K = 32 x 4), triplet (32
triplets, random), quadruplet (learned metric, 32 quadruplets, margins 0.5 / 0.25), siamese
(contrastive, 64 pairs). ``images`` = images through the embedding network per step (online 128,
triplet 96, quadruplet 128, siamese 128); ``params`` = parameters of the embedding network (the
quadruplet's metric not counted). Networks: ``conv4@S`` (width 64, embedding 64, SxS),
``conv4w32@S`` (width 32), ``eric_mnist@28`` (Eric's MNIST network, 'valid', embedding 10),
``koch@105`` (Koch et al., embedding 4096, 38.9M parameters; seconds per step on a CPU, so not in
the default list: ``--networks koch@105 --steps 3 --repeats 2``).

Step times are medians over ``--repeats`` timed epochs of ``--steps`` steps each, after one
warm-up epoch (tracing). ``--quick`` (smoke test): conv4w32@28 only, epochs of 2 steps.
``--threads N`` sets TensorFlow's intra- and inter-op threads and the tf.data private thread
pool; 0 keeps TensorFlow's defaults. ``--precision mixed_bfloat16`` times every row with the
embedding network in bfloat16 (a run's ``precision``). The machine may be shared: the header
records the load average.

Output committed as ``results/benchmarks/models.txt`` (formerly table 2 of ``training.txt``,
written by ``bench_training.py``, which this file replaces).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # measure.py and friends
from measure import header, set_threads, time_fit, with_threads, write_table  # noqa: E402
from training_setups import (  # noqa: E402
    KINDS,
    images_per_step,
    load_train,
    parse_network,
    run_config,
)

DEFAULT_NETWORKS = "conv4@28,conv4@35,conv4w32@28,eric_mnist@28"


def time_models(args, specs, kinds: list[str]) -> list[tuple]:
    """(spec, config, seconds per step, parameters) for every network x model kind."""
    import keras

    from oneshot.training.setup import build_dataset, build_model

    rows = []
    for spec in specs:
        train = load_train(spec.image_size, args.data_dir)
        for kind in kinds:
            keras.backend.clear_session()
            keras.utils.set_random_seed(0)
            config = dataclasses.replace(run_config(spec, kind), precision=args.precision)
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=DEFAULT_NETWORKS, help="NAME@SIZE, comma-separated")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--steps", type=int, default=10, help="steps per timed epoch")
    parser.add_argument("--repeats", type=int, default=4, help="timed epochs (median)")
    parser.add_argument("--threads", type=int, default=0, help="TF threads (0: TF default)")
    parser.add_argument("--data-dir", default=None, help="default: $ONESHOT_DATA_DIR")
    parser.add_argument(
        "--precision", default="float32", help="float32 or mixed_bfloat16 (a run's `precision`)"
    )
    parser.add_argument("--out", default="results/benchmarks/models.txt")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny and fast")
    args = parser.parse_args(argv)
    if args.quick:
        args.networks, args.steps, args.repeats = "conv4w32@28", 2, 1
    return args


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark; write and return the text table."""
    args = parse_args(argv)
    specs = [parse_network(s) for s in args.networks.split(",") if s]
    kinds = [k for k in args.kinds.split(",") if k]
    if any(k not in KINDS for k in kinds):
        raise ValueError(
            f"Invalid value for `--kinds`. Expected some of {KINDS}. Received: {kinds}"
        )
    set_threads(args.threads)
    started = time.perf_counter()
    rows = time_models(args, specs, kinds)
    command = sys.argv[1:] if argv is None else argv
    lines = [
        *header("bench_models.py", command, time.perf_counter() - started),
        f"# medians of {args.repeats} epochs of {args.steps} steps after one warm-up epoch; "
        f"images/s = images per step / median step time; precision {args.precision}",
        "",
        "## networks x model kinds: model.fit on build_dataset (real data, no augmentation)",
        f"{'network':14s} {'size':>5s} {'kind':10s} {'images':>6s} {'params':>10s} "
        f"{'step ms':>8s} {'images/s':>9s}",
    ]
    for spec, config, s, params in rows:
        n = images_per_step(config)
        lines.append(
            f"{spec.label:14s} {spec.image_size:5d} {config.kind:10s} {n:6d} {params:10,d} "
            f"{1000 * s:8.1f} {n / s:9.1f}"
        )
    return write_table("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
