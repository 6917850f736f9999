"""Evaluation metrics against hand-worked cases, brute-force loops and the real Lake runs."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from oneshot.evaluation import (
    cmc,
    cmc_curve_from_distances,
    evaluate_episodes,
    evaluate_episodes_from_distances,
    first_n_pairs,
    lake_errors_from_distances,
    lake_evaluate,
    lake_hausdorff_baseline,
    mean_ci95,
    modified_hausdorff,
    modified_hausdorff_matrix,
    nway_accuracy,
    retrieval_metrics,
    retrieval_metrics_from_distances,
    sample_balanced_pairs,
    sample_episodes,
    verification,
    verification_from_distances,
)
from oneshot.evaluation.lake import ink_points
from oneshot.evaluation.scoring import Scorer


def flat_scorer(shape=(4,), distance="euclidean") -> Scorer:
    """A Scorer whose embedding is the flattened input (tests pass embeddings directly)."""
    model = keras.Sequential([keras.Input(shape), keras.layers.Flatten()], name="embedding")
    return Scorer(model, distance=distance)


def toy_labels(classes=30, per_class=6, alphabets=3):
    labels = np.repeat(np.arange(classes), per_class)
    return labels, labels % alphabets


# ---------------------------------------------------------------- episodes


def test_sample_episodes_structure_and_seed():
    labels, alphabets = toy_labels()
    ep = sample_episodes(
        labels,
        5,
        k_shot=2,
        queries_per_class=3,
        episodes=200,
        alphabets=alphabets,
        within_alphabet=True,
        seed=3,
    )
    assert ep.support.shape == (200, 5, 2) and ep.query.shape == (200, 5, 3)
    both = np.concatenate([ep.support, ep.query], axis=2)  # (E, N, K+Q)
    assert np.all(labels[both] == ep.classes[:, :, None])  # every image of slot c is of class c
    assert all(
        len(np.unique(row)) == row.size for row in both.reshape(200, -1)
    )  # queries not supports
    assert all(len(np.unique(c)) == 5 for c in ep.classes)
    assert np.all(alphabets[both].reshape(200, -1) == alphabets[both][:, :1, :1].reshape(200, 1))
    again = sample_episodes(labels, 5, 2, 3, 200, alphabets, True, seed=3)
    np.testing.assert_array_equal(ep.support, again.support)
    assert ep.protocol["within_alphabet"] and ep.protocol["task"] == "5-way 2-shot"


def test_sample_episodes_unstructured_mixes_alphabets_and_covers_classes():
    labels, alphabets = toy_labels()
    ep = sample_episodes(labels, 5, episodes=300, seed=0)
    n_alpha = np.array([len(np.unique(alphabets[labels[s]])) for s in ep.support[:, :, 0]])
    assert n_alpha.max() == 3
    assert set(np.unique(ep.classes)) == set(range(30))


def test_sample_episodes_bad_input():
    labels, alphabets = toy_labels()
    with pytest.raises(ValueError, match="n_way"):
        sample_episodes(labels, 31)
    with pytest.raises(ValueError, match="alphabet"):
        sample_episodes(labels, 11, alphabets=alphabets, within_alphabet=True)
    with pytest.raises(ValueError, match="alphabets"):
        sample_episodes(labels, 5, within_alphabet=True)
    with pytest.raises(ValueError, match="k_shot"):
        sample_episodes(labels, 5, k_shot=0)


def test_perfect_embedding_gives_accuracy_one():
    labels, alphabets = toy_labels()
    emb = np.eye(30, dtype=np.float32)[labels]
    res = nway_accuracy(flat_scorer((30,)), emb, labels, 20, episodes=50, alphabets=alphabets)
    assert res.accuracy == 1.0 and res.ci95 == 0.0
    assert res.protocol["n_way"] == 20 and res.protocol["within_alphabet"] is False


def test_random_embedding_gives_chance():
    """Chance is 1/N on average over embeddings; one fixed embedding of few images deviates more
    than the binomial error, so the set is large enough for episodes to rarely share images."""
    labels, _ = toy_labels(classes=1000, per_class=4)
    emb = np.random.default_rng(0).normal(size=(len(labels), 8)).astype(np.float32)
    res = nway_accuracy(flat_scorer((8,)), emb, labels, 20, episodes=1000, seed=1)
    trials = 20 * 1000
    assert abs(res.accuracy - 1 / 20) < 4 * np.sqrt(0.05 * 0.95 / trials)
    assert res.ci95 == pytest.approx(1.96 * res.episode_accuracies.std(ddof=1) / np.sqrt(1000))


def test_kshot_rules_match_brute_force():
    labels, _ = toy_labels(classes=12, per_class=8)
    rng = np.random.default_rng(2)
    emb = (np.eye(12)[labels] + rng.normal(scale=0.6, size=(len(labels), 12))).astype(np.float32)
    ep = sample_episodes(labels, 5, k_shot=3, queries_per_class=2, episodes=40, seed=5)
    scorer = flat_scorer((12,))
    for rule in ("mean_distance", "prototype"):
        got = evaluate_episodes(scorer, emb, ep, rule).episode_accuracies
        want = []
        for e in range(40):
            correct = 0
            for c in range(5):
                for q in ep.query[e, c]:
                    if rule == "mean_distance":
                        d = [
                            np.mean([np.linalg.norm(emb[q] - emb[s]) for s in ep.support[e, k]])
                            for k in range(5)
                        ]
                    else:
                        d = [
                            np.linalg.norm(emb[q] - emb[ep.support[e, k]].mean(0)) for k in range(5)
                        ]
                    correct += int(np.argmin(d) == c)
            want.append(correct / 10)
        np.testing.assert_allclose(got, want)
    full = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    by_matrix = evaluate_episodes_from_distances(full, ep).episode_accuracies
    np.testing.assert_allclose(by_matrix, evaluate_episodes(scorer, emb, ep).episode_accuracies)


def test_mean_ci95_hand_worked():
    mean, half = mean_ci95(np.array([0.0, 1.0, 1.0, 0.0]))  # std (ddof 1) = 0.57735
    assert mean == 0.5 and half == pytest.approx(1.96 * 0.5773503 / 2)


def test_nway_1000_episodes_at_full_size():
    """1,000 20-way episodes on the Omniglot evaluation set size (13,180 images, D = 64) run and
    give chance-level accuracy on random embeddings (speed is measured by
    benchmarks/bench_evaluation.py, not asserted here)."""
    labels, alphabets = toy_labels(classes=659, per_class=20, alphabets=20)
    emb = np.random.default_rng(0).normal(size=(len(labels), 64)).astype(np.float32)
    result = nway_accuracy(
        flat_scorer((64,)),
        emb,
        labels,
        20,
        episodes=1000,
        alphabets=alphabets,
        within_alphabet=True,
    )
    assert len(result.episode_accuracies) == 1000
    assert abs(result.accuracy - 1 / 20) < 0.02  # random embeddings: chance


# ---------------------------------------------------------------- Lake's runs


def test_lake_runs_answers_are_valid(data_dir):
    from oneshot.data import load_lake_runs

    runs = load_lake_runs(data_dir=data_dir)
    assert len(runs) == 20
    for run in runs:
        assert run.training_images.shape == run.test_images.shape == (20, 105, 105)
        np.testing.assert_array_equal(np.sort(run.answers), np.arange(20))


def test_lake_errors_hand_worked():
    dist = np.ones((2, 3, 3))
    answers = np.array([[0, 1, 2], [2, 0, 1]])
    dist[0, [0, 1, 2], [0, 1, 2]] = 0.0  # run 0: all right
    dist[1, 0, 2] = dist[1, 1, 1] = dist[1, 2, 1] = 0.0  # run 1: trial 1 wrong
    res = lake_errors_from_distances(dist, answers)
    np.testing.assert_allclose(res.run_errors, [0.0, 100 / 3])
    assert res.mean_error == pytest.approx(100 / 6)
    with pytest.raises(ValueError, match="answers"):
        lake_errors_from_distances(dist, answers[:, :2])


def test_modified_hausdorff_hand_worked_and_matrix_matches():
    a, b = np.array([[0.0, 0.0], [0.0, 1.0]]), np.array([[0.0, 0.0], [0.0, 3.0]])
    # a->b: mins 0, 1 -> 0.5; b->a: mins 0, 2 -> 1.0; max = 1.0
    assert modified_hausdorff(a, b) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    images = (rng.random((3, 12, 12)) > 0.8).astype(np.uint8) * 255
    got = modified_hausdorff_matrix(images[:2], images)
    want = [[modified_hausdorff(ink_points(x), ink_points(y)) for y in images] for x in images[:2]]
    np.testing.assert_allclose(got, want)
    assert np.allclose(np.diag(got), 0.0)


def test_hausdorff_baseline_first_runs(data_dir):
    """Errors of runs 1-3 as measured by the full 20-run check (38.75% overall)."""
    from oneshot.data import load_lake_runs

    res = lake_hausdorff_baseline(load_lake_runs(data_dir=data_dir)[:3])
    np.testing.assert_allclose(res.run_errors, [45.0, 35.0, 40.0])


@pytest.mark.slow
def test_hausdorff_baseline_reproduces_published_error(data_dir):
    from oneshot.data import load_lake_runs

    res = lake_hausdorff_baseline(load_lake_runs(data_dir=data_dir))
    assert abs(res.mean_error - 38.8) <= 0.5


def test_lake_evaluate_with_pixel_scorer(data_dir):
    from oneshot.data import load_lake_runs

    runs = load_lake_runs(image_size=28, data_dir=data_dir)[:4]
    res = lake_evaluate(flat_scorer((28, 28)), runs)
    want = []
    for run in runs:
        x = lambda im: im.reshape(len(im), -1).astype(np.float64) / 255  # noqa: E731
        d = np.linalg.norm(x(run.test_images)[:, None] - x(run.training_images)[None], axis=-1)
        want.append(100 * np.mean(d.argmin(1) != run.answers))
    np.testing.assert_allclose(res.run_errors, want)
    assert res.protocol["trials"] == 80


# ---------------------------------------------------------------- verification


def test_verification_hand_worked_auc_and_tpr():
    # positives at 0.1, 0.5; negatives at 0.3, 0.9: 3 of 4 (pos, neg) pairs ordered right
    res = verification_from_distances(np.array([0.1, 0.5, 0.3, 0.9]), np.array([1, 1, 0, 0], bool))
    assert res.auc == pytest.approx(0.75)
    assert res.tpr_at_fpr == pytest.approx(0.5) and res.threshold == pytest.approx(0.1)
    perfect = verification_from_distances(
        np.array([0.1, 0.2, 0.3, 0.9]), np.array([1, 1, 0, 0], bool)
    )
    assert perfect.auc == 1.0 and perfect.tpr_at_fpr == 1.0
    with pytest.raises(ValueError, match="same"):
        verification_from_distances(np.array([0.1, 0.2]), np.array([True, True]))


def test_balanced_pairs_and_first_n():
    labels, _ = toy_labels(classes=10, per_class=5)
    a, b, same = sample_balanced_pairs(labels, 500, seed=0)
    assert same.sum() == 500 and (~same).sum() == 500
    np.testing.assert_array_equal(labels[a] == labels[b], same)
    assert np.all(a != b)
    assert len(np.unique(labels[a[same]])) == 10
    fa, fb, fsame = first_n_pairs(labels, 12)
    assert len(fa) == 66 and np.all(fa < fb)
    np.testing.assert_array_equal(fsame, labels[fa] == labels[fb])


def test_verification_perfect_and_random():
    labels, _ = toy_labels(classes=10, per_class=20)
    scorer = flat_scorer((10,))
    perfect = verification(
        scorer, np.eye(10, dtype=np.float32)[labels], labels, pairs_per_kind=2000
    )
    assert perfect.auc == 1.0 and perfect.tpr_at_fpr == 1.0
    noise = np.random.default_rng(0).normal(size=(len(labels), 10)).astype(np.float32)
    rand = verification(scorer, noise, labels, pairs_per_kind=5000)
    assert abs(rand.auc - 0.5) < 0.03
    first = verification(scorer, noise, labels, pairs="first_n", first_n=60)
    assert first.protocol["positives"] + first.protocol["negatives"] == 60 * 59 // 2
    with pytest.raises(ValueError, match="pairs"):
        verification(scorer, noise, labels, pairs="all")


# ---------------------------------------------------------------- CMC and retrieval


def test_cmc_hand_worked():
    d = np.array([[0.1, 0.5, 0.9], [0.2, 0.6, 0.3], [0.4, 0.4, 0.4]])
    # query 0 rank 1; query 1: 0.2, 0.3 < 0.6 -> rank 3; query 2: ties, index order -> rank 3
    np.testing.assert_allclose(cmc_curve_from_distances(d), [1 / 3, 1 / 3, 1.0])


def test_cmc_real_scorer_rank_k_is_one_and_rank1_is_accuracy():
    labels, _ = toy_labels(classes=15, per_class=4)
    emb = np.random.default_rng(1).normal(size=(len(labels), 6)).astype(np.float32)
    res = cmc(flat_scorer((6,)), emb, labels, 15, trials=20, seed=4)
    assert res.curve[-1] == 1.0 and np.all(np.diff(res.curve) >= 0)
    ep = sample_episodes(labels, 15, 1, 1, 20, seed=4)
    assert res.rank1 == pytest.approx(evaluate_episodes(flat_scorer((6,)), emb, ep).accuracy)


def brute_retrieval(dist, labels):
    out = []
    for i in range(len(labels)):
        others = [j for j in np.argsort(dist[i], kind="stable") if j != i]
        r = int((labels == labels[i]).sum() - 1)
        if r == 0:
            continue
        rel = [labels[j] == labels[i] for j in others[:r]]
        ap = sum(np.mean(rel[: k + 1]) for k in range(r) if rel[k]) / r
        out.append([float(rel[0]), np.mean(rel), ap])
    return np.mean(out, axis=0)


def test_map_at_r_hand_worked():
    labels = np.array([0, 0, 0, 1, 1])
    d = np.array(
        [
            [0, 0.2, 0.4, 0.1, 0.9],  # q0 (R=2): 3x, 1v -> p@1 0, r-prec 1/2, MAP@R (1/2)/2 = 1/4
            [0.2, 0, 0.3, 0.8, 0.9],  # q1: 0v, 2v -> 1, 1, 1
            [0.9, 0.1, 0, 0.2, 0.3],  # q2: 1v, 3x -> 1, 1/2, 1/2
            [0.5, 0.6, 0.7, 0, 0.1],  # q3 (R=1): 4v -> 1, 1, 1
            [0.1, 0.6, 0.7, 0.2, 0],  # q4: 0x -> 0, 0, 0
        ]
    )
    got = retrieval_metrics_from_distances(d, labels)
    assert got["precision_at_1"] == pytest.approx(3 / 5)
    assert got["r_precision"] == pytest.approx((0.5 + 1 + 0.5 + 1 + 0) / 5)
    assert got["map_at_r"] == pytest.approx((0.25 + 1 + 0.5 + 1 + 0) / 5)


def test_retrieval_matches_brute_force_and_chunks():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 7, size=90)
    labels[0] = 99  # a singleton: skipped (R = 0)
    emb = rng.normal(size=(90, 5)).astype(np.float32)
    dist = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    got = retrieval_metrics_from_distances(dist, labels)
    np.testing.assert_allclose(
        [got["precision_at_1"], got["r_precision"], got["map_at_r"]],
        brute_retrieval(dist, labels),
        rtol=1e-6,
    )
    assert got["protocol"]["queries"] == 89
    chunked = retrieval_metrics(flat_scorer((5,)), emb, labels, chunk_size=16)
    assert chunked["map_at_r"] == pytest.approx(got["map_at_r"], rel=1e-5)


def test_retrieval_blocks_bound_memory_at_any_size(monkeypatch):
    """The default block holds at most ROW_BLOCK_VALUES distances (1,024 rows up to 32,768
    items, 33 rows at a million), and blocks of a few rows give the full matrix's numbers."""
    from oneshot.evaluation import retrieval as module

    assert module.row_block(10_000) == 1024 and module.row_block(1_000_000) == 33
    assert module.row_block(10**9) == 1
    assert all(module.row_block(n) * n <= module.ROW_BLOCK_VALUES for n in (40_000, 10**6))
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 6, size=70)
    emb = rng.normal(size=(70, 4)).astype(np.float32)
    full = retrieval_metrics(flat_scorer((4,)), emb, labels, chunk_size=70)
    seen = []
    real_rows = module._retrieval_rows

    def spy(rows, *args):
        seen.append(rows.shape)
        return real_rows(rows, *args)

    monkeypatch.setattr(module, "ROW_BLOCK_VALUES", 70 * 3)  # 3 rows a block
    monkeypatch.setattr(module, "_retrieval_rows", spy)
    blocked = retrieval_metrics(flat_scorer((4,)), emb, labels)
    assert max(shape[0] for shape in seen) == 3 and len(seen) == 24
    for key in ("precision_at_1", "r_precision", "map_at_r"):
        assert blocked[key] == pytest.approx(full[key], rel=1e-6)


def test_learned_metric_path_matches_full_matrix():
    """A learned metric scores exactly the episode pairs; same result as its full matrix."""
    labels, _ = toy_labels(classes=10, per_class=4)
    emb = np.random.default_rng(6).normal(size=(len(labels), 3)).astype(np.float32)
    metric = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(4, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    scorer = Scorer(
        keras.Sequential([keras.Input((3,)), keras.layers.Flatten()]), metric_model=metric
    )
    ep = sample_episodes(labels, 5, k_shot=2, queries_per_class=2, episodes=10, seed=2)
    got = evaluate_episodes(scorer, emb, ep).episode_accuracies
    want = evaluate_episodes_from_distances(scorer.pairwise(emb), ep).episode_accuracies
    np.testing.assert_allclose(got, want)


def test_nearest_neighbours_matches_brute_force():
    from oneshot.evaluation import nearest_neighbours
    from oneshot.evaluation.scoring import Scorer

    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(30, 4)).astype(np.float32)
    labels = rng.integers(0, 3, size=30)
    queries = np.array([0, 7, 29])
    scorer = Scorer(embedding_model=None, distance="euclidean")
    order, correct, dist = nearest_neighbours(scorer, embeddings, labels, queries, top=5)
    for row, q in enumerate(queries):
        d = np.linalg.norm(embeddings - embeddings[q], axis=1)
        d[q] = np.inf
        expected = np.argsort(d, kind="stable")[:5]
        np.testing.assert_array_equal(order[row], expected)
        np.testing.assert_allclose(dist[row], d[expected], rtol=1e-5)
        np.testing.assert_array_equal(correct[row], labels[expected] == labels[q])
    assert q not in order[-1]


# ---------------------------------------------------------------- labels and embeddings in


def test_string_and_column_labels_give_the_same_numbers():
    """Names that sort like the ints (``c00``..``c29``) draw the same episodes and pairs, so
    every metric must be identical; (N, 1) labels are flattened."""
    from oneshot.evaluation import nearest_neighbours

    labels, alphabets = toy_labels()
    rng = np.random.default_rng(3)
    emb = (np.eye(30)[labels] + rng.normal(scale=0.6, size=(len(labels), 30))).astype(np.float32)
    names = np.array([f"c{y:02d}" for y in labels])
    groups = np.array(["Greek", "Latin", "Runic"])[alphabets]
    scorer = flat_scorer((30,))

    def numbers(y, a):
        return [
            nway_accuracy(scorer, emb, y, 5, episodes=40, alphabets=a, within_alphabet=True),
            verification(scorer, emb, y, pairs_per_kind=300).auc,
            verification(scorer, emb, y, pairs="first_n", first_n=50).auc,
            cmc(scorer, emb, y, 10, trials=3).rank1,
            retrieval_metrics(scorer, emb, y)["map_at_r"],
            nearest_neighbours(scorer, emb, y, np.array([0, 5]), top=4)[1].tolist(),
        ]

    want = numbers(labels, alphabets)
    assert 0.2 < want[0].accuracy < 1.0  # not a trivial case
    want[0] = want[0].episode_accuracies.tolist()
    for y, a in [(names, groups), (labels[:, None], alphabets[:, None]), (names[:, None], groups)]:
        got = numbers(y, a)
        got[0] = got[0].episode_accuracies.tolist()
        assert got == want


def test_images_where_embeddings_belong_are_refused(data_dir):
    from oneshot.data import load_mnist
    from oneshot.evaluation import nearest_neighbours

    data = load_mnist("test", data_dir=data_dir)
    images, labels = data.images[:60], data.labels[:60]
    scorer = flat_scorer((28, 28))
    emb = scorer.embed(images)
    images_message = r"`embeddings`. Expected embeddings \(N, D\) float; got images of shape \(60, 28, 28\).*Scorer.embed"
    for call in [
        lambda: nway_accuracy(scorer, images, labels, 5, episodes=5),
        lambda: verification(scorer, images, labels, pairs_per_kind=10),
        lambda: cmc(scorer, images, labels, 5),
        lambda: retrieval_metrics(scorer, images, labels),
        lambda: nearest_neighbours(scorer, images, labels, np.array([0])),
    ]:
        with pytest.raises(ValueError, match=images_message):
            call()
    with pytest.raises(ValueError, match=r"`a`.*got images of shape \(60, 28, 28, 1\)"):
        scorer.pairwise(images[..., None])
    with pytest.raises(ValueError, match=r"`b`.*got images of shape \(60, 784\) \(uint8\)"):
        scorer.paired(emb, images.reshape(60, -1))
    with pytest.raises(ValueError, match=r"`embeddings`. Expected embeddings.*dtype int64"):
        nway_accuracy(scorer, emb.astype(np.int64), labels, 5, episodes=5)
    with pytest.raises(ValueError, match=r"`labels`. Expected 60 labels.*Received 59"):
        nway_accuracy(scorer, emb, labels[1:], 5, episodes=5)
    with pytest.raises(ValueError, match=r"`labels`. Expected a 1-D array"):
        verification(scorer, emb, np.stack([labels, labels], 1))
