"""Applications: a trained embedding network used on a user's gallery (the layer after
evaluation).

- ``EmbeddingIndex``: gallery embeddings with labels and item ids, k-NN search (exact, chunked;
  or FAISS), saved to one file with the model's identity and the distance.
- ``ModelIdentity`` / ``model_fingerprint``: which network made a set of embeddings, so that
  embeddings of another model are refused.
"""

from oneshot.applications.exact import exact_search, smallest_k
from oneshot.applications.faiss_backend import FAISS_INDEXES, FAISS_PARAMS
from oneshot.applications.identity import ModelIdentity, embedding_network, model_fingerprint
from oneshot.applications.index import BACKENDS, EmbeddingIndex, SearchResult
from oneshot.applications.storage import IndexFileError

__all__ = [
    "BACKENDS",
    "FAISS_INDEXES",
    "FAISS_PARAMS",
    "EmbeddingIndex",
    "IndexFileError",
    "ModelIdentity",
    "SearchResult",
    "embedding_network",
    "exact_search",
    "model_fingerprint",
    "smallest_k",
]
