"""Evaluation: N-way K-shot accuracy, Lake's runs, verification (ROC), CMC and retrieval metrics.

Every metric works on embeddings computed once by a :class:`oneshot.evaluation.scoring.Scorer` (or on a
plain distance matrix) and returns its number together with the protocol that produced it.
"""

from oneshot.evaluation.episodes import (
    Episodes,
    OneShotResult,
    evaluate_episodes,
    evaluate_episodes_from_distances,
    mean_ci95,
    nway_accuracy,
    sample_episodes,
)
from oneshot.evaluation.lake import (
    LakeResult,
    lake_errors_from_distances,
    lake_evaluate,
    lake_hausdorff_baseline,
    modified_hausdorff,
    modified_hausdorff_matrix,
)
from oneshot.evaluation.report import (
    accuracy_line,
    accuracy_vs_ways,
    evaluate_scorer,
    evaluate_scorers,
)
from oneshot.evaluation.retrieval import (
    CMCResult,
    cmc,
    cmc_curve_from_distances,
    nearest_neighbours,
    rank_candidates,
    retrieval_metrics,
    retrieval_metrics_from_distances,
    retrieval_metrics_from_ranking,
    same_class_counts,
)
from oneshot.evaluation.scoring import Scorer
from oneshot.evaluation.seeds import SeedSummary, paired_difference, seed_summary
from oneshot.evaluation.verification import (
    VerificationResult,
    first_n_pairs,
    sample_balanced_pairs,
    tpr_at_fpr,
    verification,
    verification_from_distances,
)

__all__ = [
    "CMCResult",
    "Episodes",
    "LakeResult",
    "OneShotResult",
    "Scorer",
    "SeedSummary",
    "VerificationResult",
    "accuracy_line",
    "accuracy_vs_ways",
    "cmc",
    "cmc_curve_from_distances",
    "evaluate_episodes",
    "evaluate_episodes_from_distances",
    "evaluate_scorer",
    "evaluate_scorers",
    "first_n_pairs",
    "lake_errors_from_distances",
    "lake_evaluate",
    "lake_hausdorff_baseline",
    "mean_ci95",
    "modified_hausdorff",
    "modified_hausdorff_matrix",
    "nearest_neighbours",
    "paired_difference",
    "nway_accuracy",
    "rank_candidates",
    "retrieval_metrics",
    "retrieval_metrics_from_distances",
    "retrieval_metrics_from_ranking",
    "same_class_counts",
    "sample_balanced_pairs",
    "sample_episodes",
    "seed_summary",
    "tpr_at_fpr",
    "verification",
    "verification_from_distances",
]
