"""``python -m oneshot.train --images DIR``: the recommended recipe on a folder of PNGs exported
from real MNIST test digits, its run folder, resume, and one-line errors for bad input."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oneshot.data import load_mnist


def export_digits(root: Path, data_dir: Path, classes: int = 10, per_class: int = 8) -> Path:
    """``root/digit<c>/<i>.png``: the first ``per_class`` MNIST test images of each digit."""
    digits = load_mnist("test", data_dir=data_dir)
    for c in range(classes):
        folder = root / f"digit{c}"
        folder.mkdir(parents=True)
        for i, j in enumerate(np.flatnonzero(digits.labels == c)[:per_class]):
            Image.fromarray(digits.images[j]).save(folder / f"{i:02d}.png")
    return root


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def images_run(tmp_path_factory, data_dir):
    """One CLI run on a 10-class folder (4 steps), shared by the tests of its output."""
    from oneshot.cli.train import main

    root = tmp_path_factory.mktemp("images")
    folder = export_digits(root / "digits", data_dir)
    out = root / "mine"
    argv = ["--images", str(folder), "--out", str(out), "--steps", "4", "--episodes", "50",
            "--init-from", "random"]  # fmt: skip
    printed, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        assert main(argv) == 0, errors.getvalue()[-2000:]
    return folder, out, argv, printed.getvalue(), errors.getvalue()


def test_images_writes_a_complete_run_folder(images_run):
    folder, out, _, printed, errors = images_run
    run = out / "recommended"
    for name in ("config.json", "history.csv", "model.keras", "metrics.json", "loss.png",
                 "untrained.weights.h5"):  # fmt: skip
        assert (run / name).stat().st_size > 0, name
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"] == "folder" and config["folder"] == str(folder.resolve())
    assert config["folder_checksum"].startswith("sha256:")
    held = config["validation_classes"]  # the default count (5 of 10), recorded by name
    assert len(held) == 5 and set(held) < {f"digit{c}" for c in range(10)}
    assert config["keep_best"] is True
    assert config["augment"] is True and config["patience"] == 3  # the few-class study's choice
    assert config["image_size"] == 28 and "channels" not in config  # grey, the default
    assert (config["classes_per_batch"], config["samples_per_class"]) == (5, 8)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dataset"] == "folder" and metrics["split"] == "held-out classes"
    assert metrics["classes"] == 5 and metrics["images"] == 40
    report = metrics["heldout"]
    assert {"model", "untrained", "pixels", "vs_untrained", "vs_pixels"} <= set(report)
    assert report["steps_trained"] == 4 and report["best_step"] in (0, 4)  # the start or step 4
    assert report["kept_start"] == (report["best_step"] == 0)
    assert report["protocol"]["class_names"] == held
    names = ", ".join(held)
    assert f"validation: 5 held-out classes ({names}), never trained on" in printed
    assert f"5 held-out classes ({names}), 5-way 1-shot, 50 episodes: trained" in printed
    summary = json.loads((out / "summary.json").read_text())["runs"]["recommended"]
    assert (summary["steps"], summary["steps_asked"]) == (4, 4)
    assert "no separate test split" in printed
    assert (report["warning"] is not None) == ("warning: recommended:" in errors)


def test_images_resume_re_evaluates_and_refuses_a_changed_folder(images_run, capsys):
    from oneshot.cli.train import main

    folder, out, argv, _, _ = images_run
    assert main([*argv, "--resume"]) == 0  # finished: loaded and evaluated again
    before = snapshot(out)
    image = folder / "digit0" / "00.png"
    original = image.read_bytes()
    try:
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(image)
        assert main([*argv, "--resume"]) == 2
        err = capsys.readouterr().err
        assert "folder_checksum: the run has 'sha256:" in err and "Traceback" not in err
        assert snapshot(out) == before
    finally:
        image.write_bytes(original)


def _one_class(root: Path, data_dir: Path) -> Path:
    export_digits(root, data_dir, classes=1)
    return root


def _three_classes(root: Path, data_dir: Path) -> Path:
    return export_digits(root, data_dir, classes=3)


def _four_classes(root: Path, data_dir: Path) -> Path:
    return export_digits(root, data_dir, classes=4)


def _mixed_colour(root: Path, data_dir: Path) -> Path:
    export_digits(root, data_dir, classes=4, per_class=3)
    grey = np.asarray(Image.open(root / "digit1" / "00.png"))
    Image.fromarray(np.repeat(grey[..., None], 3, axis=-1)).save(root / "digit1" / "00.png")
    return root


def _mixed_sizes(root: Path, data_dir: Path) -> Path:
    export_digits(root, data_dir, classes=4, per_class=3)
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(root / "digit3" / "small.png")
    return root


def _unreadable(root: Path, data_dir: Path) -> Path:
    export_digits(root, data_dir, classes=4, per_class=3)
    (root / "digit2" / "broken.png").write_bytes(b"not a png")
    return root


def _with_35px_network(root: Path, data_dir: Path) -> Path:
    """Digits, and beside them a bare conv4 network for 35x35 images (an omniglot-best's)."""
    from oneshot.models.networks import build_network

    export_digits(root, data_dir, classes=4, per_class=3)
    build_network("conv4", (35, 35, 1), 64, width=64).save(root.parent / "omniglot.keras")
    return root


def _one_class_of_one_image(root: Path, data_dir: Path) -> Path:
    """Four class folders, two of them with a single image: 2 usable classes."""
    export_digits(root, data_dir, classes=4, per_class=3)
    for c in (2, 3):
        for extra in sorted((root / f"digit{c}").glob("*.png"))[1:]:
            extra.unlink()
    return root


def _not_square(root: Path, data_dir: Path) -> Path:
    for c in range(4):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((20, 30), 40 * c, np.uint8)).save(root / f"c{c}" / f"{i}.png")
    return root


@pytest.mark.parametrize(
    "make, extra, message",
    [
        (None, [], "--images {folder} does not exist"),
        (_one_class, [], "holds one class ('digit0')"),
        (_three_classes, [], "has 3 classes (3 with 2 or more images): training needs 2 "
         "classes and validation 2 others it never trains on (2-way one-shot episodes). Add 1 "
         "more class folder with at least 2 images each"),
        (_one_class_of_one_image, [], "Add 2 more class folders"),
        (_four_classes, ["--validation-classes", "3"],
         "--validation-classes 3 cannot be held out: it leaves fewer than 2 of the 4 classes"),
        (_four_classes, ["--validation-classes", "digit0,digit9"],
         "cannot be held out: unknown class(es) ['digit9']"),
        (_three_classes, ["--validation-classes", "-1"], "--validation-classes must be a count"),
        (_unreadable, [], "Cannot read the image {folder}/digit2/broken.png"),
        (_mixed_colour, [], "Pass --channels 1 to convert all to grey, or --channels 3"),
        (_mixed_sizes, [], "Pass --image-size 28 (for example) to resize"),
        (_three_classes, ["--image-size", "8"], "--image-size must be >= 16"),
        (_three_classes, ["--paper"], "--paper applies to --experiment only"),
        (_three_classes, ["--patience", "-1"], "--patience must be >= 0"),
        (_three_classes, ["--init-from", "nowhere/model.keras"],
         "--init-from nowhere/model.keras does not exist. Pass auto, random, a shipped start "
         "(omniglot, mnist)"),
        (_with_35px_network, ["--init-from", "__folder__/../omniglot.keras"],
         "input shapes differ. Set the run's image_size to 35 and channels to 1 (--image-size 35"),
    ],
    ids=["missing", "one-class", "three-classes", "a-class-of-one-image", "too-few-to-train",
         "unknown-class", "bad-count", "unreadable", "mixed-colour", "mixed-sizes", "too-small",
         "paper", "bad-patience",
         "init-missing",
         "init-other-shape"],
)  # fmt: skip
def test_bad_images_input_is_one_line_and_writes_nothing(tmp_path, data_dir, capsys, make, extra,
                                                         message):  # fmt: skip
    from oneshot.cli.train import main

    folder = tmp_path / "folder"
    if make is not None:
        make(folder, data_dir)
    out = tmp_path / "out"
    extra = [e.replace("__folder__", str(folder)) for e in extra]
    assert main(["--images", str(folder), "--out", str(out), "--steps", "2", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert message.format(folder=folder) in err, err
    assert not out.exists()


def test_folder_flags_need_images(tmp_path, capsys):
    from oneshot.cli.train import main

    out = tmp_path / "out"
    assert main(["--experiment", "mnist-best", "--image-size", "32", "--out", str(out)]) == 2
    assert "--image-size applies to --images only" in capsys.readouterr().err
    assert main(["--experiment", "mnist-best", "--init-from", "m.keras", "--out", str(out)]) == 2
    assert "--init-from applies to --images only" in capsys.readouterr().err
    assert main(["--experiment", "mnist-best", "--no-augment", "--out", str(out)]) == 2
    assert "--augment applies to --images only" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, augment, patience",
    [
        ([], True, 3),
        (["--no-augment", "--patience", "0"], False, 0),
        (["--patience", "5"], True, 5),
    ],
)
def test_augment_and_patience_flags_reach_the_run(tmp_path, data_dir, extra, augment, patience):
    from oneshot.cli.train_args import parse_args
    from oneshot.cli.train_images import build_folder_experiment

    folder = export_digits(tmp_path / "digits", data_dir, classes=6, per_class=3)
    args = parse_args(["--images", str(folder), *extra])
    experiment, _ = build_folder_experiment(args)
    (run,) = experiment.runs
    assert (run.augment, run.patience, run.keep_best) == (augment, patience, True)


def test_the_recommended_recipe_is_the_few_class_studys_best_from_scratch():
    """``recommended_run`` is the ``augment`` run of ``mnist-few-class`` (the best recipe that
    starts from random weights), and the study's own runs keep their committed configs."""
    import dataclasses

    from oneshot.experiments.few_class import HELD_OUT_DIGITS, TRAIN_DIGITS, few_class_runs
    from oneshot.experiments.your_data import MNIST_DIGIT_SIZE, recommended_run

    runs = {run.name: run for run in few_class_runs()}
    recipe = recommended_run([MNIST_DIGIT_SIZE] * len(TRAIN_DIGITS), image_size=28,
                             validation_classes=HELD_OUT_DIGITS, dataset="mnist")  # fmt: skip
    assert dataclasses.replace(recipe, name="augment", keep_start=False) == runs["augment"]
    assert not runs["readme"].augment and not runs["best-chunk"].augment


@pytest.mark.parametrize("extra, size", [([], 30), (["--image-size", "24"], 24)])
def test_non_square_images_are_resized_with_a_note_on_their_aspect_ratio(tmp_path, data_dir,
                                                                         capsys, extra, size):  # fmt: skip
    from oneshot.cli.train_args import parse_args
    from oneshot.cli.train_images import read_folder

    folder = _not_square(tmp_path / "folder", data_dir)
    args = parse_args(["--images", str(folder), *extra])
    data = read_folder(args)
    assert data.images.shape[1:] == (size, size)
    err = capsys.readouterr().err
    assert "note: 8 of 8 images in" in err and "(e.g. c0/0.png is 30x20)" in err, err
    assert "their aspect ratio changed" in err
    assert ("(--image-size 30)" in err) == (not extra)


def test_a_four_class_folder_trains_and_warns_that_2_way_episodes_say_little(tmp_path, data_dir):
    """The smallest folder that validates (2 classes to train, 2 held out, named): its numbers
    come from 2-way episodes, which the summary and metrics.json flag whatever the scores."""
    from oneshot.cli.train import main

    folder = export_digits(tmp_path / "digits", data_dir, classes=4, per_class=6)
    out = tmp_path / "out"
    printed, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        assert main(["--images", str(folder), "--out", str(out), "--steps", "2",
                     "--episodes", "20"]) == 0, errors.getvalue()[-2000:]  # fmt: skip
    run = out / "recommended"
    held = json.loads((run / "config.json").read_text())["validation_classes"]
    assert len(held) == 2
    report = json.loads((run / "metrics.json").read_text())["heldout"]
    assert report["protocol"]["n_way"] == 2 and report["protocol"]["class_names"] == held
    assert "measured on 2-way episodes of 2 held-out classes: chance is 50%" in report["warning"]
    assert f"warning: recommended: {report['warning']}" in errors.getvalue()
    assert f"validation: 2 held-out classes ({', '.join(held)})" in printed.getvalue()
