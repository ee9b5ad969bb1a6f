"""Does INT8 pay? The model's `quantization.objective` against FP32, measured side by side as served.

- `latency`: faster than FP32 at batch 1, beyond the noise (median ratio - noise > 1);
- `throughput`: the same at the model's `batching.max_batch_size`;
- `size`: a smaller model file (no timing);
- `balanced` (default): at batch 1 and at max_batch_size not slower than FP32 beyond the noise
  (median ratio + noise >= 1).

Noise is the larger of `speed_tolerance` and half the interquartile range of the per-round ratios. Among
candidates inside the accuracy budget, `rank` orders by the objective's figure (the batch-1 ratio, the
max-batch ratio, the smaller file, or for `balanced` the worse of the two ratios).
"""

from dataclasses import dataclass

from server.config.quantization_config import Objective
from server.quantization.speed import BatchTiming, SpeedRatio, speed_ratio


@dataclass(frozen=True)
class Benefit:
    objective: Objective
    pays: bool
    reason: str
    size_ratio: float  # INT8 bytes / FP32 bytes
    latency: SpeedRatio | None  # at batch 1; None when not timed
    throughput: SpeedRatio | None  # at max_batch_size; None when not timed

    @property
    def noise(self) -> float:
        """How far apart two scores must be to differ (0 for size, exact; the ratio's noise if timed)."""
        if self.objective is Objective.SIZE or self.latency is None or self.throughput is None:
            return 0.0
        if self.objective is Objective.LATENCY:
            return self.latency.noise
        if self.objective is Objective.THROUGHPUT:
            return self.throughput.noise
        return max(self.latency.noise, self.throughput.noise)

    @property
    def score(self) -> float:
        """The objective's figure, higher is better (for choosing among candidates)."""
        if self.objective is Objective.SIZE or self.latency is None or self.throughput is None:
            return -self.size_ratio
        return {
            Objective.LATENCY: self.latency.median,
            Objective.THROUGHPUT: self.throughput.median,
        }.get(self.objective, min(self.latency.median, self.throughput.median))


def _ratio_text(name: str, ratio: SpeedRatio) -> str:
    return f"{name} {ratio.median:.2f}x FP32 (batch {ratio.batch_size}, noise ±{ratio.noise:.2f})"


def judge_benefit(
    objective: Objective,
    fp32_bytes: int,
    int8_bytes: int,
    fp32: dict[int, BatchTiming] | None,
    int8: dict[int, BatchTiming] | None,
    max_batch_size: int,
    tolerance: float,
) -> Benefit:
    """Whether INT8 meets `objective`; `fp32`/`int8` are timings by batch size (None: not timed)."""
    size_ratio = int8_bytes / fp32_bytes
    latency = throughput = None
    if fp32 is not None and int8 is not None:
        latency = speed_ratio(fp32[1], int8[1], tolerance)
        throughput = speed_ratio(fp32[max_batch_size], int8[max_batch_size], tolerance)
    size_text = f"size {size_ratio:.2f}x FP32"
    if objective is Objective.SIZE:
        pays = int8_bytes < fp32_bytes
        reason = f"objective size: {size_text}" + ("" if pays else ", not smaller")
        return Benefit(objective, pays, reason, size_ratio, latency, throughput)
    if latency is None or throughput is None:
        reason = f"objective {objective.value}: not measured (speed_seconds is 0), so not shown to pay"
        return Benefit(objective, False, reason, size_ratio, None, None)
    texts = f"{_ratio_text('latency', latency)}, {_ratio_text('throughput', throughput)}, {size_text}"
    if objective is Objective.LATENCY:
        pays, verb = latency.faster, "faster at batch 1" if latency.faster else "not faster at batch 1"
    elif objective is Objective.THROUGHPUT:
        pays = throughput.faster
        verb = f"{'faster' if pays else 'not faster'} at batch {max_batch_size}"
    else:
        pays = latency.not_slower and throughput.not_slower
        slower = [r for r in (latency, throughput) if not r.not_slower]
        verb = (
            "not slower than FP32"
            if pays
            else "slower at batch " + ", ".join(str(r.batch_size) for r in slower)
        )
    return Benefit(
        objective, pays, f"objective {objective.value}: {verb}; {texts}", size_ratio, latency, throughput
    )
