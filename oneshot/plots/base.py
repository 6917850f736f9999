"""What every figure shares: tight layout, optional PNG file, no pyplot state left, and one
way to draw an image (grey or colour)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def finish(fig: Figure, path: str | Path | None) -> Figure:
    """Lay ``fig`` out, save it as a PNG at ``path`` (if given) and return it.

    The figure is closed in pyplot (its registry stays empty, so long loops do not leak), and
    the returned Figure stays usable: a notebook shows it with ``display(fig)`` or as a cell's
    last value.
    """
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    plt.close(fig)
    return fig


def image_style(image: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """One image as matplotlib draws it, and the ``imshow`` keywords for it.

    Grey images, (H, W) or (H, W, 1), are drawn dark on white (``cmap="gray_r"``: our strokes
    are bright). Colour images (H, W, 3), uint8 or floats in [0, 1], are drawn in their own
    colours, as they are.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[-1] == 3:
        return image, {}
    if image.ndim != 2:
        raise ValueError(
            "Invalid value for argument `images`. Expected grey (H, W) or (H, W, 1), or "
            f"colour (H, W, 3) images. Received an image of shape {image.shape}."
        )
    return image, {"cmap": "gray_r"}


def label_name(label: Any, class_names: Sequence[str] | None) -> str:
    """The name of class ``label`` in a legend or on an axis: ``class_names[label]``, else the
    label itself."""
    if (
        class_names is not None
        and isinstance(label, int | np.integer)
        and 0 <= label < len(class_names)
    ):
        return str(class_names[label])
    return str(label)
