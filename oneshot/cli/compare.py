"""Command line: compare runs side by side.

    python -m oneshot.compare RUN_DIR [RUN_DIR ...] [--out FILE.png] [--markdown] [--mean]
    python -m oneshot.compare --seeds SEED_DIR [SEED_DIR ...] [--out FILE.png] [--baseline RUN]
    python -m oneshot.compare --tuning results/omniglot-losses-tuning

Draws the loss curves of every run on one figure (``history.csv``) and prints a table of their
headline metrics (``metrics.json``) next to each other; ``--mean`` adds the mean and standard
deviation over the runs (e.g. the seeds of one configuration).

``--seeds`` reads whole experiments repeated over seeds (``results/omniglot-losses/seed0``,
``seed1``, ...): a Markdown table with one row per run, best first by 20-way within-alphabet
accuracy where reported (the mean and 95% t interval over seeds, marked where the seed-by-seed difference to ``--baseline`` excludes zero), a figure of
the metrics with their intervals (``--out``) and, when the runs had a training monitor, its
accuracy against training minutes (``--out`` with ``-time`` before the suffix).
``--tuning`` prints the loss comparison's tuning table (``omniglot-losses-tuning``: every
grid value's validation accuracy and the chosen one).
Reading run folders and building the tables is ``oneshot.runs``; this module is the command line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from oneshot.cli.common import (
    CommandParser,
    UsageError,
    add_debug_flag,
    run_command,
    use_headless_backend,
)
from oneshot.training.files import EXPERIMENT_FILE, HISTORY_FILE, METRICS_FILE, read_history

#: the columns of a ``--seeds`` table, where the runs report them (Omniglot's full evaluation)
SEED_METRICS = (
    "Lake runs error (%)",
    "20-way 1-shot within-alphabet",
    "20-way 1-shot unstructured",
    "CMC rank-1 (400 classes)",
    "MAP@R (retrieval)",
    "AUC (first_n)",
    "TPR@FPR1e-3 (first_n)",
    "MNIST 10-way 1-shot (Omniglot-trained)",
    "training minutes",
)
#: the panels of the ``--seeds`` figure (the first one orders the rows)
SEED_FIGURE_METRICS = (SEED_METRICS[1], SEED_METRICS[0], SEED_METRICS[2], SEED_METRICS[3])


def loss_family_grouping(run_names: list[str]) -> Callable[[str], str | None] | None:
    """Group runs by loss family (one colour / panel each) only when every run is named after a
    loss (``omniglot-losses``); otherwise None. A lever compared with the ``batch-hard``
    baseline would else put the baseline alone in a 'tuple' panel."""
    from oneshot.experiments.losses import family_of

    return family_of if run_names and all(family_of(n) for n in run_names) else None


def compare_seeds(
    seed_dirs: list[Path], out: Path | None = None, baseline: str | None = None
) -> str:
    """The ``--seeds`` report of experiments repeated over seeds: return the Markdown table;
    write the interval figure to ``out`` and the monitor curves beside it."""
    from oneshot.plots.comparisons import plot_curves_by_group, plot_seed_intervals
    from oneshot.runs import lower_is_better, seed_columns, seeds_table

    try:
        columns = seed_columns(seed_dirs)
    except ValueError as error:  # a run name twice under one seed name
        raise UsageError(str(error)) from None
    if not columns:
        raise UsageError(
            f"no evaluated run ({METRICS_FILE}) in {', '.join(map(str, seed_dirs))}. Pass the "
            "OUT folders of one experiment per seed, e.g. results/omniglot-losses/seed0 seed1."
        )
    reported = {k for by_seed in columns.values() for c in by_seed.values() for k in c}
    minutes = [m for m in SEED_METRICS[-1:] if m in reported]  # training minutes, last
    accuracy = [m for m in SEED_METRICS[:-1] if m in reported]
    suffixes = (": model", ": untrained network", ": raw pixels")  # runs holding out classes
    heldout = sorted(
        (m for m in reported if m.startswith("held-out ") and m.endswith(suffixes)),
        key=lambda m: [m.endswith(x) for x in suffixes].index(True),
    )
    if not heldout and not accuracy:  # another kind of report: every metric it has
        accuracy = sorted(set(reported) - set(minutes))
    metrics = heldout + accuracy + minutes
    if baseline is not None and baseline not in columns:
        raise UsageError(
            f"--baseline {baseline!r} is not an evaluated run of these folders; they have: "
            f"{', '.join(columns)}."
        )
    if out is not None:
        panels = [m for m in SEED_FIGURE_METRICS if m in reported] or metrics[:3]
        group_of = loss_family_grouping(list(columns))
        plot_seed_intervals(
            columns, panels, group_of=group_of, reference=baseline, path=out,
            scale_of=lambda m: 1.0 if lower_is_better(m) else 100.0,
        )  # fmt: skip
        histories = {
            name: [
                read_history(Path(d) / name)
                for d in seed_dirs
                if (Path(d) / name / METRICS_FILE).exists()
            ]
            for name in columns
        }
        if any(h.get("monitor_20way") for runs in histories.values() for h in runs):
            time_figure = out.with_name(f"{out.stem}-time{out.suffix}")
            plot_curves_by_group(histories, group_of=group_of, reference=baseline,
                                 path=time_figure)  # fmt: skip
    order = SEED_METRICS[1] if SEED_METRICS[1] in reported else None
    if order is None and heldout:
        order = heldout[0]  # the held-out model accuracy
    return seeds_table(columns, metrics, baseline, order_by=order)


def main(argv: list[str] | None = None) -> int:
    use_headless_backend()
    parser = CommandParser(
        prog="python -m oneshot.compare",
        description="Loss curves of several runs on one figure, and their metrics side by side.",
    )
    parser.add_argument(
        "runs", nargs="*", type=Path, help="run folders (OUT/<run>), or seed folders with --seeds"
    )
    parser.add_argument("--out", type=Path, default=Path("comparison.png"), help="figure file")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--mean", action="store_true", help="add the mean and std over the runs (e.g. seeds)"
    )
    parser.add_argument(
        "--seeds",
        action="store_true",
        help="the folders are one experiment's OUT per seed (e.g. results/omniglot-losses/seed0 "
        "seed1 seed2; several experiments' seed folders may be mixed, seeds paired by folder "
        "name): one row per run, the mean and 95%% t interval over the seeds",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        help="with --seeds: mark the runs whose seed-by-seed difference to this run excludes zero",
    )
    parser.add_argument(
        "--tuning",
        type=Path,
        default=None,
        help="print the tuning table of the loss comparison from this folder "
        "(results/omniglot-losses-tuning) and exit",
    )
    add_debug_flag(parser)
    args = parser.parse_args(argv)

    def body() -> int:
        if args.tuning is not None:
            from oneshot.experiments.losses import tuning_table

            if not (args.tuning / EXPERIMENT_FILE).exists():
                raise UsageError(
                    f"{args.tuning} is not a tuning folder (no {EXPERIMENT_FILE}): pass the --out "
                    "of omniglot-losses-tuning, e.g. results/omniglot-losses-tuning."
                )
            print(tuning_table(args.tuning))
            return 0
        if not args.runs:
            raise UsageError("pass run folders (or seed folders with --seeds, or --tuning DIR).")
        if args.seeds:
            not_dirs = [str(d) for d in args.runs if not d.is_dir()]
            if not_dirs:
                raise UsageError(f"not folders: {', '.join(not_dirs)}.")
            print(compare_seeds(args.runs, args.out, args.baseline))
            print(f"figures: {args.out} (and -time beside it)", file=sys.stderr)
            return 0
        if args.baseline is not None:
            raise UsageError("--baseline goes with --seeds.")
        missing = [str(d) for d in args.runs if not (d / HISTORY_FILE).exists()]
        if missing:
            raise UsageError(
                f"not run folders (no {HISTORY_FILE}): {', '.join(missing)}. "
                "Pass folders like runs/mnist-triplet/triplet."
            )
        try:
            from oneshot.runs import metrics_table

            table = metrics_table(args.runs, markdown=args.markdown, mean=args.mean)
        except (ValueError, KeyError, TypeError) as error:
            raise UsageError(
                f"unreadable {METRICS_FILE} or {HISTORY_FILE} in {', '.join(map(str, args.runs))}"
                f" ({type(error).__name__}: {error}). Re-run python -m oneshot.train --resume, "
                "or python -m oneshot.evaluate."
            ) from error
        from oneshot.training.assess import compare_runs  # late import: after parsing

        compare_runs(args.runs, args.out)
        print(table)
        print(f"\nloss curves: {args.out}")
        return 0

    return run_command(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
