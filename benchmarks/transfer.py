"""The transfer benchmark (:mod:`oneshot.experiments.transfer`): the ``--images`` recipe on
folders of few classes, scored on test images of classes it never saw, against the untrained
network, raw pixels and each pretrained start, over seeds.

    python benchmarks/transfer.py --out results/transfer --seeds 0 1 2 --threads 1
    python benchmarks/transfer.py --out results/transfer --table    # table.md, transfer.png

Each (task, seed) goes to ``OUT/<task>/seed<k>/`` (the runs' config.json and history.csv, and
``scores.json`` with every per-episode accuracy); a finished one is skipped, so the command
resumes. ``--table`` reads them all and writes ``OUT/table.md`` (with the processor in its
header) and ``OUT/transfer.png``. ``--steps`` shortens the recipe (a smoke test only).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import cpu_line, set_threads  # noqa: E402

SHOWN = ("auto-start", "random-start", "simclr-start", "untrained", "pixels", "omniglot", "mnist")
BASELINES = ("untrained", "pixels")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/transfer"))
    parser.add_argument("--tasks", nargs="+", default=None, help="default: all")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--recipes", nargs="+", default=None, help="default: all")
    parser.add_argument("--steps", type=int, default=None, help="at most this many steps")
    parser.add_argument("--threads", type=int, default=0, help="0: TensorFlow's default")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--table", action="store_true", help="only write the table and figure")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import oneshot  # noqa: F401  (first: quiets TensorFlow's start-up logs)

    set_threads(args.threads)
    from oneshot.experiments.transfer import RECIPES, TASKS, run_task

    names = args.tasks or list(TASKS)
    unknown = sorted(set(names) - set(TASKS))
    if unknown:
        print(f"error: unknown --tasks {unknown}; choose from {list(TASKS)}", file=sys.stderr)
        return 2
    if not args.table:
        for name in names:
            for seed in args.seeds:
                folder = args.out / name / f"seed{seed}"
                start = time.perf_counter()
                record = run_task(TASKS[name], seed, folder, args.data_dir, steps=args.steps,
                                  recipes=args.recipes or tuple(RECIPES))  # fmt: skip
                shown = ", ".join(f"{k} {v:.1%}" for k, v in record["accuracy"].items())
                print(f"{name} seed {seed} ({(time.perf_counter() - start) / 60:.1f} min): "
                      f"{shown}", flush=True)  # fmt: skip
    write_table(args.out, names, argv if argv is not None else sys.argv[1:])
    return 0


def write_table(out: Path, names: list[str], argv: list[str]) -> None:
    """``table.md`` and ``transfer.png`` from every ``scores.json`` under ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from oneshot.experiments.transfer import TASKS, margins

    lines = [
        "# python benchmarks/transfer.py " + " ".join(a for a in argv if a != "--table"),
        f"# {time.strftime('%Y-%m-%d')}  {cpu_line()}",
        "",
        "Accuracy on test images of unseen classes (1-shot, 1,000 episodes a seed, the same for "
        "every column), mean over seeds; margins are recipe minus baseline, mean per-episode "
        "difference with its 95% interval over all seeds' episodes (paired). ▲: the interval "
        "is above zero; ✗: not.",
        "",
        "| task | seeds | " + " | ".join(SHOWN) + " | recipe | vs untrained | vs pixels | "
        "start chosen | steps trained | training min |",
        "|---|---|" + "---|" * (len(SHOWN) + 6),
    ]
    figure_rows = []
    for name in names:
        records = [
            json.loads(p.read_text()) for p in sorted((out / name).glob("seed*/scores.json"))
        ]
        if not records:
            continue
        mean = {k: np.mean([r["accuracy"][k] for r in records]) for k in records[0]["accuracy"]}
        cells = [f"{100 * mean[k]:.1f}" if k in mean else "n/a" for k in SHOWN]
        for recipe in ("auto-start", "random-start", "simclr-start"):
            if recipe not in mean:
                continue
            gaps = []
            for baseline in BASELINES:
                diff, ci = margins(records, recipe, baseline)
                mark = "▲" if diff - ci > 0 else "✗"
                gaps.append(f"{100 * diff:+.1f} ± {100 * ci:.1f} {mark}")
            runs = [r["recipes"][recipe] for r in records]
            chosen = ", ".join(r["start"] for r in runs)
            steps = ", ".join(str(r["steps_trained"]) for r in runs)
            minutes = np.mean([r["training_seconds"] for r in runs]) / 60
            lines.append(
                f"| {name} ({TASKS[name].n_way}-way) | {len(records)} | " + " | ".join(cells)
                + f" | {recipe} | {gaps[0]} | {gaps[1]} | {chosen} | {steps} | {minutes:.1f} |"
            )  # fmt: skip
        figure_rows.append((name, [mean.get(k) for k in SHOWN]))
    lines += ["", "Tasks:"] + [f"- `{t.name}`: {t.summary}" for t in TASKS.values()]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(SHOWN)
    for i, key in enumerate(SHOWN):
        values = [100 * (row[1][i] or 0) for row in figure_rows]
        ax.bar(np.arange(len(figure_rows)) + i * width, values, width, label=key)
    ax.set_xticks(np.arange(len(figure_rows)) + width * (len(SHOWN) - 1) / 2)
    ax.set_xticklabels([f"{n}\n({TASKS[n].n_way}-way 1-shot)" for n, _ in figure_rows])
    ax.set_ylabel("accuracy on unseen classes (%)")
    ax.set_title("Transfer benchmark: mean over seeds")
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(out / "transfer.png", dpi=120)


if __name__ == "__main__":
    sys.exit(main())
