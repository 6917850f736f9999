"""Where a hard-batch training step of a named experiment spends its time: mining, the
gradient step, the optimiser's update; and the wall time its iterations would take.

    python benchmarks/bench_paper_step.py [--experiment mnist-triplet-vs-quadruplet]
                                          [--runs triplet,quadruplet]
                                          [--precisions float32,mixed_bfloat16]
                                          [--repeats 10] [--threads N] [--data-dir DIR]
                                          [--quick] [--out results/benchmarks/paper_step.txt]

Times the ``--paper`` configuration of each run (``--quick``: the CPU-sized one, 2 repeats, a
smoke test) with the project's own pieces on the real training data (``ONESHOT_DATA_DIR`` or
``--data-dir``): ``build_model`` (the compiled training model and its Adam) and
``build_dataset`` (``HardBatchMiner``: C candidate tuples embedded in one forward pass with the
current weights, scored, the H + R kept). Medians over ``--repeats`` calls after 2 warm-ups:

- ``mine ms``: the next element of the training input: one hard batch mined and gathered;
- ``step ms``: ``train_on_batch`` on a mined batch: forward, backward and the optimiser's
  update (what ``fit`` runs per step);
- ``update ms``: the optimiser's update alone (Adam over every trainable variable, compiled),
  ``share`` its part of ``step ms``: work proportional to the parameter count, not the batch;
- ``s / it`` = (mine + step) / 1000, ``hours``: that times the run's iterations (fit's own
  overhead and the evaluation not counted: a lower bound of a run's wall time).

Output committed as ``results/benchmarks/paper_step.txt``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import header, median_seconds, set_threads, write_table  # noqa: E402

from oneshot.cli.common import EXIT_USAGE, CommandParser  # noqa: E402
from oneshot.training.configs import PRECISIONS  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = CommandParser(
        prog="benchmarks/bench_paper_step.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--experiment", default="mnist-triplet-vs-quadruplet")
    parser.add_argument("--runs", default=None, help="comma-separated run names (default: all)")
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="0: TensorFlow's defaults")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--quick", action="store_true", help="smoke test: CPU-sized configs")
    parser.add_argument("--out", default="results/benchmarks/paper_step.txt")
    args = parser.parse_args(argv)
    unknown = [p for p in args.precisions.split(",") if p not in PRECISIONS]
    if unknown:
        parser.error(f"unknown precision(s) {unknown}; choose from {PRECISIONS}")
    if args.quick:
        args.repeats = 2
    return args


def time_run(config, train, repeats: int) -> dict[str, float]:
    """Milliseconds of mining, the training step and the update alone for one run config."""
    import keras
    import tensorflow as tf

    from oneshot.training.setup import build_dataset, build_model

    keras.utils.set_random_seed(0)
    model = build_model(config, train)
    batches = iter(build_dataset(config, model, train, seed=0))
    batch = next(batches)
    mine = median_seconds(lambda: next(batches), repeats, warmup=2)
    step = median_seconds(lambda: model.train_on_batch(*batch), repeats, warmup=2)
    variables = model.trainable_variables
    zeros = [tf.zeros_like(v) for v in variables]
    update = tf.function(lambda: model.optimizer.apply(zeros, variables))

    def update_and_wait() -> None:
        update()
        float(variables[0][(0,) * len(variables[0].shape)])  # the update has finished

    return {
        "mine": 1000 * mine,
        "step": 1000 * step,
        "update": 1000 * median_seconds(update_and_wait, repeats, warmup=2),
        "params": float(model.get_layer("embedding").count_params()),
    }


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark; write and return the text table."""
    args = parse_args(argv)
    set_threads(args.threads)
    from oneshot.experiments import get_experiment
    from oneshot.training.setup import load_train_and_test

    experiment = get_experiment(args.experiment, paper=not args.quick)
    runs = [r for r in experiment.runs if getattr(r, "sampler", None) == "hard_batch"]
    if args.runs:
        wanted = args.runs.split(",")
        missing = [w for w in wanted if w not in [r.name for r in runs]]
        if missing:
            raise ValueError(
                f"Invalid value for `--runs`: {missing} are not hard-batch runs of "
                f"{args.experiment}. Expected some of {[r.name for r in runs]}."
            )
        runs = [r for r in runs if r.name in wanted]
    if not runs:
        raise ValueError(f"{args.experiment} has no hard-batch run to time.")
    started = time.perf_counter()
    rows = []
    for config in runs:
        train = load_train_and_test(config, args.data_dir).train
        for precision in args.precisions.split(","):
            print(f"timing {config.name} in {precision} ...", flush=True)
            timed = time_run(dataclasses.replace(config, precision=precision), train, args.repeats)
            rows.append((config, precision, timed))

    command = sys.argv[1:] if argv is None else argv
    lines = [
        *header("bench_paper_step.py", command, time.perf_counter() - started),
        f"# {args.experiment}, {'CPU-sized' if args.quick else '--paper'} configs; medians of "
        f"{args.repeats} calls after 2 warm-ups; s / it = (mine + step) / 1000, hours = s / it x "
        "the run's iterations (a lower bound: fit's overhead and the evaluation not counted)",
        "",
        f"{'run':12s} {'precision':15s} {'params':>11s} {'mine ms':>8s} {'step ms':>8s} "
        f"{'update ms':>9s} {'share':>6s} {'s / it':>7s} {'steps':>7s} {'hours':>6s}",
    ]
    for config, precision, t in rows:
        per_step = (t["mine"] + t["step"]) / 1000
        lines.append(
            f"{config.name:12s} {precision:15s} {t['params']:11,.0f} {t['mine']:8.0f} "
            f"{t['step']:8.0f} {t['update']:9.0f} {t['update'] / t['step']:6.0%} "
            f"{per_step:7.3f} {config.steps:7,d} {per_step * config.steps / 3600:6.2f}"
        )
    return write_table("\n".join(lines), args.out)


if __name__ == "__main__":
    try:
        main()
    except ValueError as error:  # a bad run, experiment or data folder: one line, exit 2
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
