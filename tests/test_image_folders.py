"""Your own data in: real MNIST digits and Omniglot drawings written to folders of PNG/JPEG
files (flat and grouped, grey and colour, several sizes) and read back by ``load_image_folder``;
arrays through ``from_arrays``; every bad input refused with a message naming the file or
the argument."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oneshot.data import (
    DataError,
    LabelledImages,
    OmniglotSet,
    folders,
    from_arrays,
    load_image_folder,
    load_mnist,
    load_omniglot,
    resize_area,
    to_grayscale,
    to_model_input,
)

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@pytest.fixture(scope="module")
def digits(data_dir):
    """Five real test digits of each of 0, 3, 7 (uint8 (15, 28, 28)) and their labels."""
    data = load_mnist("test", data_dir=data_dir)
    picks = np.concatenate([np.flatnonzero(data.labels == d)[:5] for d in (0, 3, 7)])
    return data.images[picks], data.labels[picks]


@pytest.fixture(scope="module")
def drawings(data_dir):
    """Four drawings of each of the first 3 characters of 2 real Omniglot evaluation alphabets
    (105x105, bright strokes), with their character and alphabet names."""
    data = load_omniglot("evaluation", data_dir=data_dir)
    picks = []
    for alphabet in range(2):
        chars = np.unique(data.labels[data.alphabets == alphabet])[:3]
        picks += [np.flatnonzero(data.labels == c)[:4] for c in chars]
    picks = np.concatenate(picks)
    names = [data.character_names[c] for c in data.labels[picks]]
    return data.images[picks], names, picks


def write(root: Path, images, relpaths, mode: str | None = None) -> None:
    """Write each image to ``root / relpath`` (format from the extension), converted to
    ``mode`` if given (e.g. "1": 1-bit, like the Omniglot files)."""
    for image, rel in zip(images, relpaths, strict=True):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(image)
        if mode:
            picture = picture.convert(mode, dither=Image.Dither.NONE)
        picture.save(path)


def digit_paths(labels, ext=".png") -> list[str]:
    return [f"{DIGIT_NAMES[y]}/img{i:02d}{ext}" for i, y in enumerate(labels)]


# ---------------------------------------------------------------- reading folders


def test_flat_folder_round_trips_png_pixels_and_keeps_class_names(digits, tmp_path):
    images, labels = digits
    write(tmp_path, images, digit_paths(labels))
    (tmp_path / "seven" / "notes.txt").write_text("not an image")
    (tmp_path / "seven" / ".DS_Store").write_bytes(b"\0\1")
    (tmp_path / ".hidden").mkdir()
    data = load_image_folder(tmp_path)
    assert type(data) is LabelledImages
    assert data.class_names == ["seven", "three", "zero"]  # sorted folder names
    assert data.images.dtype == np.uint8 and data.images.shape == (15, 28, 28)
    assert data.labels.dtype == np.int32
    # files in (class, name) order; pixels and classes exactly those written
    order = [int(Path(f).stem[3:]) for f in data.files]
    assert data.files[0] == "seven/img10.png"
    np.testing.assert_array_equal(data.images, images[order])
    names = [data.class_names[y] for y in data.labels]
    assert names == [DIGIT_NAMES[y] for y in labels[order]]
    assert list(data.label_names) == names  # each image's class name, as the index takes it


def test_grouped_folder_is_detected_and_gives_groups_like_omniglot(drawings, tmp_path):
    images, names, picks = drawings
    # raw Omniglot polarity (dark strokes on white), one character as 1-bit PNGs
    paths = [f"{n}/{i:02d}.png" for i, n in enumerate(names)]
    write(tmp_path, 255 - images[4:], paths[4:])
    write(tmp_path, 255 - images[:4], paths[:4], mode="1")
    assert Image.open(tmp_path / paths[0]).mode == "1"
    data = load_image_folder(tmp_path, invert=True)
    assert isinstance(data, OmniglotSet)
    np.testing.assert_array_equal(data.images, images)  # bright strokes again
    assert data.character_names == sorted(set(names))
    assert data.class_names == data.character_names
    assert [data.character_names[y] for y in data.labels] == names
    assert data.alphabet_names == sorted({n.split("/")[0] for n in names})
    assert [data.alphabet_names[a] for a in data.alphabets] == [n.split("/")[0] for n in names]
    assert np.all(data.drawers == -1)
    assert isinstance(load_image_folder(tmp_path, groups=True), OmniglotSet)
    with pytest.raises(DataError, match=r"`groups`.*grouped.*groups=True"):
        load_image_folder(tmp_path, groups=False)


def test_resize_is_the_area_averaging_of_the_built_in_sets(drawings, data_dir, tmp_path):
    images, names, picks = drawings
    small = resize_area(images[::2], 52)  # half the drawings written at another size
    write(tmp_path, images[1::2], [f"{n}/{i:02d}.png" for i, n in enumerate(names)][1::2])
    write(tmp_path, small, [f"{n}/{i:02d}.png" for i, n in enumerate(names)][::2])
    data = load_image_folder(tmp_path, image_size=28)
    want = np.empty((len(images), 28, 28), np.uint8)
    want[1::2], want[::2] = resize_area(images[1::2], 28), resize_area(small, 28)
    np.testing.assert_array_equal(data.images, want)
    # at one native size it is exactly the built-in set's own resized variant
    full = tmp_path / "full"
    write(full, images, [f"{n}/{i:02d}.png" for i, n in enumerate(names)])
    builtin = load_omniglot("evaluation", image_size=28, data_dir=data_dir).images[picks]
    np.testing.assert_array_equal(load_image_folder(full, image_size=28).images, builtin)
    rect = load_image_folder(full, image_size=(20, 30)).images
    np.testing.assert_array_equal(rect, resize_area(images, (20, 30)))


def test_colour_folder_keeps_three_channels_or_converts(digits, tmp_path):
    images, labels = digits
    rgb = np.stack([images, images // 2, 255 - images], axis=-1)
    write(tmp_path / "rgb", rgb, digit_paths(labels))
    data = load_image_folder(tmp_path / "rgb")
    assert data.images.shape == (15, 28, 28, 3)
    order = [int(Path(f).stem[3:]) for f in data.files]
    np.testing.assert_array_equal(data.images, rgb[order])
    grey = load_image_folder(tmp_path / "rgb", channels=1).images
    np.testing.assert_array_equal(grey, to_grayscale(rgb[order]))
    # grey files as 3 channels; to_model_input keeps the 3 channels
    write(tmp_path / "grey", images, digit_paths(labels))
    three = load_image_folder(tmp_path / "grey", channels=3).images
    np.testing.assert_array_equal(three, np.repeat(images[order][..., None], 3, axis=-1))
    assert to_model_input(three).shape == (15, 28, 28, 3)
    # grey pictures saved as RGB convert back exactly
    write(tmp_path / "as_rgb", np.repeat(images[..., None], 3, -1), digit_paths(labels))
    back = load_image_folder(tmp_path / "as_rgb", channels=1).images
    np.testing.assert_array_equal(back, images[order])


def test_colour_resize_is_the_grey_resize_of_each_channel(digits, tmp_path):
    images, labels = digits
    rgb = np.stack([images, images // 2, 255 - images], axis=-1)
    got = resize_area(rgb, (14, 21))
    assert got.shape == (15, 14, 21, 3) and got.flags.c_contiguous
    for c in range(3):
        np.testing.assert_array_equal(got[..., c], resize_area(rgb[..., c], (14, 21)))
    np.testing.assert_array_equal(resize_area(images, 14), resize_area(images, (14, 14)))
    write(tmp_path, rgb, digit_paths(labels))
    data = load_image_folder(tmp_path, image_size=14)
    order = [int(Path(f).stem[3:]) for f in data.files]
    np.testing.assert_array_equal(data.images, resize_area(rgb[order], 14))


def test_jpeg_files_with_any_case_extension(digits, tmp_path):
    images, labels = digits
    paths = [
        p.replace(".png", ".jpg" if i % 2 else ".JPEG") for i, p in enumerate(digit_paths(labels))
    ]
    write(tmp_path, images, paths)
    data = load_image_folder(tmp_path)
    order = [int(Path(f).stem[3:]) for f in data.files]
    assert len(data) == 15
    error = np.abs(data.images.astype(int) - images[order]).mean()
    assert error < 4  # lossy, but the same digits


def test_progress_bar_only_when_reading_is_slow(digits, tmp_path, monkeypatch, capsys):
    images, labels = digits
    write(tmp_path, images, digit_paths(labels))
    load_image_folder(tmp_path)
    quick = capsys.readouterr()
    assert quick.out == "" and quick.err == ""
    monkeypatch.setattr(folders, "PROGRESS_AFTER", -1.0)
    load_image_folder(tmp_path)
    slow = capsys.readouterr()
    assert "15/15" in slow.out and "Reading 15 images" in slow.err
    load_image_folder(tmp_path, verbose=False)
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------- bad folders


def test_missing_path_and_file_path(tmp_path):
    with pytest.raises(DataError, match=r"`path`.*nowhere.*does not exist"):
        load_image_folder(tmp_path / "nowhere")
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"`path`.*a\.png.*is a file"):
        load_image_folder(tmp_path / "a.png")


@pytest.mark.parametrize(
    "content", [b"this is not a png", "truncated"], ids=["not-an-image", "truncated"]
)
def test_unreadable_image_is_named(digits, tmp_path, content):
    images, labels = digits
    write(tmp_path, images, digit_paths(labels))
    bad = tmp_path / "three" / "broken.png"
    if content == "truncated":
        good = (tmp_path / digit_paths(labels)[5]).read_bytes()
        content = good[: len(good) // 2]
    bad.write_bytes(content)
    with pytest.raises(DataError, match=r"Cannot read the image .*three/broken\.png.*Replace"):
        load_image_folder(tmp_path)


def test_sixteen_bit_image_is_named(digits, tmp_path):
    images, labels = digits
    write(tmp_path, images, digit_paths(labels))
    Image.fromarray(images[0].astype(np.uint16) * 257).save(tmp_path / "zero" / "deep.png")
    with pytest.raises(DataError, match=r"zero/deep\.png: its mode 'I(;16)?' is not 8 bits.*8-bit"):
        load_image_folder(tmp_path)


def test_empty_class_folder_is_named(digits, tmp_path):
    images, labels = digits
    write(tmp_path, images, digit_paths(labels))
    (tmp_path / "nine").mkdir()
    (tmp_path / "nine" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"Class folder .*nine holds no images"):
        load_image_folder(tmp_path)


def test_one_class_cannot_train_metric_learning(digits, tmp_path):
    images, labels = digits
    write(tmp_path, images[labels == 3], [f"three/{i}.png" for i in range(5)])
    with pytest.raises(DataError, match=r"one class \('three'\).*at least two class folders"):
        load_image_folder(tmp_path)


def test_mixed_sizes_need_image_size(digits, tmp_path):
    images, labels = digits
    write(tmp_path, images, digit_paths(labels))
    write(tmp_path, resize_area(images[:1], 20), ["zero/small.png"])
    with pytest.raises(DataError, match=r"differ in size .*small\.png is 20x20.*image_size="):
        load_image_folder(tmp_path)
    assert load_image_folder(tmp_path, image_size=28).images.shape == (16, 28, 28)


def test_mixed_grey_and_colour_need_channels(digits, tmp_path):
    images, labels = digits
    write(tmp_path, images, digit_paths(labels))
    write(tmp_path, np.repeat(images[:1, ..., None], 3, -1), ["zero/colour.png"])
    with pytest.raises(DataError, match=r"mixes grey and colour .*colour\.png.*channels=1"):
        load_image_folder(tmp_path)
    assert load_image_folder(tmp_path, channels=1).images.shape == (16, 28, 28)
    assert load_image_folder(tmp_path, channels=3).images.shape == (16, 28, 28, 3)


def test_layouts_that_fit_no_rule(digits, tmp_path):
    images, labels = digits
    write(tmp_path / "loose", images[:2], ["a.png", "b.png"])
    with pytest.raises(DataError, match=r"holds images directly \(e\.g\. a\.png\).*sub-folder"):
        load_image_folder(tmp_path / "loose")
    write(tmp_path / "mixed", images[:3], ["zero/a.png", "group/three/b.png", "group/seven/c.png"])
    with pytest.raises(DataError, match=r"depths \[1, 2\].*same depth"):
        load_image_folder(tmp_path / "mixed")
    write(tmp_path / "deep", images[:2], ["x/a/zero/a.png", "x/a/three/b.png"])
    with pytest.raises(DataError, match=r"3 folders deep \(e\.g\. x/a/three/b\.png\).*`path`"):
        load_image_folder(tmp_path / "deep")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty holds no images"):
        load_image_folder(tmp_path / "empty")


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"image_size": 0}, "image_size"),
        ({"image_size": (28, 28, 1)}, "image_size"),
        ({"channels": 2}, "channels"),
        ({"groups": "yes"}, "groups"),
        ({"invert": 1}, "invert"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, argument):
    with pytest.raises(ValueError, match=rf"Invalid value for argument `{argument}`"):
        load_image_folder(tmp_path, **kwargs)


# ---------------------------------------------------------------- arrays


def test_from_arrays_states_the_pixel_scale(digits):
    images, labels = digits
    as_255 = images.astype(np.float32)
    with pytest.raises(ValueError, match=r"`images`.*values in \[0, 255\].*value_range=\(0, 255\)"):
        from_arrays(as_255, labels)
    np.testing.assert_array_equal(from_arrays(as_255, labels, value_range=(0, 255)).images, images)
    np.testing.assert_array_equal(from_arrays(images / 255.0, labels).images, images)
    np.testing.assert_array_equal(from_arrays(images, labels).images, images)
    with pytest.raises(ValueError, match=r"int64 pixels need their scale.*value_range"):
        from_arrays(images.astype(np.int64), labels)
    with pytest.raises(ValueError, match=r"`value_range`.*Received: value_range=\(0, 1\)"):
        from_arrays(as_255, labels, value_range=(0, 1))
    with pytest.raises(ValueError, match=r"`value_range`"):
        from_arrays(as_255, labels, value_range=(255, 0))


def test_from_arrays_labels(digits):
    images, labels = digits
    words = np.array([DIGIT_NAMES[y] for y in labels])
    data = from_arrays(images, words[:, None])  # (N, 1) is flattened
    assert data.class_names == ["seven", "three", "zero"]
    assert [data.class_names[y] for y in data.labels] == list(words)
    ints = from_arrays(images, labels)
    assert ints.class_names is None and np.array_equal(ints.labels, labels)
    with pytest.raises(ValueError, match=r"`labels`. Expected 15 labels.*Received 14"):
        from_arrays(images, labels[1:])
    with pytest.raises(ValueError, match=r"`labels`. Expected a 1-D array"):
        from_arrays(images, np.stack([labels, labels], 1))
    with pytest.raises(ValueError, match=r"`labels`. Expected at least two classes"):
        from_arrays(images, np.zeros(15, int))
    with pytest.raises(ValueError, match=r"`images`"):
        from_arrays(images[..., None].repeat(2, -1), labels)


def test_to_model_input_refuses_unscaled_floats(digits):
    images, _ = digits
    with pytest.raises(ValueError, match=r"`images`.*\[0, 255\]: divide them by 255"):
        to_model_input(images.astype(np.float32))
    with pytest.raises(ValueError, match=r"NaN"):
        to_model_input(np.full((1, 4, 4), np.nan))
    np.testing.assert_allclose(to_model_input(images / 255.0), to_model_input(images), atol=1e-6)
    rgb = np.stack([images] * 3, -1)
    assert to_model_input(rgb).shape == (15, 28, 28, 3)
