"""Every plot function draws and writes a non-empty PNG."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from oneshot import plots
from oneshot.evaluation import verification_from_distances

RNG = np.random.default_rng(0)
LABELS = np.repeat(np.arange(5), 8)
EMB = (np.eye(5)[LABELS] + 0.2 * RNG.normal(size=(40, 5))).astype(np.float32)
IMAGES = (RNG.random((40, 12, 12)) * 255).astype(np.uint8)


def check_png(fig, path):
    assert isinstance(fig, Figure)
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embedding_2d(tmp_path, method):
    path = tmp_path / f"{method}.png"
    check_png(plots.plot_embedding_2d(EMB, LABELS, method=method, path=path), path)


def test_embedding_2d_with_image_markers(tmp_path):
    path = tmp_path / "images.png"
    check_png(plots.plot_embedding_2d(EMB, LABELS, images=IMAGES, max_points=20, path=path), path)
    with pytest.raises(ValueError, match="method"):
        plots.plot_embedding_2d(EMB, LABELS, method="umap")


def test_projection_pca_keeps_class_separation():
    xy = plots.project_2d(EMB, "pca")
    assert xy.shape == (40, 2)
    centres = np.stack([xy[LABELS == c].mean(0) for c in range(5)])
    spread = max(np.linalg.norm(xy[LABELS == c] - centres[c], axis=1).mean() for c in range(5))
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1)[np.triu_indices(5, 1)]
    assert gaps.max() > spread  # classes are visibly apart


def test_tsne_runs_on_one_openmp_thread_and_keeps_classes_apart(monkeypatch):
    """Spinning OpenMP threads made t-SNE 60x slower on cores shared with training."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_info

    seen = []
    fit = TSNE.fit_transform

    def recording_fit(self, x, *args, **kwargs):
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp")
        return fit(self, x, *args, **kwargs)

    monkeypatch.setattr(TSNE, "fit_transform", recording_fit)
    xy = plots.project_2d(EMB, "tsne")
    assert seen and set(seen) == {1}
    centres = np.stack([xy[LABELS == c].mean(0) for c in range(5)])
    spread = max(np.linalg.norm(xy[LABELS == c] - centres[c], axis=1).mean() for c in range(5))
    assert np.linalg.norm(centres[:, None] - centres[None], axis=-1).max() > spread


def test_roc_curves(tmp_path):
    same = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    a = verification_from_distances(np.r_[RNG.random(50), RNG.random(50) + 0.5], same)
    b = verification_from_distances(RNG.random(100), same)
    path = tmp_path / "roc.png"
    fig = plots.plot_roc_curves(
        {"good": a, "random": {"fpr": b.fpr, "tpr": b.tpr}, "pair": (b.fpr, b.tpr)}, path=path
    )
    check_png(fig, path)
    assert len(fig.axes[0].get_legend().get_texts()) == 3


def test_cmc_and_accuracy_plots(tmp_path):
    path = tmp_path / "cmc.png"
    check_png(
        plots.plot_cmc_curves(
            {"a": np.linspace(0.3, 1, 10), "b": np.linspace(0.1, 1, 10)}, path=path
        ),
        path,
    )
    path = tmp_path / "nway.png"
    series = {"triplet": {5: (0.9, 0.01), 20: (0.7, 0.02)}, "quad": {5: 0.8, 20: 0.6}}
    check_png(plots.plot_accuracy_vs(series, path=path), path)
    path = tmp_path / "kshot.png"
    check_png(
        plots.plot_accuracy_vs(
            {"triplet": {1: 0.7, 5: 0.9}}, xlabel="K (shots)", chance=False, path=path
        ),
        path,
    )


def test_distance_boxplots(tmp_path):
    d = RNG.random(200)
    same = RNG.random(200) < 0.5
    path = tmp_path / "box.png"
    check_png(
        plots.plot_distance_boxplots(d, same, classes=RNG.integers(0, 10, 200), path=path), path
    )
    path = tmp_path / "box_overall.png"
    check_png(plots.plot_distance_boxplots(d, same, path=path), path)


def test_neighbour_strips(tmp_path):
    path = tmp_path / "nn.png"
    nbrs = IMAGES[:30].reshape(3, 10, 12, 12)
    fig = plots.plot_neighbour_strips(
        IMAGES[30:33],
        nbrs,
        correct=RNG.random((3, 10)) < 0.5,
        distances=RNG.random((3, 10)),
        path=path,
    )
    check_png(fig, path)
    assert len(fig.axes) == 33


def test_loss_curves(tmp_path):
    histories = {
        "triplet": {
            "epoch": [0.0, 1.0, 2.0],
            "step": [100.0, 200.0, 300.0],
            "loss": [1.0, 0.5, 0.3],
        },
        "quadruplet": {"epoch": [0.0, 1.0], "loss": [1.2, 0.9]},
    }
    path = tmp_path / "loss.png"
    fig = plots.plot_loss_curves(histories, path=path)
    check_png(fig, path)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 and list(lines[0].get_xdata()) == [100.0, 200.0, 300.0]


def test_plots_name_the_classes(tmp_path):
    """Legends and per-class axes show the class names, not the labels 0..C-1."""
    names = ["cat", "dog", "owl", "fox", "elk"]
    fig = plots.plot_embedding_2d(EMB, LABELS, class_names=names, title="t")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == names
    fig = plots.plot_distance_boxplots(RNG.random(40), LABELS % 2 == 0, classes=LABELS,
                                       class_names=names)  # fmt: skip
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == names


def test_loss_curves_show_the_held_out_accuracy_and_the_kept_step(tmp_path):
    history = {"step": [100.0, 200.0, 300.0], "loss": [1.0, 0.5, 0.3],
               "monitor_5way": [0.4, 0.7, 0.6]}  # fmt: skip
    path = tmp_path / "loss.png"
    fig = plots.plot_loss_curves({"run": history}, path=path, accuracy="monitor_5way",
                                 kept_step=200.0)  # fmt: skip
    check_png(fig, path)
    loss_axis, accuracy_axis = fig.axes
    assert list(accuracy_axis.get_lines()[0].get_ydata()) == [0.4, 0.7, 0.6]
    kept = [line for line in loss_axis.get_lines() if line.get_label() == "kept step 200"]
    assert len(kept) == 1 and list(kept[0].get_xdata()) == [200.0, 200.0]


def test_importing_plots_leaves_the_backend_alone():
    """A notebook's backend (inline, widget...) survives ``import oneshot.plots``; only the
    command lines switch to Agg."""
    import subprocess
    import sys

    code = (
        "import matplotlib; matplotlib.use('svg')\n"
        "import oneshot.plots\n"
        "print(matplotlib.get_backend())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "svg"


def pixel_at_centre(fig, ax) -> np.ndarray:
    """The RGB colour drawn at the centre of ``ax`` (the figure rendered by Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    buffer = np.asarray(canvas.buffer_rgba())
    box = ax.get_window_extent()
    row = buffer.shape[0] - int((box.y0 + box.y1) / 2)
    return buffer[row, int((box.x0 + box.x1) / 2), :3]


def test_colour_images_are_drawn_in_their_colours(tmp_path):
    """Red, green and blue squares come out red, green and blue (not grey, not swapped);
    grey images with a channel axis (N, H, W, 1) are drawn dark on white as before."""
    colours = np.zeros((3, 12, 12, 3), np.uint8)
    for i in range(3):
        colours[i, ..., i] = 255
    fig = plots.plot_images(colours, cols=3, path=tmp_path / "rgb.png")
    for i, ax in enumerate(fig.axes):
        np.testing.assert_array_equal(ax.images[0].get_array(), colours[i])
        drawn = pixel_at_centre(fig, ax)
        assert drawn[i] > 200 and np.delete(drawn, i).max() < 50, (i, drawn)
    grey = np.zeros((2, 12, 12, 1), np.uint8)
    grey[:, 4:8, 4:8] = 255  # a bright stroke in the middle, drawn black
    fig = plots.plot_images(grey, cols=2)
    assert fig.axes[0].images[0].get_array().shape == (12, 12)
    assert pixel_at_centre(fig, fig.axes[0]).max() < 50
    with pytest.raises(ValueError, match="colour \\(H, W, 3\\)"):
        plots.plot_images(np.zeros((2, 12, 12, 2), np.uint8))


def test_neighbour_strips_and_image_markers_take_colour_images(tmp_path):
    rgb = np.stack([IMAGES, IMAGES // 2, 255 - IMAGES], axis=-1)  # channels differ
    path = tmp_path / "nn_rgb.png"
    nbrs = (rgb[:30] / 255.0).reshape(3, 10, 12, 12, 3)  # floats in [0, 1] as well
    fig = plots.plot_neighbour_strips(rgb[30:33], nbrs, path=path)
    check_png(fig, path)
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), rgb[30])
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), nbrs[0, 0])
    path = tmp_path / "markers_rgb.png"
    check_png(plots.plot_embedding_2d(EMB, LABELS, images=rgb, max_points=10, path=path), path)
