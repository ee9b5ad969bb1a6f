"""The markdown section written to docs/reliability.md (and the lead's copy of its table)."""

from collections.abc import Iterable
from typing import Any

COMMAND = ".venv/bin/python -m benchmarks.reliability"
METHOD = """
### How these are measured

`benchmarks/reliability/` starts `riskserve serve` with `RISKSERVE_*` settings on free 127.0.0.1 ports. By
default it runs the committed `HEAD` exported to the work folder (`--source head`), so uncommitted edits
in the checkout do not leak into the figures; `--source worktree` runs the installed checkout instead. The
quantization cache lives in the work folder (`--work-dir`, default `/tmp/riskserve-reliab`), so only the
first run quantizes. `--quick` shortens every scenario (about 1 minute); `--only drain,overload` picks
scenarios; `--server-setting workers=2` passes any server setting to every server started; `--drain-runs N`
repeats the drain on fresh servers. Counts are exact; times depend on the shared machine.

- **Drain**: an open-loop client sends unary `Score` at a fixed rate (plus a slower `ScoreBatch(256)`
  stream, so longer calls are in flight) and sends SIGTERM mid-run; a `grpc.health.v1` Watch on a second
  channel times NOT_SERVING. Each call is classified by its outcome and by when it was sent (before
  SIGTERM, during the drain pause, after it). A call is *lost* if it ends with anything other than OK,
  UNAVAILABLE "shutting down", or UNAVAILABLE because nothing listens on the port any more.
- **Bad inputs**: each corrupted request must end with its documented status (INVALID_ARGUMENT, NOT_FOUND
  for an unknown model) and a message that starts with the field; a good request must return one score
  per row. RSS is read from `/proc/<pid>/status` (VmRSS, summed over the server's processes).
- **Overload**: the capacity is measured first (closed loop), then `ScoreBatch(256)` is offered at twice
  that, open loop, while RSS is sampled every 50 ms; a DEADLINE_EXCEEDED whose message is the client's own
  "Deadline Exceeded" is a call that waited out its deadline, any other is the server's fast refusal.
- **Batch invariance**: probabilities are compared bit for bit (`==` on the float64 the server returns).
"""


def _mib(kb: int) -> str:
    return f"{kb / 1024:.0f} MiB"


def _join(values: Iterable) -> str:
    return ", ".join(str(v) for v in values)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in counts.items())


def _summary(s: dict[str, Any]) -> list[str]:
    rows = ["| Scenario | Measured | Goal |", "|---|---|---|"]
    if d := s.get("drain"):
        o, h = d["outcomes"], d["health_not_serving_ms_after_sigterm"]
        exits = ", ".join(str(e) for e in d["exit_statuses"])
        rows.append(
            f"| Drain under load: SIGTERM during {d['rate_per_s']:g}/s unary `Score`, {d['runs']} run(s) | "
            f"**{o.get('lost', 0)} lost**, {o.get('timed_out', 0)} timed out of {d['calls']:,}; "
            f"{o.get('ok', 0):,} OK, "
            f"{o.get('refused_unavailable_draining', 0):,} refused UNAVAILABLE after the pause, "
            f"{o.get('not_accepted_port_closed', 0):,} not accepted (port closed), "
            f"{o.get('refused_overloaded', 0):,} refused as overloaded; exit status {exits}, "
            f"{d['sigterm_to_exit_s']['median']:.2f} s from SIGTERM to exit (median; max "
            f"{d['sigterm_to_exit_s']['max']:.2f}); health NOT_SERVING "
            + (f"{h['median']} ms after SIGTERM (max {h['max']})" if h else "NOT seen")
            + f"; companion `ScoreBatch(256)` stream: {_counts(d['batch_outcomes'])} of {d['batch_calls']:,}"
            + " | 0 lost, 0 timed out, exit 0 |"
        )
    if b := s.get("bad_inputs"):
        o = b["outcomes"]
        rows.append(
            f"| Bad-input barrage: {b['bad']:,} corrupted + {b['good']:,} good requests | "
            f"{o.get('bad_refused_as_documented', 0):,}/{b['bad']:,} refused with the documented status "
            f"naming the field, **{o.get('bad_scored', 0)} scored**, {o.get('good_ok', 0):,}/{b['good']:,} "
            f'good OK ({o.get("busy_retries", 0):,} "server busy" refusals retried); '
            f"alive: {'yes' if b['server_alive'] else 'NO'}, RSS {_mib(b['rss_kb_before'])} → "
            f"{_mib(b['rss_kb_after'])} | all refused, 0 scored, all good OK |"
        )
    if v := s.get("overload"):
        o, r = v["outcomes"], v["rss_kb"]
        rec = v["recovery"]["recovered_after_s"]
        parts = ", ".join(f"{n:,} {k}" for k, n in o.items())
        rows.append(
            f"| Overload: `ScoreBatch(256)` at {v['offered_batches_per_s']:g}/s (2x the measured "
            f"{v['capacity_batches_per_s']:g}/s) for {v['load_s']:g} s | {parts}; RSS {_mib(r['before'])} → "
            f"peak {_mib(r['peak'])} → {_mib(r['after'])}; unary p99 < 10 ms again "
            f"{f'after {rec:.2f} s' if rec is not None else 'NOT within 30 s'} | refusals fast, "
            "memory bounded, quick recovery |"
        )
    if i := s.get("invariance"):
        a, c = i["in_score_batch_vs_single"], i["concurrent_unary_vs_single"]
        rows.append(
            f"| Batch invariance: {i['transactions']} holdout transactions | "
            f"**{a['differing']}** differ inside `ScoreBatch` (positions {i['batch_positions']['min']}-"
            f"{i['batch_positions']['max']}), **{c['differing']}** as concurrent unary calls "
            f"micro-batched with others, vs one-by-one `Score` (bit-exact comparison) | 0 |"
        )
    return rows


def _details(s: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if d := s.get("drain"):
        out += [
            "",
            f"**Drain under load** (`drain_pause_s={d['settings']['drain_pause_s']}`, "
            f"`grace_period_s={d['settings']['grace_period_s']}`; {d['command']}).",
            "",
            "| Unary calls sent | OK | refused UNAVAILABLE (draining) | not accepted (port closed) "
            "| refused as overloaded | timed out | lost |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for phase, counts in d["by_phase"].items():
            out.append(
                f"| {phase.replace('_', ' ')} | {counts.get('ok', 0):,} | "
                f"{counts.get('refused_unavailable_draining', 0):,} | "
                f"{counts.get('not_accepted_port_closed', 0):,} | {counts.get('refused_overloaded', 0):,} | "
                f"{counts.get('timed_out', 0):,} | {counts.get('lost', 0):,} |"
            )
        logs = sorted(set(d["drain_finished_logs"]), key=str)
        finished = [r["drain_finished_s_after_sigterm"] for r in d["per_run"]]
        out += [
            "",
            f"Server log: `{'`, `'.join(str(x) for x in logs)}`, {_join(finished)} s after SIGTERM. "
            f"Client p99 before SIGTERM {_join(d['ok_p99_ms_before_sigterm'])} ms "
            '(from intended send time). "Not accepted" = the client could not connect any more (connection '
            'refused) once the server had closed its port; "refused as overloaded" = RESOURCE_EXHAUSTED '
            'or the server\'s "deadline cannot be met"; "timed out" = the client\'s deadline ran out; '
            '"lost" = any other failure (CANCELLED, reset, INTERNAL). Load average during the runs: '
            f"{_join(round(x, 1) for x in d['load_avg_1min'])}."
            + (
                " Lost, by status: " + "; ".join(f"{n} × `{k}`" for k, n in d["lost_by_status"].items()) + "."
                if d["lost_by_status"]
                else ""
            ),
        ]
    if b := s.get("bad_inputs"):
        out += [
            "",
            f"**Bad-input barrage** ({b['command']}, {b['seconds']} s). Corruptions, each applied to a real "
            "holdout row: NaN / ±inf / negative amounts, unknown or missing currency, country, MCC, channel, "
            "entry mode, missing timestamp or behaviour, out-of-range distance, a bad row at a random "
            "position of a `ScoreBatch`, empty and 4,097-row batches, an unknown model (NOT_FOUND), credit "
            "applications with negative income / NaN DTI / unknown purpose; on the Open Inference Protocol "
            "an unknown tensor name, FP64 instead of FP32, shape [N, 2], a missing tensor, an unknown "
            "category, a NaN, an unknown output, raw contents one byte short, malformed BYTES and 4,097 "
            "rows. "
            f"{len(b['kinds'])} kinds; health after the barrage: {b['health_after']}.",
        ]
        if b["unexpected_examples"]:
            out.append("Unexpected answers: " + "; ".join(str(e) for e in b["unexpected_examples"]))
    if v := s.get("overload"):
        cores = v["cores_busy_during_load"]
        windows = v["recovery"]["windows"]
        out += [
            "",
            f"**Overload** ({v['command']}). Sent {v['calls']:,} at {v['achieved_send_rate_per_s']:g}/s; "
            f"OK calls p50 {v['ok_latency_ms']['p50']} ms, p99 {v['ok_latency_ms']['p99']} ms from the "
            f"intended send time. Cores busy during the load: server {cores['server']}, generator "
            f"{cores['generator']} (of 2). Recovery probe windows (s after the last send: p99 ms): "
            + ", ".join(f"{w['at_s']}: {w['p99_ms']:.1f}" for w in windows[:8])
            + ". With a few dozen calls per window the p99 is in effect the window's maximum.",
        ]
    if i := s.get("invariance"):
        out += ["", f"**Batch invariance** ({i['command']}); probabilities compared as float64 with `==`."]
    return out


def render(results: dict[str, Any]) -> str:
    quick = " --quick" if results["quick"] else ""
    m = results["machine"]
    lines = [
        "## Reliability",
        "",
        f"Measured on commit `{results['commit']}` ({results['date_utc']} UTC) with `{COMMAND}{quick}` "
        f"({results['seconds']:.0f} s): `riskserve serve` as a subprocess on the bundled INT8 models, "
        "default settings unless named, and one grpc.aio client process. Generator and server share the "
        f"machine's {m['cpus']} cores (1-minute load average {m['load_avg_at_start']:.1f} at the start, "
        f"{m['load_avg_at_end']:.1f} at the end; other jobs "
        "running), so latencies are the shared machine's; the counts are what the figures are about. "
        "Raw figures: `benchmarks/reliability/results.json`."
        + (
            " Extra server settings: "
            + ", ".join(f"`{k}={v}`" for k, v in results["server_settings"].items())
            if results.get("server_settings")
            else ""
        ),
        "",
        *_summary(results["scenarios"]),
        *_details(results["scenarios"]),
        METHOD,
    ]
    return "\n".join(lines)
