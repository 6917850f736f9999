"""The application command lines end to end (``python -m oneshot.index``, ``verify``,
``identify``, ``cluster``, ``novelty``) on real MNIST test digits written as PNG class folders,
with the committed trained MNIST model; every bad input of issue 14 gives one ``error:`` line
naming the file or argument, exit status 2, and nothing on disk.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oneshot.cli import cluster as cluster_cli
from oneshot.cli import identify as identify_cli
from oneshot.cli import index as index_cli
from oneshot.cli import novelty as novelty_cli
from oneshot.cli import verify as verify_cli
from oneshot.data import load_mnist

RESULTS = Path(__file__).resolve().parents[1] / "results"
MNIST_MODEL = RESULTS / "mnist-triplet" / "triplet" / "model.keras"
OMNIGLOT_MODEL = RESULTS / "omniglot-best" / "seed0" / "batch-hard" / "model.keras"
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def write_digits(root: Path, images, labels, classes=range(10)) -> Path:
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        if label in classes:
            path = root / NAMES[label] / f"{i:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path)
    return root


@pytest.fixture(scope="module")
def folders(data_dir, tmp_path_factory):
    """gallery: 12 test digits of each class; queries: 4 others of each; enrol: 3 of each of
    0-4; a copy of the trained model (its verifier is written beside it)."""
    test = load_mnist("test", data_dir=data_dir)
    root = tmp_path_factory.mktemp("digits")
    picks = {d: np.flatnonzero(test.labels == d) for d in range(10)}
    gallery = np.concatenate([p[:12] for p in picks.values()])
    queries = np.concatenate([p[12:16] for p in picks.values()])
    enrol = np.concatenate([p[16:19] for p in picks.values()])
    write_digits(root / "gallery", test.images[gallery], test.labels[gallery])
    write_digits(root / "queries", test.images[queries], test.labels[queries])
    write_digits(root / "enrol", test.images[enrol], test.labels[enrol], classes=range(5))
    shutil.copy(MNIST_MODEL, root / "model.keras")
    return root


def run(cli, argv, capsys) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error(code: int, err: str) -> str:
    """The single ``error:`` line of a refused command (status 2)."""
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1, err
    return lines[0]


def build(folders, images, out, capsys, *extra):
    argv = ["build", "--model", folders / "model.keras", "--images", images, "--out", out]
    return run(index_cli, [*argv, "--quiet", *extra], capsys)


# ------------------------------------------------------------------------------ index


def test_index_build_search_plot_and_evaluate(folders, tmp_path, capsys):
    out = tmp_path / "gallery.npz"
    code, text, _ = build(folders, folders / "gallery", out, capsys)
    assert code == 0 and out.is_file()
    assert "index: 120 images of 10 classes, 10-D embeddings" in text

    queries = sorted((folders / "queries" / "seven").glob("*.png"))
    queries += sorted((folders / "queries" / "two").glob("*.png"))
    plot = tmp_path / "hits.png"
    argv = ["search", "--index", out, "--model", folders / "model.keras", "--top", 3]
    code, text, _ = run(index_cli, [*argv, "--plot", plot, "--query", *queries], capsys)
    assert code == 0
    with Image.open(plot) as png:
        assert png.format == "PNG" and png.size[1] > 400  # 8 strips of 4 images
    blocks = text.split("query ")[1:]
    assert len(blocks) == 8 and all(len(b.strip().splitlines()) == 4 for b in blocks)
    top = [b.splitlines()[1].split()[1] for b in blocks]
    truth = ["seven"] * 4 + ["two"] * 4
    assert np.mean([t == g for t, g in zip(top, truth, strict=True)]) >= 0.75
    first = blocks[0].splitlines()[1].split()
    assert first[0] == "1" and Path(first[3]).is_file()  # the id is the indexed file

    code, text, _ = run(index_cli, ["evaluate", "--index", out, "--top", 5], capsys)
    assert code == 0
    map_at_r = float(re.search(r"MAP@R\s+([0-9.]+)", text).group(1))
    assert 0.6 < map_at_r < 1.0 and "precision@5" in text


def test_build_refuses_an_existing_index_before_any_work(folders, tmp_path, capsys):
    out = tmp_path / "index.npz"
    out.write_bytes(b"keep me")
    code, _, err = build(folders, folders / "gallery", out, capsys)
    assert "already exists; pass --overwrite" in one_error(code, err)
    assert out.read_bytes() == b"keep me"


def bad_folder(root: Path, kind: str, digits: Path) -> Path:
    """A copy of two gallery classes with one defect."""
    for name in ("one", "two"):
        shutil.copytree(digits / name, root / name)
    if kind == "unreadable":
        (root / "two" / "broken.png").write_text("not a picture")
    elif kind == "empty class":
        (root / "three").mkdir()
    elif kind == "one class":
        shutil.rmtree(root / "two")
    elif kind == "colour":
        first = next((root / "two").glob("*.png"))
        grey = np.asarray(Image.open(first))
        Image.fromarray(np.stack([grey, 255 - grey, grey], axis=-1)).save(root / "two" / "c.png")
    return root


@pytest.mark.parametrize(
    "kind, message",
    [
        ("unreadable", r"Cannot read the image .*two/broken\.png.* Replace or delete the file"),
        ("empty class", r"Class folder .*three holds no images .*add images or remove"),
        ("one class", r"holds one class \('one'\).* at least two class folders"),
        ("colour", r"two/c\.png is a colour image, but the network takes grey .*--convert"),
    ],
)
def test_a_bad_folder_is_named_and_nothing_is_written(folders, tmp_path, capsys, kind, message):
    images = bad_folder(tmp_path / "images", kind, folders / "gallery")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = build(folders, images, out_dir / "index.npz", capsys)
    assert re.search(message, one_error(code, err))
    assert list(out_dir.iterdir()) == []  # no index, no temporary file


def test_colour_is_converted_when_asked_and_mixed_sizes_are_resized(folders, tmp_path, capsys):
    images = bad_folder(tmp_path / "images", "colour", folders / "gallery")
    big = np.asarray(Image.open(next((images / "one").glob("*.png"))))
    Image.fromarray(np.kron(big, np.ones((2, 2), np.uint8))).save(images / "one" / "big.png")
    out = tmp_path / "index.npz"
    argv = ["build", "--model", folders / "model.keras", "--images", images, "--out", out]
    code, text, err = run(index_cli, [*argv, "--convert"], capsys)
    assert code == 0 and "index: 26 images of 2 classes" in text
    assert "note: converted 1 colour images to grey" in err
    assert "note: resized 1 of 26 images (56x56) to 28x28 by area averaging" in err


def test_bad_queries_and_another_models_index(folders, tmp_path, capsys):
    out = tmp_path / "gallery.npz"
    assert build(folders, folders / "gallery", out, capsys)[0] == 0
    strip = tmp_path / "strip.png"
    Image.fromarray(np.zeros((28, 100), np.uint8)).save(strip)
    colour = tmp_path / "colour.png"
    Image.fromarray(np.full((28, 28, 3), [255, 0, 0], np.uint8)).save(colour)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    search = ["search", "--index", out, "--model", folders / "model.keras", "--query"]
    cases = [
        ([strip], r"strip\.png is 100x28 .*too far from the network's 28x28 shape.*Crop it"),
        ([colour], r"colour\.png is a colour image.*pass --convert"),
        ([tmp_path / "none.png"], r"No such image file: .*none\.png"),
        ([empty], r"Cannot read the image .*empty\.png.* Replace or delete the file"),
        ([strip, folders / "queries"], r"queries is a folder among several paths"),
    ]
    for query, message in cases:
        code, _, err = run(index_cli, [*search, *query], capsys)
        assert re.search(message, one_error(code, err)), err
    other = ["search", "--index", out, "--model", OMNIGLOT_MODEL, "--query", strip]
    code, _, err = run(index_cli, other, capsys)
    line = one_error(code, err)
    assert f"{out}: The query model" in line and "is not the model this index was built" in line
    code, _, err = run(index_cli, ["evaluate", "--index", strip], capsys)
    assert re.search(r"strip\.png is a binary file .*not an index", one_error(code, err))


# ------------------------------------------------------------------------------ verify


def test_verify_calibrate_then_check_pairs(folders, capsys):
    model = folders / "model.keras"
    verifier = folders / "model.verify.json"
    argv = ["calibrate", "--model", model, "--images", folders / "gallery", "--far", 0.01]
    code, text, _ = run(verify_cli, [*argv, "--quiet"], capsys)
    assert code == 0 and verifier.is_file() and f"verifier -> {verifier}" in text
    record = json.loads(verifier.read_text())
    assert record["calibration"]["far"] <= 0.01
    assert record["calibration"]["same_pairs"] == 10 * 66  # all pairs of 12 per class
    code, _, err = run(verify_cli, [*argv, "--quiet"], capsys)
    assert "already exists; pass --overwrite" in one_error(code, err)
    # 120 images give 6,480 different-class pairs: too few to measure a FAR of 1e-4, which a
    # warning says even with --quiet
    strict = [*argv[:-1], 1e-4, "--out", folders / "strict.verify.json", "--quiet"]
    code, _, err = run(verify_cli, strict, capsys)
    assert code == 0
    assert (
        "warning: 6480 different-class pairs cannot measure a FAR of 0.0001 (it needs at "
        "least 10000)" in err
    ), err

    zero = sorted((folders / "queries" / "zero").glob("*.png"))
    one = sorted((folders / "queries" / "one").glob("*.png"))
    code, text, _ = run(verify_cli, ["--model", model, zero[0], zero[0]], capsys)
    assert code == 0 and text.startswith("same (distance 0 <= threshold")
    code, text, _ = run(verify_cli, ["check", "--model", model, zero[0], one[0]], capsys)
    assert code == 0 and text.startswith("different (distance")
    distance, threshold = map(float, re.findall(r"[0-9.]+(?:e-?\d+)?", text)[:2])
    assert distance > threshold == pytest.approx(record["threshold"], rel=1e-5)

    other = ["--model", OMNIGLOT_MODEL, "--verifier", verifier, zero[0], one[0]]
    code, _, err = run(verify_cli, other, capsys)
    assert "is not the model this verifier was built with" in one_error(code, err)
    code, _, err = run(verify_cli, ["--model", OMNIGLOT_MODEL, zero[0], one[0]], capsys)
    assert "Calibrate one first" in one_error(code, err)


# ------------------------------------------------------------------------------ the other tasks


def test_identify_novelty_and_cluster_print_their_metrics(folders, tmp_path, capsys):
    model = folders / "model.keras"
    task = ["--model", model, "--gallery", folders / "enrol", "--queries", folders / "queries"]
    code, text, _ = run(identify_cli, [*task, "--far", 0.1, "--quiet"], capsys)
    assert code == 0
    assert float(re.search(r"rank-1 ([0-9.]+) \(20 queries of known", text).group(1)) >= 0.8
    dir_, fpir = map(float, re.search(r"DIR ([0-9.]+) at FAR 0.1 .*FPIR ([0-9.]+)", text).groups())
    assert 0.0 <= dir_ <= 1.0 and 0.0 <= fpir <= 1.0

    code, text, _ = run(novelty_cli, [*task, "--quiet"], capsys)
    assert code == 0
    assert (
        float(re.search(r"novelty AUROC ([0-9.]+) \(20 queries of 5 unseen", text).group(1)) > 0.8
    )

    files = sorted((folders / "queries" / "three").glob("*.png"))[:2]
    argv = ["--model", model, "--gallery", folders / "enrol", "--queries", *files]
    code, text, _ = run(identify_cli, [*argv, "--threshold", 1e-9, "--quiet"], capsys)
    assert code == 0 and [line.split()[1] for line in text.splitlines()] == ["unknown"] * 2

    out = tmp_path / "clusters.csv"
    argv = ["--model", model, "--images", folders / "gallery", "--out", out, "--quiet"]
    code, text, _ = run(cluster_cli, argv, capsys)
    assert code == 0
    for method in ("kmeans", "agglomerative \\(ward\\)"):
        nmi = re.search(method + r", 10 clusters of 120 images: NMI ([0-9.]+)", text).group(1)
        assert float(nmi) > 0.7
    rows = out.read_text().splitlines()
    assert rows[0] == "file,class,kmeans,agglomerative" and len(rows) == 121

    code, _, err = run(cluster_cli, ["--model", model, "--images", *files], capsys)
    assert "--clusters is needed for image files" in one_error(code, err)
    missing = ["--model", model, "--images", folders / "no-such-folder", "--clusters", 0]
    code, _, err = run(cluster_cli, missing, capsys)  # refused before the model is loaded
    assert "--clusters must be at least 2. Received: --clusters 0" in one_error(code, err)
    code, _, err = run(cluster_cli, missing[:-1] + [3], capsys)
    assert re.search(r"No such folder or image file: .*no-such-folder", one_error(code, err))
    code, _, err = run(
        novelty_cli, ["--model", model, "--gallery", out, "--queries", *files], capsys
    )
    assert "not an index" in one_error(code, err)


def test_every_command_lists_its_options(capsys):
    for cli, argv, options in [
        (index_cli, ["build", "--help"], ["--model", "--images", "--out", "--overwrite"]),
        (index_cli, ["search", "--help"], ["--index", "--query", "--top", "--plot"]),
        (index_cli, ["--help"], ["build", "search", "evaluate"]),
        (verify_cli, ["--help"], ["calibrate", "--model", "--verifier", "IMG"]),
        (verify_cli, ["calibrate", "--help"], ["--images", "--far", "--out"]),
        (identify_cli, ["--help"], ["--gallery", "--queries", "--far", "--threshold"]),
        (cluster_cli, ["--help"], ["--method", "--clusters", "--linkage", "--out"]),
        (novelty_cli, ["--help"], ["--gallery", "--queries", "--convert", "--debug"]),
    ]:
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        assert stop.value.code == 0
        out = capsys.readouterr().out
        assert all(option in out for option in options), (argv, out)


def test_module_entry_point_prints_one_error_line(folders, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [
        sys.executable,
        "-m",
        "oneshot.index",
        "build",
        "--model",
        str(folders / "model.keras"),
    ]
    cmd += ["--images", str(empty), "--out", str(tmp_path / "x.npz")]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {empty} holds no images")
    assert not (tmp_path / "x.npz").exists()
