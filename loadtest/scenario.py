"""A load-test scenario (YAML): target, protocol, request mix, arrival process, and the SLA it must meet.

Loading validates every field with pydantic; a bad file raises ScenarioError naming the file and the field,
so a typo never turns into a silently different test.
"""

from enum import StrEnum
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from loadtest.errors import ScenarioError

GRPC_STATUS_NAMES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class Protocol(StrEnum):
    RISKSERVE = "riskserve"  # the domain API (riskserve.v1 FraudScoring / CreditScoring)
    OIP = "oip"  # Open Inference Protocol (KServe v2): Triton, MLServer, riskserve


class CallKind(StrEnum):
    FRAUD_SCORE = "fraud.score"
    FRAUD_SCORE_BATCH = "fraud.score_batch"
    FRAUD_SCORE_STREAM = "fraud.score_stream"
    CREDIT_ASSESS = "credit.assess"
    OIP_INFER = "oip.infer"

    @property
    def default_model(self) -> str | None:
        return {"fraud": "fraud", "credit": "credit"}.get(self.value.split(".")[0])


class MixEntry(_Strict):
    """One kind of request in the mix, chosen for each arrival with probability weight / sum(weights)."""

    call: CallKind
    weight: float = Field(1.0, gt=0)
    batch_size: int = Field(1, ge=1, le=65536, description="rows per request (score_batch, oip.infer)")
    model: str | None = Field(None, description="model name (default: fraud/credit by call; oip: required)")
    data_file: Path | None = Field(None, description="parquet/csv of request rows (default: model holdout)")
    inputs: tuple[str, ...] | None = Field(None, description="oip: columns to send (default: model config)")

    @model_validator(mode="after")
    def _consistent(self) -> "MixEntry":
        if self.call is CallKind.OIP_INFER and not self.model:
            raise ValueError("oip.infer needs `model` (the model name the server serves)")
        if self.batch_size > 1 and self.call not in (CallKind.FRAUD_SCORE_BATCH, CallKind.OIP_INFER):
            raise ValueError(f"batch_size applies to fraud.score_batch and oip.infer, not {self.call}")
        if self.inputs is not None and self.call is not CallKind.OIP_INFER:
            raise ValueError("inputs applies to oip.infer only")
        return self

    @property
    def model_name(self) -> str:
        return self.model or self.call.default_model or ""


class Stage(_Strict):
    """A stretch of the open-loop schedule: constant `rate`, or a linear ramp from `rate` to `to_rate`."""

    duration_s: float = Field(gt=0, le=86400)
    rate: float = Field(gt=0, description="requests per second at the start of the stage")
    to_rate: float | None = Field(None, gt=0, description="requests per second at the end (a ramp)")

    @property
    def peak_rate(self) -> float:
        return max(self.rate, self.to_rate or self.rate)


class LoadMode(StrEnum):
    OPEN = "open"  # arrivals follow the schedule whatever the server does (measures real latency)
    CLOSED = "closed"  # `concurrency` callers each send, wait, send again (hides stalls; for comparison)


class Arrival(StrEnum):
    CONSTANT = "constant"
    POISSON = "poisson"


class Load(_Strict):
    mode: LoadMode = LoadMode.OPEN
    arrival: Arrival = Arrival.CONSTANT
    rate: float | None = Field(None, gt=0, description="open loop: constant rate (shorthand for one stage)")
    stages: tuple[Stage, ...] | None = Field(None, min_length=1, description="open loop: step/ramp schedule")
    concurrency: int | None = Field(None, ge=1, le=100_000, description="closed loop: callers in flight")
    duration_s: float | None = Field(None, gt=0, le=86400, description="measured time (with rate/closed)")
    warmup_s: float = Field(1.0, ge=0, le=3600, description="sent at the first stage's rate, not measured")
    timeout_ms: float = Field(1000.0, gt=0, description="per-request deadline")
    max_in_flight: int = Field(10_000, ge=1, description="open loop: outstanding requests before sends wait")
    workers: int | Literal["auto"] = Field("auto", description="generator processes (auto: by peak rate)")
    channels_per_worker: int = Field(1, ge=1, le=64)
    connect_timeout_s: float = Field(5.0, gt=0, le=300, description="to reach the target before the run")
    seed: int = 1

    @field_validator("workers")
    @classmethod
    def _positive_workers(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("workers must be >= 1 or 'auto'")
        return value

    @model_validator(mode="after")
    def _mode_fields(self) -> "Load":
        if self.mode is LoadMode.OPEN:
            if (self.rate is None) == (self.stages is None):
                raise ValueError("open loop needs exactly one of `rate` (with duration_s) or `stages`")
            if self.rate is not None and self.duration_s is None:
                raise ValueError("open loop with `rate` needs `duration_s`")
            if self.stages is not None and self.duration_s is not None:
                raise ValueError("with `stages`, the duration is the sum of the stages; drop `duration_s`")
            if self.concurrency is not None:
                raise ValueError("`concurrency` is for mode: closed")
        else:
            if self.concurrency is None or self.duration_s is None:
                raise ValueError("closed loop needs `concurrency` and `duration_s`")
            if self.rate is not None or self.stages is not None:
                raise ValueError("closed loop takes no `rate`/`stages` (the server's speed sets the rate)")
        return self

    @property
    def schedule(self) -> tuple[Stage, ...]:
        """The measured open-loop stages (warm-up excluded)."""
        if self.stages is not None:
            return self.stages
        return (Stage(duration_s=self.duration_s or 0.0, rate=self.rate or 1.0),)

    @property
    def measured_s(self) -> float:
        if self.mode is LoadMode.CLOSED:
            return float(self.duration_s or 0.0)
        return sum(stage.duration_s for stage in self.schedule)

    @property
    def peak_rate(self) -> float:
        return max(stage.peak_rate for stage in self.schedule) if self.mode is LoadMode.OPEN else 0.0


class Sla(_Strict):
    """What the run must achieve. Latencies are client-side, from the intended send time in open loop."""

    p50_ms: float | None = Field(None, gt=0)
    p90_ms: float | None = Field(None, gt=0)
    p99_ms: float | None = Field(None, gt=0)
    p999_ms: float | None = Field(None, gt=0)
    max_error_rate: float | None = Field(None, ge=0, le=1, description="share of requests not OK")
    min_throughput_rps: float | None = Field(None, ge=0, description="successful requests per second")
    expect_codes: tuple[str, ...] = Field((), description="status codes that must be seen at least once")
    max_code_rate: dict[str, float] = Field({}, description="per status code: maximum share of requests")
    max_timeout_rate: float | None = Field(
        None, ge=0, le=1, description="maximum share of calls the caller waited out to their deadline"
    )
    max_send_lag_ms: float = Field(10.0, gt=0, description="p99 generator lag beyond which it fell behind")

    @field_validator("expect_codes")
    @classmethod
    def _known_codes(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_status_name(code) for code in codes)

    @field_validator("max_code_rate")
    @classmethod
    def _known_rate_codes(cls, rates: dict[str, float]) -> dict[str, float]:
        for rate in rates.values():
            if not 0 <= rate <= 1:
                raise ValueError(f"a code rate is a share between 0 and 1, got {rate}")
        return {_status_name(code): rate for code, rate in rates.items()}


def _status_name(code: str) -> str:
    name = str(code).upper()
    if name not in GRPC_STATUS_NAMES:
        raise ValueError(f"unknown gRPC status code {code!r}; use one of {', '.join(GRPC_STATUS_NAMES)}")
    return name


class Scenario(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    target: str = Field("127.0.0.1:50051", pattern=r"^[^\s:]+:\d{1,5}$", description="host:port")
    protocol: Protocol = Protocol.RISKSERVE
    metrics_url: str | None = Field(None, description="server's Prometheus endpoint, scraped before/after")
    mix: tuple[MixEntry, ...] = Field(min_length=1)
    load: Load
    sla: Sla = Sla()


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"invalid scenario {source}:"]
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field (misspelt, or in the wrong section?)"
        lines.append(f"  {field}: {message}")
    return "\n".join(lines)


def parse_scenario(raw: object, source: str = "<scenario>") -> Scenario:
    """Validate a scenario mapping; raise ScenarioError naming `source` and each bad field."""
    if not isinstance(raw, dict):
        raise ScenarioError(f"scenario {source} must be a mapping of fields, got {type(raw).__name__}")
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(_describe(exc, source)) from exc
    for index, entry in enumerate(scenario.mix):
        if (entry.call is CallKind.OIP_INFER) != (scenario.protocol is Protocol.OIP):
            raise ScenarioError(
                f"invalid scenario {source}:\n  mix.{index}.call: {entry.call} cannot be sent "
                f"with protocol {scenario.protocol} (oip.infer goes with protocol oip)"
            )
    return scenario


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario YAML file. Relative data_file paths resolve against the file's folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ScenarioError(f"scenario file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"scenario {path} is not valid YAML: {exc}") from exc
    scenario = parse_scenario(raw, str(path))
    mix = tuple(
        entry.model_copy(update={"data_file": path.parent / entry.data_file})
        if entry.data_file is not None and not entry.data_file.is_absolute()
        else entry
        for entry in scenario.mix
    )
    return scenario.model_copy(update={"mix": mix})


def with_overrides(
    scenario: Scenario,
    *,
    target: str | None = None,
    metrics_url: str | None = None,
    duration_s: float | None = None,
    rate: float | None = None,
    warmup_s: float | None = None,
) -> Scenario:
    """Apply command-line overrides, re-validating so a bad value is reported like a bad file."""
    raw = scenario.model_dump(mode="python", exclude_none=True)
    load = raw["load"]
    if target is not None:
        raw["target"] = target
    if metrics_url is not None:
        raw["metrics_url"] = metrics_url
    if rate is not None:
        if scenario.load.mode is LoadMode.CLOSED:
            raise ScenarioError("--rate applies to open-loop scenarios; this one is mode: closed")
        load.pop("stages", None)
        load["rate"] = rate
        load["duration_s"] = duration_s or scenario.load.measured_s
    elif duration_s is not None:
        if "stages" in load:  # keep the shape of a step/ramp schedule, stretched to the new duration
            factor = duration_s / scenario.load.measured_s
            load["stages"] = [
                {**stage, "duration_s": stage["duration_s"] * factor} for stage in load["stages"]
            ]
        else:
            load["duration_s"] = duration_s
    if warmup_s is not None:
        load["warmup_s"] = warmup_s
    return parse_scenario(raw, "(with command-line overrides)")
