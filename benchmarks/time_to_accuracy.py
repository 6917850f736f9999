"""Time to accuracy: when did each run's monitored 20-way accuracy first reach each threshold?

    python benchmarks/time_to_accuracy.py RUN_OR_FOLDER [RUN_OR_FOLDER ...]
                                          [--thresholds 0.70,0.80,0.85,0.90]
                                          [--out results/benchmarks/time_to_accuracy.txt]
                                          [--plot time_to_accuracy.png]

Every ``history.csv`` under the given folders (searched recursively; a run folder itself works)
is one run. ``monitor_20way`` is the 20-way 1-shot within-alphabet accuracy (fraction 0..1) on
the monitoring set, logged after every chunk of training steps; ``seconds`` is training time
(monitoring excluded) and ``step`` the optimisation step. Older runs have no
``monitor_20way`` column: their row says so.

Columns: ``>= T``: training minutes and step of the first logged chunk whose ``monitor_20way``
is at least T (``never`` when no chunk reached it); ``final``: the last logged value; ``best``:
the highest; ``steps`` / ``minutes``: the run's last logged step and training minutes. The
resolution is one log chunk: the threshold was crossed somewhere in the chunk that ends at the
reported step. Reads text only (no TensorFlow); ``--plot`` draws accuracy against training
minutes, one line per run (matplotlib, Agg backend).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

HISTORY_FILE = "history.csv"
MONITOR = "monitor_20way"
DEFAULT_THRESHOLDS = (0.70, 0.80, 0.85, 0.90)


@dataclass(frozen=True)
class Reached:
    """The first logged chunk at or above a threshold."""

    step: int
    seconds: float


@dataclass
class RunCurve:
    """One run's monitored accuracy against step and training seconds."""

    label: str
    path: Path
    steps: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    has_monitor: bool = True
    last_step: int | None = None
    last_seconds: float | None = None


def _number(value: str | None) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def read_curve(path: Path, label: str | None = None) -> RunCurve:
    """Read ``step``, ``seconds`` and ``monitor_20way`` from a ``history.csv``.

    Rows whose accuracy is missing or not a number are skipped; ``has_monitor`` is False when
    the column does not exist.
    """
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        rows = list(reader)
    for needed in ("step", "seconds"):
        if needed not in columns:
            raise ValueError(
                f"{path} has no `{needed}` column (columns: {columns}). Expected a history.csv "
                "written by python -m oneshot.train."
            )
    curve = RunCurve(label or path.parent.name, path, has_monitor=MONITOR in columns)
    for row in rows:
        step, seconds = _number(row.get("step")), _number(row.get("seconds"))
        if step is None or seconds is None:
            continue
        curve.last_step, curve.last_seconds = int(step), seconds
        accuracy = _number(row.get(MONITOR))
        if accuracy is not None:
            curve.steps.append(int(step))
            curve.seconds.append(seconds)
            curve.accuracy.append(accuracy)
    return curve


def first_reach(curve: RunCurve, threshold: float) -> Reached | None:
    """The first logged (step, seconds) with accuracy >= ``threshold``; None if never."""
    for step, seconds, accuracy in zip(curve.steps, curve.seconds, curve.accuracy, strict=True):
        if accuracy >= threshold:
            return Reached(step, seconds)
    return None


def find_histories(paths: list[Path]) -> list[Path]:
    """Every history.csv under ``paths`` (a path may also be a history.csv), sorted, unique."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(path.rglob(HISTORY_FILE))
        else:
            raise FileNotFoundError(f"{path} does not exist.")
    unique = sorted({p.resolve(): p for p in found}.values())
    if not unique:
        raise FileNotFoundError(f"No {HISTORY_FILE} under {[str(p) for p in paths]}.")
    return unique


def run_labels(histories: list[Path]) -> list[str]:
    """Short unique labels: the run folders' paths relative to their common parent."""
    folders = [h.resolve().parent for h in histories]
    if len(folders) == 1:
        return [f"{folders[0].parent.name}/{folders[0].name}"]
    common = Path(os.path.commonpath(folders))
    return [str(f.relative_to(common)) if f != common else f.name for f in folders]


def format_table(curves: list[RunCurve], thresholds: list[float], command: str) -> str:
    """The text table: one row per run, one column per threshold."""
    width = max([len("run")] + [len(c.label) for c in curves])
    head = f"{'run':{width}s} " + " ".join(f"{'>= ' + format(t, '.2f'):>16s}" for t in thresholds)
    head += f" {'final':>6s} {'best':>6s} {'steps':>7s} {'minutes':>8s}"
    lines = [
        f"# {command}",
        f"# {MONITOR}: 20-way 1-shot within-alphabet accuracy on the monitoring set; '>= T': "
        "training minutes @ step of the first logged chunk reaching T ('never' if none)",
        "",
        head,
    ]
    for curve in curves:
        steps = f"{curve.last_step:7d}" if curve.last_step is not None else f"{'-':>7s}"
        minutes = (
            f"{curve.last_seconds / 60:8.1f}" if curve.last_seconds is not None else f"{'-':>8s}"
        )
        if not curve.has_monitor:
            note = f"no {MONITOR} column (run written before monitoring)"
            lines.append(f"{curve.label:{width}s} {note}  steps {steps.strip()}")
            continue
        cells = []
        for t in thresholds:
            hit = first_reach(curve, t)
            cell = "never" if hit is None else f"{hit.seconds / 60:.1f} min @ {hit.step}"
            cells.append(f"{cell:>16s}")
        final = f"{curve.accuracy[-1]:6.3f}" if curve.accuracy else f"{'-':>6s}"
        best = f"{max(curve.accuracy):6.3f}" if curve.accuracy else f"{'-':>6s}"
        lines.append(f"{curve.label:{width}s} {' '.join(cells)} {final} {best} {steps} {minutes}")
    return "\n".join(lines)


def plot_curves(curves: list[RunCurve], thresholds: list[float], path: Path) -> None:
    """Accuracy against training minutes, one line per run; thresholds as dotted lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for curve in curves:
        if curve.accuracy:
            minutes = [s / 60 for s in curve.seconds]
            ax.plot(minutes, curve.accuracy, marker=".", label=curve.label)
    for t in thresholds:
        ax.axhline(t, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("training minutes")
    ax.set_ylabel(f"{MONITOR} (20-way 1-shot, within alphabet)")
    ax.set_xlim(left=0)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    if any(c.accuracy for c in curves):
        ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_thresholds(text: str) -> list[float]:
    values = [float(t) for t in text.split(",") if t.strip()]
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise ValueError(
            "Invalid value for `--thresholds`. Expected fractions in [0, 1] such as "
            f"0.70,0.80. Received: {text!r}"
        )
    return sorted(values)


def main(argv: list[str] | None = None) -> str:
    """Read the runs, print (and optionally write and plot) the table; return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run folders or folders of runs")
    parser.add_argument("--thresholds", default=",".join(f"{t:.2f}" for t in DEFAULT_THRESHOLDS))
    parser.add_argument("--out", type=Path, default=None, help="write the table here")
    parser.add_argument("--plot", type=Path, default=None, help="PNG: accuracy vs minutes")
    args = parser.parse_args(argv)
    thresholds = parse_thresholds(args.thresholds)
    histories = find_histories(args.paths)
    curves = [
        read_curve(h, label) for h, label in zip(histories, run_labels(histories), strict=True)
    ]
    command = " ".join(
        ["python", "benchmarks/time_to_accuracy.py", *(sys.argv[1:] if argv is None else argv)]
    )
    text = format_table(curves, thresholds, command)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if args.plot:
        plot_curves(curves, thresholds, args.plot)
    return text


if __name__ == "__main__":
    main()
