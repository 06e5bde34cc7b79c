"""What a :class:`~qfnb.dataset.Dataset` reports of its rows, as the official SDK's methods name it: the
overview, the statistics, the data insight and the stress tests (each computed in its own module)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from qfnb._core.errors import ValidationError
from qfnb._core.runtime import sync

from .data_insight.insight import DataInsight, data_insight
from .llm.stress import astress
from .summarization_method import overview, statistics

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .llm.stress import StressTestResult
    from .view import DatasetView

__all__ = ["Reports"]


class Reports:
    """The reports of a dataset's rows (a mixin of ``Dataset``; ``self`` is read as a :class:`DatasetView`)."""

    # ---- overview and statistics (DataFrames; the official SDK prints them) ------------------------

    def show_overview_info(self: DatasetView) -> pd.DataFrame:
        """Per column: ``repetition_ratio`` (1 - distinct / rows) and ``null_ratio`` (empty or missing
        cells / rows)."""
        return overview(self.to_pandas())

    def show_processed_statistics(self: DatasetView, methods: Sequence[Any] | None = None,
                                  **kwargs: Any) -> pd.DataFrame:
        """Each numeric column's statistics, a row per method (default: mean, min, max, the 0.8 and 0.9
        quantiles; any :class:`~qfnb.dataset.summarization_method.SummarizationMethod`)."""
        return statistics(self, methods, **kwargs)

    def show_in_data_insight_mode(self: DatasetView, column_names: Sequence[str | None] | None = None) -> DataInsight:
        """The data insight (officially a Streamlit app): rows, duplicates, empty fields, each
        column's distribution, and the official measures (content length, special-characters and
        character-repetition ratios) of ``column_names`` (default: every text column). A notebook
        shows it in the cell (``%load_ext qfnb``); its tables are DataFrames."""
        return data_insight(self, column_names)

    # ---- stress tests (qfnb.dataset.llm.stress) ---------------------------------------------------

    def stress_test(self: DatasetView, workers: int = 1, users: int | None = None, spawn_rate: float | None = None,
                    model: str | None = None, endpoint: str | None = None, runtime: str | float = "0s",
                    model_type: str = "ChatCompletion", hyperparameters: Mapping[str, Any] | None = None,
                    prompt_column: str = "prompt", **kwargs: Any) -> StressTestResult:
        """Send every prompt once with ``users`` concurrent streams (stopping after ``runtime``,
        e.g. ``"5m"``); TTFT, latency percentiles, QPS, OTPS and errors in one round.
        ``workers`` (locust's processes officially) is accepted: one event loop drives every user."""
        return sync.run(astress(self, users_per_round=[users] if users is not None else [], model=model,
                                endpoint=endpoint, model_type=model_type, hyperparameters=hyperparameters,
                                spawn_rate=spawn_rate, runtime=runtime, workers=workers,
                                prompt_column=prompt_column, ignored=kwargs))

    def multi_stress_test(self: DatasetView, origin_users: int, workers: int = 1, spawn_rate: float | None = None,
                          model: str | None = None, endpoint: str | None = None, runtime: str | float = "0s",
                          model_type: str = "ChatCompletion", hyperparameters: Mapping[str, Any] | None = None,
                          rounds: int = 1, interval: int = 0, first_latency_threshold: float | None = 100,
                          round_latency_threshold: float | None = 1000, success_rate_threshold: float | None = 0,
                          prompt_column: str = "prompt", **kwargs: Any) -> StressTestResult:
        """``rounds`` stress tests at ``origin_users``, ``+interval``, ... users; stops after a round whose
        mean first-token latency or mean latency (seconds) passes its threshold, or whose success rate
        falls below ``success_rate_threshold``."""
        if rounds < 1 or interval < 0:
            raise ValidationError("rounds", f"need rounds >= 1 and interval >= 0, got {rounds} and {interval}")
        return sync.run(astress(self, users_per_round=[origin_users + i * interval for i in range(rounds)],
                                model=model, endpoint=endpoint, model_type=model_type,
                                hyperparameters=hyperparameters, spawn_rate=spawn_rate, runtime=runtime,
                                workers=workers, prompt_column=prompt_column,
                                first_latency_threshold=first_latency_threshold,
                                round_latency_threshold=round_latency_threshold,
                                success_rate_threshold=success_rate_threshold, ignored=kwargs))
