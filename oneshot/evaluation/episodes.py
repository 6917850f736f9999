"""N-way K-shot one-shot classification over many seeded episodes.

An episode picks ``n_way`` classes, ``k_shot`` support images and ``queries_per_class`` query
images per class (queries never among the supports). Each query is classified to the class with
the smallest distance (mean distance to its K supports, or distance to the class prototype, the
mean support embedding). Images are embedded once by the caller; episodes only gather rows and
score pairs, so 1,000 episodes cost one vectorised distance call.

Omniglot protocols differ a lot: ``within_alphabet=True`` draws all N classes from one alphabet
(Lake's task), ``False`` draws them from any alphabet ("unstructured", easier). Every result
carries a ``protocol`` dict saying which one it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oneshot.checks import check_embeddings
from oneshot.data.labels import check_labels
from oneshot.evaluation.scoring import Scorer

K_SHOT_RULES = ("mean_distance", "prototype")
_CHUNK_ELEMENTS = 1 << 22  # bound on the size of temporary random-key arrays
_PAIR_CHUNK = 1 << 18  # pairs per distance call


@dataclass(frozen=True)
class Episodes:
    """Indices of the images of a batch of episodes.

    Attributes:
        support: int (E, N, K) dataset indices of the support images; class c of episode e is
            ``support[e, c]``.
        query: int (E, N, Q) dataset indices of the queries; ``query[e, c]`` belong to class c.
        classes: (E, N) dataset labels of the classes of each episode.
        protocol: how the episodes were drawn.
    """

    support: np.ndarray
    query: np.ndarray
    classes: np.ndarray
    protocol: dict[str, Any]


@dataclass(frozen=True)
class OneShotResult:
    """Accuracy over episodes with a 95% confidence interval (normal approximation)."""

    accuracy: float
    ci95: float
    episode_accuracies: np.ndarray = field(repr=False)
    protocol: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (no per-episode values)."""
        return {"accuracy": self.accuracy, "ci95": self.ci95, "protocol": dict(self.protocol)}


def mean_ci95(values: np.ndarray) -> tuple[float, float]:
    """Mean and half-width of its 95% confidence interval (1.96 standard errors)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return float(values.mean()) if values.size else float("nan"), float("nan")
    return float(values.mean()), float(1.96 * values.std(ddof=1) / np.sqrt(values.size))


def _positive_int(name: str, value: int) -> int:
    if int(value) != value or value < 1:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected an integer >= 1. Received: {name}={value!r}"
        )
    return int(value)


def _pick(rng: np.random.Generator, valid: np.ndarray, k: int) -> np.ndarray:
    """For each row of a boolean mask, ``k`` distinct valid columns in random order (rows, k)."""
    out = np.empty((valid.shape[0], k), dtype=np.int64)
    rows = max(1, _CHUNK_ELEMENTS // max(valid.shape[1], 1))
    for start in range(0, valid.shape[0], rows):
        block = valid[start : start + rows]
        keys = rng.random(block.shape)
        keys[~block] = np.inf
        chosen = np.argpartition(keys, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(keys, chosen, axis=1), axis=1)
        out[start : start + rows] = np.take_along_axis(chosen, order, axis=1)
    return out


def class_table(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group dataset indices by class.

    Returns:
        ``(classes (C,), counts (C,), table (C, max_count))``: ``table[c, :counts[c]]`` are the
        indices of the images of ``classes[c]``; the rest is -1.
    """
    labels = check_labels(labels)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(labels)) - starts[inverse[order]]
    table = np.full((len(classes), counts.max(initial=0)), -1, dtype=np.int64)
    table[inverse[order], position] = order
    return classes, counts, table


def sample_episodes(
    labels: np.ndarray,
    n_way: int,
    k_shot: int = 1,
    queries_per_class: int = 1,
    episodes: int = 1000,
    alphabets: np.ndarray | None = None,
    within_alphabet: bool = False,
    seed: int = 0,
) -> Episodes:
    """Draw N-way K-shot episodes (vectorised, reproducible from ``seed``).

    Args:
        labels: (M,) class label of every image, ints or strings ((M, 1) is flattened).
        n_way: classes per episode.
        k_shot: support images per class. Defaults to 1.
        queries_per_class: query images per class, distinct from the supports. Defaults to 1.
        episodes: number of episodes. Defaults to 1000.
        alphabets: optional (M,) group (alphabet) of every image; needed for ``within_alphabet``.
        within_alphabet: draw all classes of an episode from one alphabet (chosen uniformly among
            alphabets with at least ``n_way`` usable classes). Defaults to False.
        seed: random seed. Defaults to 0.

    Returns:
        An :class:`Episodes`.
    """
    n_way, k_shot = _positive_int("n_way", n_way), _positive_int("k_shot", k_shot)
    queries_per_class = _positive_int("queries_per_class", queries_per_class)
    episodes = _positive_int("episodes", episodes)
    labels = check_labels(labels)
    rng = np.random.default_rng(seed)
    classes, counts, table = class_table(labels)
    per_class = k_shot + queries_per_class
    usable = counts >= per_class
    if within_alphabet:
        if alphabets is None or len(alphabets) != len(labels):
            raise ValueError(
                "Argument `alphabets` must give the alphabet of every image when "
                f"within_alphabet=True. Received: {None if alphabets is None else len(alphabets)} "
                f"values for {len(labels)} labels."
            )
        alphabets = check_labels(alphabets, len(labels), "alphabets")
        class_group = alphabets[table[:, 0]]
        if np.any(alphabets[table[table >= 0]] != np.repeat(class_group, counts)):
            raise ValueError("Argument `alphabets`: every class must belong to a single alphabet.")
        groups, usable_per_group = np.unique(class_group[usable], return_counts=True)
        groups = groups[usable_per_group >= n_way]
        if len(groups) == 0:
            raise ValueError(
                f"No alphabet has {n_way} classes with {per_class} images each; lower `n_way`, "
                "`k_shot` or `queries_per_class`, or use within_alphabet=False."
            )
        chosen_group = groups[rng.integers(len(groups), size=episodes)]
        valid = usable[None, :] & (class_group[None, :] == chosen_group[:, None])
    else:
        if usable.sum() < n_way:
            raise ValueError(
                f"Invalid value for argument `n_way`: only {int(usable.sum())} classes have "
                f"{per_class} images (k_shot + queries_per_class). Received: n_way={n_way}."
            )
        valid = np.broadcast_to(usable, (episodes, len(classes)))
    episode_classes = _pick(rng, valid, n_way)  # (E, N) rows of the class table
    flat = episode_classes.reshape(-1)
    in_class = np.arange(table.shape[1])[None, :] < counts[flat][:, None]
    positions = _pick(rng, in_class, per_class)  # (E*N, K+Q)
    images = table[flat[:, None], positions].reshape(episodes, n_way, per_class)
    protocol = {
        "task": f"{n_way}-way {k_shot}-shot",
        "n_way": n_way,
        "k_shot": k_shot,
        "queries_per_class": queries_per_class,
        "episodes": episodes,
        "within_alphabet": bool(within_alphabet),
        "seed": seed,
    }
    return Episodes(
        support=images[:, :, :k_shot],
        query=images[:, :, k_shot:],
        classes=classes[episode_classes],
        protocol=protocol,
    )


def distances_by_index(
    scorer: Scorer, embeddings: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """Scorer distances between ``embeddings[a[i]]`` and ``embeddings[b[i]]`` for every i.

    Works for fixed distances and learned metrics alike; pairs go through the scorer in chunks.
    """
    a, b = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
    out = np.empty(len(a), dtype=np.float64)
    for start in range(0, len(a), _PAIR_CHUNK):
        stop = start + _PAIR_CHUNK
        out[start:stop] = scorer.paired(embeddings[a[start:stop]], embeddings[b[start:stop]])
    return out


def episode_distances(
    scorer: Scorer,
    embeddings: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    embeddings_b: np.ndarray | None = None,
) -> np.ndarray:
    """Distances (E, A, B) between ``embeddings[a[e]]`` and ``embeddings_b[b[e]]`` per episode.

    Fixed distances: one ``pairwise`` call per group of episodes (a small matrix whose diagonal
    blocks are kept; matrix products are far cheaper than gathering every pair). Learned
    metrics: exactly the needed pairs through ``paired``.
    """
    embeddings_b = embeddings if embeddings_b is None else embeddings_b
    n_episodes, na = a.shape
    nb = b.shape[1]
    if scorer.uses_learned_metric:
        pa = np.broadcast_to(a[:, :, None], (n_episodes, na, nb)).reshape(-1)
        pb = np.broadcast_to(b[:, None, :], (n_episodes, na, nb)).reshape(-1)
        out = np.empty(pa.size, dtype=np.float64)
        for start in range(0, pa.size, _PAIR_CHUNK):
            stop = start + _PAIR_CHUNK
            out[start:stop] = scorer.paired(
                embeddings[pa[start:stop]], embeddings_b[pb[start:stop]]
            )
        return out.reshape(n_episodes, na, nb)
    group = max(1, int(np.sqrt(_PAIR_CHUNK / (na * nb))))
    out = np.empty((n_episodes, na, nb), dtype=np.float64)
    for start in range(0, n_episodes, group):
        ga, gb = a[start : start + group], b[start : start + group]
        g = len(ga)
        block = np.asarray(
            scorer.pairwise(embeddings[ga.reshape(-1)], embeddings_b[gb.reshape(-1)])
        )
        block = block.reshape(g, na, g, nb)
        out[start : start + g] = block[np.arange(g), :, np.arange(g), :]
    return out


def episode_accuracies(class_distances: np.ndarray, queries_per_class: int = 1) -> np.ndarray:
    """Per-episode accuracy from query-to-class distances.

    Args:
        class_distances: (E, N * Q, N) distance from every query to every class; queries are
            ordered by class (the first Q belong to class 0, ...).
        queries_per_class: Q. Defaults to 1.

    Returns:
        (E,) fraction of queries whose nearest class (first one on ties) is their own.
    """
    n_way = class_distances.shape[-1]
    truth = np.repeat(np.arange(n_way), queries_per_class)
    return (np.argmin(class_distances, axis=-1) == truth[None, :]).mean(axis=1)


def _result(
    class_distances: np.ndarray, episodes: Episodes, extra: dict[str, Any]
) -> OneShotResult:
    per_episode = episode_accuracies(class_distances, episodes.protocol["queries_per_class"])
    accuracy, ci95 = mean_ci95(per_episode)
    return OneShotResult(accuracy, ci95, per_episode, {**episodes.protocol, **extra})


def evaluate_episodes(
    scorer: Scorer,
    embeddings: np.ndarray,
    episodes: Episodes,
    k_shot_rule: str = "mean_distance",
    split: str | None = None,
) -> OneShotResult:
    """Accuracy of a scorer on given episodes, from precomputed embeddings of the whole set.

    Args:
        scorer: gives the distance between two embeddings.
        embeddings: (M, D) embeddings of every image of the dataset.
        episodes: from :func:`sample_episodes` on the same dataset.
        k_shot_rule: "mean_distance" (mean distance to the K supports) or "prototype"
            (distance to the mean support embedding). Same thing for K = 1.
            Defaults to "mean_distance".
        split: dataset split name recorded in the protocol. Defaults to None.
    """
    if k_shot_rule not in K_SHOT_RULES:
        raise ValueError(
            f"Invalid value for argument `k_shot_rule`. Expected one of {K_SHOT_RULES}. "
            f"Received: k_shot_rule={k_shot_rule!r}"
        )
    embeddings = np.asarray(check_embeddings(embeddings))
    n_episodes, n_way, k_shot = episodes.support.shape
    queries = episodes.query.reshape(n_episodes, -1)  # (E, N*Q), ordered by class
    if k_shot_rule == "prototype" and k_shot > 1:
        protos = embeddings[episodes.support].mean(axis=2).reshape(n_episodes * n_way, -1)
        proto_idx = np.arange(n_episodes * n_way).reshape(n_episodes, n_way)
        class_distances = episode_distances(scorer, embeddings, queries, proto_idx, protos)
    else:
        support = episodes.support.reshape(n_episodes, -1)
        dist = episode_distances(scorer, embeddings, queries, support)
        class_distances = dist.reshape(n_episodes, -1, n_way, k_shot).mean(axis=-1)
    return _result(class_distances, episodes, {"k_shot_rule": k_shot_rule, "split": split})


def evaluate_episodes_from_distances(
    distances: np.ndarray, episodes: Episodes, split: str | None = None
) -> OneShotResult:
    """Accuracy from a full (M, M) distance matrix (mean distance rule for K > 1)."""
    n_episodes = episodes.support.shape[0]
    queries = episodes.query.reshape(n_episodes, -1)
    dist = distances[queries[:, :, None, None], episodes.support[:, None]]  # (E, NQ, N, K)
    return _result(dist.mean(axis=-1), episodes, {"k_shot_rule": "mean_distance", "split": split})


def nway_accuracy(
    scorer: Scorer,
    embeddings: np.ndarray,
    labels: np.ndarray,
    n_way: int = 20,
    k_shot: int = 1,
    episodes: int = 1000,
    queries_per_class: int = 1,
    alphabets: np.ndarray | None = None,
    within_alphabet: bool = False,
    k_shot_rule: str = "mean_distance",
    split: str | None = None,
    seed: int = 0,
) -> OneShotResult:
    """N-way K-shot accuracy (mean and 95% CI over episodes): sample, then score.

    Example:
    >>> emb = scorer.embed(data.images)
    >>> nway_accuracy(scorer, emb, data.labels, n_way=20, alphabets=data.alphabets,
    ...               within_alphabet=True, split="evaluation").to_dict()
    """
    check_embeddings(embeddings)
    labels = check_labels(labels, len(embeddings))
    drawn = sample_episodes(
        labels, n_way, k_shot, queries_per_class, episodes, alphabets, within_alphabet, seed
    )
    return evaluate_episodes(scorer, embeddings, drawn, k_shot_rule, split)
