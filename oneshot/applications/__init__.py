"""Applications: a trained embedding network used on a user's images (the layer after
evaluation), each task with its standard metric.

- ``EmbeddingIndex``: gallery embeddings with labels and item ids, k-NN search (exact, chunked;
  or FAISS), saved to one file with the model's identity and the distance.
- ``ModelIdentity`` / ``model_fingerprint``: which network made a set of embeddings, so that
  embeddings of another model are refused.
- ``read_image_files`` / ``read_image_folder`` / ``embed_images``: a user's files fitted to a
  network's input (resized by area, colour checked), then embedded with a progress bar.
- The tasks, one module each: search (``search_quality``: precision@k, MAP@R; ``plot_hits``),
  verification (``calibrate_threshold``, ``Verifier``: a threshold at a false-accept rate),
  identification (``identify``: rank-1; ``open_set``: DIR at a FAR), clustering (``cluster``:
  k-means / agglomerative, NMI and AMI), novelty detection (``novelty``: AUROC).

Command lines: ``python -m oneshot.index``, ``oneshot.cli.verify``, ``oneshot.cli.identify``,
``oneshot.cli.cluster``, ``oneshot.cli.novelty`` (each with ``--help``).
"""

from oneshot.applications.cluster import ClusteringResult, cluster
from oneshot.applications.exact import exact_search, smallest_k
from oneshot.applications.faiss_backend import FAISS_INDEXES, FAISS_PARAMS
from oneshot.applications.files import OutputFileError, atomic_write
from oneshot.applications.identify import (
    Identification,
    OpenSetResult,
    calibrate_reject_threshold,
    identify,
    open_set,
)
from oneshot.applications.index import BACKENDS, EmbeddingIndex
from oneshot.applications.inputs import (
    ModelImages,
    embed_images,
    read_image_files,
    read_image_folder,
    scorer_for,
)
from oneshot.applications.items import SearchResult
from oneshot.applications.novelty import NoveltyResult, novelty, novelty_scores
from oneshot.applications.search import SearchQuality, plot_hits, search_quality
from oneshot.applications.splits import class_split, enrolment_split
from oneshot.applications.storage import IndexFileError
from oneshot.applications.verify import (
    Calibration,
    Verifier,
    VerifierFileError,
    VerifyResult,
    calibrate_threshold,
    verifier_path,
)
from oneshot.models.identity import ModelIdentity, embedding_network, model_fingerprint

__all__ = [
    "BACKENDS",
    "FAISS_INDEXES",
    "FAISS_PARAMS",
    "Calibration",
    "ClusteringResult",
    "EmbeddingIndex",
    "Identification",
    "IndexFileError",
    "ModelIdentity",
    "ModelImages",
    "NoveltyResult",
    "OpenSetResult",
    "OutputFileError",
    "SearchQuality",
    "SearchResult",
    "Verifier",
    "VerifierFileError",
    "VerifyResult",
    "atomic_write",
    "calibrate_reject_threshold",
    "calibrate_threshold",
    "class_split",
    "cluster",
    "embed_images",
    "embedding_network",
    "enrolment_split",
    "exact_search",
    "identify",
    "model_fingerprint",
    "novelty",
    "novelty_scores",
    "open_set",
    "plot_hits",
    "read_image_files",
    "read_image_folder",
    "scorer_for",
    "search_quality",
    "smallest_k",
    "verifier_path",
]
