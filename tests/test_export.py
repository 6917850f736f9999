"""Exporting a built-in set as PNG class folders (``oneshot.data.export``, ``python -m
oneshot.data --export``): what is written reads back identically with ``load_image_folder``."""

from __future__ import annotations

import numpy as np
import pytest

from oneshot.cli.data import main
from oneshot.data import LabelledImages, load_image_folder, load_mnist, load_omniglot
from oneshot.data.export import export_image_folder, first_per_class


def test_first_per_class_keeps_order_and_every_per_image_field(data_dir):
    omniglot = load_omniglot("evaluation", image_size=28, data_dir=data_dir)
    some = first_per_class(omniglot, 3)
    assert type(some) is type(omniglot) and len(some) == 3 * len(omniglot.character_names)
    assert np.all(np.bincount(some.labels) == 3)
    keep = np.concatenate([np.flatnonzero(omniglot.labels == c)[:3] for c in range(5)])
    first = np.flatnonzero(some.labels < 5)
    np.testing.assert_array_equal(some.images[first], omniglot.images[np.sort(keep)])
    np.testing.assert_array_equal(some.drawers[first], omniglot.drawers[np.sort(keep)])
    np.testing.assert_array_equal(some.alphabets[first], omniglot.alphabets[np.sort(keep)])
    with pytest.raises(ValueError, match="per_class"):
        first_per_class(omniglot, 0)


def test_mnist_export_reads_back_identically(tmp_path, data_dir):
    digits = first_per_class(load_mnist("test", data_dir=data_dir), 4)
    out = export_image_folder(digits, tmp_path / "digits")
    back = load_image_folder(out, verbose=False)
    assert back.class_names == [str(d) for d in range(10)] and len(back) == 40
    order = np.argsort(digits.labels, kind="stable")  # the folder is read class by class
    np.testing.assert_array_equal(back.images, digits.images[order])
    np.testing.assert_array_equal(back.label_names.astype(int), digits.labels[order])
    with pytest.raises(FileExistsError, match="already exists"):
        export_image_folder(digits, out)


def test_omniglot_export_keeps_alphabets_characters_and_drawers(tmp_path, data_dir):
    omniglot = first_per_class(load_omniglot("evaluation", image_size=28, data_dir=data_dir), 2)
    out = export_image_folder(omniglot, tmp_path / "omniglot")
    back = load_image_folder(out, verbose=False)
    assert back.alphabet_names == omniglot.alphabet_names
    assert sorted(back.class_names) == sorted(omniglot.class_names)
    first = sorted((out / omniglot.class_names[0]).glob("*.png"))
    drawers = omniglot.drawers[omniglot.labels == 0]
    assert [int(p.stem.split("_")[1]) for p in first] == sorted(drawers.tolist())


def test_an_interrupted_export_leaves_nothing(tmp_path, monkeypatch):
    from PIL import Image

    saved = []

    def save_twice_then_fail(self, path, *args, **kwargs):
        if len(saved) == 2:
            raise KeyboardInterrupt
        saved.append(path)
        return original(self, path, *args, **kwargs)

    original = Image.Image.save
    monkeypatch.setattr(Image.Image, "save", save_twice_then_fail)
    data = LabelledImages(np.zeros((4, 8, 8), np.uint8), np.array([0, 0, 1, 1]))
    with pytest.raises(KeyboardInterrupt):
        export_image_folder(data, tmp_path / "out")
    assert len(saved) == 2 and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=r"uint8 images .*float32"):
        export_image_folder(LabelledImages(data.images.astype("float32"), data.labels), tmp_path)


def test_export_command_prints_one_line_and_refuses_an_existing_folder(tmp_path, data_dir, capsys):
    argv = ["--export", str(tmp_path / "d"), "--per-class", "2", "--data-dir", str(data_dir)]
    assert main(argv) == 0
    assert (
        capsys.readouterr().out.strip() == f"{tmp_path / 'd'}: 20 images of 10 classes (mnist test)"
    )
    assert main(argv) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: {tmp_path / 'd'} already exists. Choose a new folder or delete it."
    )
    assert main([*argv[:-3], "0", "--data-dir", str(data_dir)]) == 2
    assert "--per-class must be at least 1" in capsys.readouterr().err
