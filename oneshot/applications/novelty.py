"""Novelty detection: is this image of a class never enrolled?

The novelty score of a query is its distance to the nearest enrolled item, of any class (the
1-NN distance of the identification gallery, not the distance to a class mean: with one or a
few images per class a mean is barely better estimated than its items, and the nearest item
also works when a class has several modes). Larger = more novel.

The metric is the AUROC of the scores of unseen-class queries (positives) against those of
seen-class queries (negatives), ``sklearn.metrics.roc_auc_score``: the chance that an unseen
image scores higher than a seen one (0.5: no better than chance).

Usage (the command line is ``python -m oneshot.novelty``):

>>> gallery = EmbeddingIndex.for_model(model)
>>> gallery.add(embed(enrolled_images), labels=enrolled_labels)
>>> novelty(gallery, embed(seen_queries), embed(unseen_queries)).auroc
0.91
"""

from __future__ import annotations

import dataclasses

import numpy as np
from sklearn.metrics import roc_auc_score

from oneshot.applications.index import EmbeddingIndex


@dataclasses.dataclass(frozen=True)
class NoveltyResult:
    """Novelty scores of seen- and unseen-class queries, and their AUROC.

    Attributes:
        auroc: area under the ROC of unseen (positive) against seen (negative) scores.
        seen_scores: (S,) scores of queries of enrolled classes.
        unseen_scores: (U,) scores of queries of classes not enrolled.
    """

    auroc: float
    seen_scores: np.ndarray = dataclasses.field(repr=False)
    unseen_scores: np.ndarray = dataclasses.field(repr=False)


def novelty_scores(index: EmbeddingIndex, queries: np.ndarray) -> np.ndarray:
    """(Q,) distance of each query embedding to its nearest enrolled item (larger = more
    novel)."""
    if not len(index):
        raise ValueError(
            "Invalid value for argument `index`. Expected enrolled items. Received an empty index."
        )
    return index.search(queries, k=1).distances[:, 0].astype(np.float64)


def novelty(
    index: EmbeddingIndex, seen_queries: np.ndarray, unseen_queries: np.ndarray
) -> NoveltyResult:
    """AUROC of novelty scores: ``unseen_queries`` (classes not in ``index``) against
    ``seen_queries`` (enrolled classes, other images than the enrolled ones).

    Args:
        index: the enrolled items.
        seen_queries: (S, D) embeddings of seen-class queries, S >= 1.
        unseen_queries: (U, D) embeddings of unseen-class queries, U >= 1.
    """
    seen = novelty_scores(index, seen_queries)
    unseen = novelty_scores(index, unseen_queries)
    truth = np.r_[np.zeros(len(seen)), np.ones(len(unseen))]
    return NoveltyResult(float(roc_auc_score(truth, np.r_[seen, unseen])), seen, unseen)
