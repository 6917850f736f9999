"""What every figure shares: tight layout, optional PNG file, and no pyplot state left."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
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
