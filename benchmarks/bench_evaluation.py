"""Evaluation speed: embeddings/s, N-way episodes/s, Lake's 20 runs, 400-way CMC, first-N ROC.

    python benchmarks/bench_evaluation.py [--image-sizes 28,35] [--model path/to/model.keras]
                                          [--episodes 1000] [--repeats 3] [--threads N]
                                          [--quick] [--out results/benchmarks/evaluation.txt]

Needs the real data (``export ONESHOT_DATA_DIR=...``): Omniglot evaluation (13,180 images of
659 characters) and Lake's runs. Models: an untrained conv4 (width 64, embedding 64) at each
``--image-sizes`` (speed does not depend on the weights), and with ``--model`` a saved model of
any kind (a quadruplet model scores pairs with its learned metric, which is slower). One row per
(model, task):

- ``embed``: ``Scorer.embed`` of every evaluation image (uint8 -> float, batches of 512).
- ``nway N within`` / ``nway N unstructured``: ``nway_accuracy`` with ``--episodes``
  N-way 1-shot episodes (classes from one alphabet / from any), embeddings computed once.
- ``lake 20 runs``: ``lake_evaluate`` on Lake's 20 official runs (embeds their 800 images).
- ``cmc 400-way``: ``cmc`` with 400 classes, ``--cmc-trials`` draws (the report's 10).
- ``roc first-6000``: ``verification(pairs="first_n")``: all pairs of the first 6,000 images.
- ``report (all)``: ``evaluate_scorer`` with every protocol on the given embeddings, as a
  training run does after training (n-way, Lake, both ROCs, CMC, retrieval MAP@R).
- ``hausdorff 20 runs`` (once, model-free): ``lake_hausdorff_baseline`` on the 105x105 runs.

Columns: ``items`` = what one call processes (images, episodes, runs, trials or pairs, named in
``unit``); ``runs`` = timed calls; ``median s`` = median seconds of one call after one warm-up
call (the report and the Hausdorff baseline: one call, no warm-up); ``per s`` = items / median s.
``--threads N`` sets TensorFlow's intra- and inter-op threads (numpy/scipy parts are not
affected); 0 keeps the defaults. The machine may be shared: the header records the load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # measure.py
from measure import header, median_seconds, set_threads  # noqa: E402

WAYS = (5, 20)
CMC_CLASSES = 400
FIRST_N = 6000


def load_evaluation(image_size: int, data_dir: str | None, quick: bool):
    """Omniglot evaluation split and Lake's runs at ``image_size`` (quick: two alphabets)."""
    from oneshot.data import load_lake_runs, load_omniglot
    from oneshot.data.datasets import LabelledImages

    size = None if image_size == 105 else image_size
    test = load_omniglot("evaluation", image_size=size, data_dir=data_dir)
    images, labels, alphabets = test.images, test.labels, test.alphabets
    if quick:
        keep = alphabets < 2
        images, labels, alphabets = images[keep], labels[keep], alphabets[keep]
    runs = load_lake_runs(image_size=size, data_dir=data_dir)
    return LabelledImages(images, labels), alphabets, runs


def time_model(name: str, scorer, image_size: int, args) -> list[tuple]:
    """Rows ``(model, size, task, items, unit, runs, median s)`` for one scorer."""
    import numpy as np

    from oneshot.evaluation import cmc, lake_evaluate, nway_accuracy, verification
    from oneshot.evaluation.report import evaluate_scorer

    test, alphabets, runs = load_evaluation(image_size, args.data_dir, args.quick)
    images, labels = test.images, test.labels
    if args.quick:
        runs = runs[:2]
    rows = []

    def add(task: str, items: int, unit: str, fn: Callable[[], object], once: bool = False):
        repeats = 1 if once else args.repeats
        seconds = median_seconds(fn, repeats, warmup=0 if once else 1)
        rows.append((name, image_size, task, items, unit, repeats, seconds))
        print(f"  {name} {image_size} {task:22s} {items / seconds:12.1f} {unit}/s", flush=True)

    add("embed", len(images), "images", lambda: scorer.embed(images))
    embeddings = scorer.embed(images)
    for n_way in WAYS:
        for within in (True, False):
            task = f"nway {n_way} {'within' if within else 'unstructured'}"
            add(
                task,
                args.episodes,
                "episodes",
                lambda n=n_way, w=within: nway_accuracy(
                    scorer, embeddings, labels, n, 1, args.episodes,
                    alphabets=alphabets, within_alphabet=w,
                ),
            )  # fmt: skip
    add(f"lake {len(runs)} runs", len(runs), "runs", lambda: lake_evaluate(scorer, runs))
    n_classes = min(CMC_CLASSES, len(np.unique(labels)))
    add(
        f"cmc {n_classes}-way",
        args.cmc_trials,
        "trials",
        lambda: cmc(scorer, embeddings, labels, n_classes, args.cmc_trials),
    )
    first_n = min(args.first_n, len(labels))
    add(
        f"roc first-{first_n}",
        first_n * (first_n - 1) // 2,
        "pairs",
        lambda: verification(scorer, embeddings, labels, "first_n", first_n=first_n),
    )
    add(
        "report (all)",
        len(labels),
        "images",
        lambda: evaluate_scorer(
            scorer, images, labels, "omniglot", "evaluation", alphabets=alphabets,
            lake_runs=runs, episodes=args.episodes, cmc_classes=n_classes, first_n=first_n,
            embeddings=embeddings,
        ),
        once=True,
    )  # fmt: skip
    return rows


def time_hausdorff(args) -> tuple:
    """The modified-Hausdorff baseline on Lake's runs (105x105), timed once."""
    from oneshot.data import load_lake_runs
    from oneshot.evaluation import lake_hausdorff_baseline

    runs = load_lake_runs(data_dir=args.data_dir)[: 2 if args.quick else None]
    seconds = median_seconds(lambda: lake_hausdorff_baseline(runs), 1, warmup=0)
    print(f"  hausdorff {len(runs)} runs {seconds:.1f} s", flush=True)
    return ("hausdorff", 105, f"hausdorff {len(runs)} runs", len(runs), "runs", 1, seconds)


def scorers(args) -> list[tuple[str, object, int]]:
    """``(name, Scorer, image size)``: untrained conv4 per size, then the ``--model``."""
    import keras

    import oneshot.losses  # noqa: F401  (registers the serializable classes for loading)
    import oneshot.models  # noqa: F401
    from oneshot.evaluation.scoring import Scorer
    from oneshot.models.networks import conv4

    out = []
    for size in [int(s) for s in args.image_sizes.split(",") if s]:
        keras.utils.set_random_seed(0)
        scorer = Scorer.from_model(conv4((size, size, 1)), distance="euclidean")
        out.append(("conv4-untrained", scorer, size))
    if args.model:
        model = keras.saving.load_model(args.model)
        scorer = Scorer.from_model(model)
        size = int(scorer.embedding_model.input_shape[1])
        out.append((Path(args.model).parent.name or Path(args.model).stem, scorer, size))
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-sizes", default="28,35", help="untrained conv4 at these sizes")
    parser.add_argument("--model", default=None, help="also time this saved model (.keras)")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--cmc-trials", type=int, default=10)
    parser.add_argument("--first-n", type=int, default=FIRST_N)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="TF threads (0: TF default)")
    parser.add_argument("--data-dir", default=None, help="default: $ONESHOT_DATA_DIR")
    parser.add_argument("--out", default="results/benchmarks/evaluation.txt")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 28x28 only, 2 alphabets, 2 Lake runs, 100 episodes, 1 repeat",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.image_sizes, args.episodes, args.cmc_trials, args.repeats = "28", 100, 2, 1
        args.first_n = 500
    return args


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark; write and return the text table."""
    args = parse_args(argv)
    set_threads(args.threads)
    started = time.perf_counter()
    rows = []
    for name, scorer, size in scorers(args):
        print(f"{name} at {size}x{size} ...", flush=True)
        rows += time_model(name, scorer, size, args)
    rows.append(time_hausdorff(args))

    command = sys.argv[1:] if argv is None else argv
    lines = [
        *header("bench_evaluation.py", command, time.perf_counter() - started),
        f"# Omniglot evaluation split{' (quick: 2 alphabets)' if args.quick else ''}; "
        f"{args.episodes} episodes per N-way task; median of {args.repeats} calls after one "
        "warm-up call (runs = 1: a single call)",
        "",
        f"{'model':16s} {'size':>4s} {'task':22s} {'items':>10s} {'unit':8s} {'runs':>4s} "
        f"{'median s':>9s} {'per s':>12s}",
    ]
    for name, size, task, items, unit, runs, seconds in rows:
        lines.append(
            f"{name:16s} {size:4d} {task:22s} {items:10d} {unit:8s} {runs:4d} {seconds:9.3f} "
            f"{items / seconds:12.1f}"
        )
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    return text


if __name__ == "__main__":
    main()
