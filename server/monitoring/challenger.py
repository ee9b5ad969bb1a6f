"""A champion watched against its challenger on live traffic: `challenger.shadow_share` of the champion's
calls are scored again by the challenger (another configured model of the same task and inputs) through the
shadow-scoring core (server/monitoring/shadow.py), and each scored batch is recorded as a LiveTally
(server/metrics/live_window.py): decision agreement at each of the champion's thresholds (a disagreement is a
flip, so the flip budget is 1 - min_agreement), score correlation, PSI of the challenger's scores against the
champion's in the champion's holdout score-quantile bins. The challenger's answers are never returned.

The live split (a share of cards or applicants decided by the challenger) is routing, not scoring: the
repository's LiveSplit and the domain API (server/api/domain_api.py).
"""

import numpy as np

from server.config.settings import ServerSettings
from server.metrics.live_window import LiveRecorder, LiveReference, LiveTally
from server.monitoring.live_check import holdout_reference
from server.monitoring.shadow import ShadowScorer
from server.runtime.model_runtime import ModelRuntime


class ChallengerCheck:
    """A champion runtime's challenger in shadow. `load` (blocking), then `start`; its `scorer` joins the
    champion's Shadows."""

    def __init__(
        self,
        champion: ModelRuntime,
        challenger: ModelRuntime,
        reference: LiveReference,
        settings: ServerSettings,
    ) -> None:
        assert champion.config.challenger is not None
        self.champion, self.challenger, self.reference = champion, challenger, reference
        self.key = (
            champion.facts.name,
            champion.facts.version,
            challenger.facts.name,
            challenger.facts.version,
        )
        self.window_s = settings.challenger_window_s
        self.scorer = ShadowScorer(
            champion,
            challenger,
            champion.config.challenger.shadow_share,
            settings.challenger_queue_rows,
            f"challenger-{champion.name}",
        )
        self._recorder: LiveRecorder | None = None

    @classmethod
    def load(
        cls, champion: ModelRuntime, challenger: ModelRuntime, settings: ServerSettings
    ) -> "ChallengerCheck":
        """The champion's holdout score bins and thresholds, the disagreement budget (blocking)."""
        assert champion.config.challenger is not None
        budget = 1.0 - champion.config.challenger.min_agreement
        return cls(champion, challenger, holdout_reference(champion, flip_budget=budget), settings)

    def start(self, recorder: LiveRecorder) -> None:
        self._recorder = recorder
        recorder.register(self.key, self.reference, self.window_s)
        self.scorer.start(self._compare, lambda rows: recorder.count_dropped(self.key, rows))

    def stop(self, timeout_s: float = 5.0) -> None:
        self.scorer.stop(timeout_s)

    def _compare(self, champion: np.ndarray, challenger: np.ndarray) -> None:
        assert self._recorder is not None
        self._recorder.record(self.key, LiveTally.of(champion, challenger, self.reference))
