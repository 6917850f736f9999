"""Run folders read back: what ``oneshot train`` wrote, as runs, tables and statistics over seeds.

- :mod:`oneshot.runs.folders`  a finished run folder as a :class:`Run`; every committed report
- :mod:`oneshot.runs.tables`   headline metrics and comparison tables of reports
- :mod:`oneshot.runs.seeds`    experiments repeated over seeds: means, intervals, paired differences

The file names and the loss-curve reader are the writer's (:mod:`oneshot.training.files`).
"""

from oneshot.runs.folders import Run, committed_reports, load_run
from oneshot.runs.seeds import paired_to_baseline, seed_columns, seed_metrics, seeds_table
from oneshot.runs.tables import (
    format_table,
    headline_metrics,
    lower_is_better,
    metrics_table,
    protocol_note,
    reports_table,
)
from oneshot.training.files import (
    CONFIG_FILE,
    EXPERIMENT_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    MODEL_FILE,
    read_history,
    run_label,
    run_labels,
)

__all__ = [
    "CONFIG_FILE",
    "EXPERIMENT_FILE",
    "HISTORY_FILE",
    "METRICS_FILE",
    "MODEL_FILE",
    "Run",
    "committed_reports",
    "format_table",
    "headline_metrics",
    "load_run",
    "lower_is_better",
    "metrics_table",
    "paired_to_baseline",
    "protocol_note",
    "read_history",
    "reports_table",
    "run_label",
    "run_labels",
    "seed_columns",
    "seed_metrics",
    "seeds_table",
]
