"""The names of the choices the library and its command lines share: distances, evaluation
protocols, clustering methods and linkages, the pretrained starts that ship with the package.

Plain strings in a module that imports nothing heavy, so that a command line lists and checks
them in ``--help`` and argument errors before TensorFlow is imported; the library modules that
implement them import the names from here.
"""

from __future__ import annotations

from collections.abc import Sequence

DISTANCES = ("euclidean", "squared_euclidean", "l1", "cosine")  # oneshot.distances.DISTANCES
PROTOCOLS = ("nway", "lake", "verification", "cmc", "retrieval")  # oneshot.evaluation.report
CLUSTER_METHODS = ("kmeans", "agglomerative")  # oneshot.applications.cluster
LINKAGES = ("ward", "average", "complete", "single")
SHIPPED_STARTS = ("omniglot", "mnist")  # oneshot.models.starts.STARTS
RANDOM_START = "random"  # the run's network with its seed's random weights
AUTO_START = "auto"  # score every start on the held-out classes and take the best


def check_protocols(protocols: Sequence[str] | str) -> list[str]:
    """Expand "all" and validate protocol names (ValueError naming the known ones)."""
    names = [protocols] if isinstance(protocols, str) else list(protocols)
    if "all" in names:
        return list(PROTOCOLS)
    unknown = [p for p in names if p not in PROTOCOLS]
    if unknown or not names:
        raise ValueError(
            f"Invalid value for argument `protocols`. Expected some of {PROTOCOLS + ('all',)}. "
            f"Received: protocols={names!r}"
        )
    return names
