"""Command line: compare runs side by side.

    python -m oneshot.compare RUN_DIR [RUN_DIR ...] [--out FILE.png] [--markdown] [--mean]

Draws the loss curves of every run on one figure (``history.csv``) and prints a table of their
headline metrics (``metrics.json``) next to each other; ``--mean`` adds the mean and standard
deviation over the runs (e.g. the seeds of one configuration). Reading run folders and
building the table is ``oneshot.runs``; this module is the command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from oneshot.cli import UsageError, add_debug_flag, run_command, use_headless_backend
from oneshot.runs import HISTORY_FILE, METRICS_FILE, metrics_table, read_history, run_labels


def compare_runs(run_dirs: list[Path], out: Path | None = None):
    """Plot the loss curves of ``run_dirs`` on one figure (saved to ``out``); return it."""
    from oneshot.plots import plot_loss_curves

    histories = dict(zip(run_labels(run_dirs), (read_history(d) for d in run_dirs), strict=True))
    return plot_loss_curves(histories, path=out)


def main(argv: list[str] | None = None) -> int:
    use_headless_backend()
    parser = argparse.ArgumentParser(
        prog="python -m oneshot.compare",
        description="Loss curves of several runs on one figure, and their metrics side by side.",
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (OUT/<run>)")
    parser.add_argument("--out", type=Path, default=Path("comparison.png"), help="figure file")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--mean", action="store_true", help="add the mean and std over the runs (e.g. seeds)"
    )
    add_debug_flag(parser)
    args = parser.parse_args(argv)

    def body() -> int:
        missing = [str(d) for d in args.runs if not (d / HISTORY_FILE).exists()]
        if missing:
            raise UsageError(
                f"not run folders (no {HISTORY_FILE}): {', '.join(missing)}. "
                "Pass folders like runs/mnist-triplet/triplet."
            )
        try:
            table = metrics_table(args.runs, markdown=args.markdown, mean=args.mean)
        except (ValueError, KeyError, TypeError) as error:
            raise UsageError(
                f"unreadable {METRICS_FILE} or {HISTORY_FILE} in {', '.join(map(str, args.runs))}"
                f" ({type(error).__name__}: {error}). Re-run python -m oneshot.train --resume, "
                "or python -m oneshot.evaluate."
            ) from error
        compare_runs(args.runs, args.out)
        print(table)
        print(f"\nloss curves: {args.out}")
        return 0

    return run_command(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
