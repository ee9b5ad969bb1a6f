"""The markdown section written to docs/reliability.md (and the lead's copy of its table)."""

import re
from collections.abc import Iterable
from typing import Any

COMMAND = ".venv/bin/python -m benchmarks.reliability"
FINDINGS = """
### What the figures found

- **Memory grew about 7 MiB a minute, under load and idle alike**: the rolling latency window
  (server/metrics/latency_window.py) gave every (model, method) a new 216 KiB HDR histogram per 10 s slice
  and dropped the expired one into a reference cycle (the library's histogram and its encoder point at
  each other) that only a full garbage collection frees, which a server with a large old generation
  rarely runs. tracemalloc snapshots over a 60 s run at 150 calls/s had one growing site,
  `new_hdr_histogram` under `_prepare_next_slices` (7 MB); object counts by type grew by nothing per
  call: the "0.9 KB per call" of the earlier soak was this, per minute. Now the histograms are acyclic
  (freed at once), a key's slices are allocated once up front and the expired ones reused: see the soak
  row; `tests/e2e/test_memory_growth.py` guards the per-call slope (under 150 B per call over 20,000
  calls) and `tests/metrics/test_window_memory.py` the reuse, with the garbage collector off.
- **The first minute**: the load generator's own first full collections (70 ms measured in the benchmark
  client, in the 5 s window of a 74 ms maximum; they walk the pandas frames the requests were built from)
  paused it mid-run, and
  latency from the intended send charges such a pause to the server; the generators (this benchmark and
  `riskserve loadtest`'s workers) now collect and freeze what they set up before sending. On the server,
  no gen-2 collection ran in the first two minutes of a warm start with or without `startup_gc_freeze`
  (its `event=gc_stats` line at shutdown; the first-minute table); the freeze stays, a 50-100 ms
  collection once before SERVING, so no later full collection walks the startup heap. On the shared
  machine either minute can be the one other jobs disturb: read each ratio beside the "other jobs"
  column (5-second windows, with the CPU other jobs took, are in results.json,
  `per_5s_p99_max_ms_other_jobs_cores`).
- **Faults**: see the fault rows. A batcher fault now fails its calls in milliseconds and the model serves
  on; a hung ONNX Runtime call turns `liveness` NOT_SERVING after `watchdog_stall_s` and its calls are
  refused at once from then on; calls gRPC core sheds are CANCELLED and in no server metric.
- **Faults at startup**: a scrambled model.onnx used to be served (as issue 14 reported it): in FP32 with
  verdict `failed`, holdout ROC-AUC 0.50 instead of 0.9565, 17 of 17 known frauds approved, only
  `riskserve_model_fp32_fallback` saying anything. Now its SHA-256 is checked against the config's
  `integrity.model_sha256` before anything reads it, and the FP32 holdout ROC-AUC the gate measures against
  `integrity.holdout_roc_auc`: the model is kept out (UNAVAILABLE naming the file and both digests, health
  `model/fraud` NOT_SERVING, `riskserve_model_unavailable{reason="integrity"}`), never quantized or served,
  and the other model serves. A damaged cache entry (see the rows) is named in `event=cache_corrupt` and
  rebuilt, including one whose manifest was rewritten to match (a `bogus` verdict used to end in exit 1
  naming no file; a garbled INT8 file is now caught when ONNX Runtime refuses it). A cache directory that
  cannot be written used to be a `Permission denied` traceback on a cold start: the model now serves,
  quantized for that process only, with one `event=cache_unwritable` warning naming the directory.
- **Large messages**: 48 concurrent 16 MiB `Score` calls used to take a fresh server from 227 MiB to a
  1.19 GiB peak. gRPC core now refuses a message over `max_message_bytes` (4 MiB, from 16) from its length
  prefix, before holding it (see the rows); a large request (64 KiB or more) holds its bytes in a budget,
  `max_request_bytes_in_flight`, from before it is parsed until its call ends, the excess refused
  RESOURCE_EXHAUSTED unparsed (`reason="memory_budget"`); and glibc's mmap threshold is fixed at 128 KiB
  (`malloc_mmap_threshold_kb`), so freed large buffers go back to the system (48 x 15 MiB with glibc's
  adjusting threshold: 2.2 GiB peak; fixed: 1.0 GiB, both before the 4 MiB limit; the same burst as
  `--only large_messages --server-setting max_message_bytes=16777216 --server-setting
  malloc_mmap_threshold_kb=0`, measured side by side in one ad-hoc run). What the budget cannot
  bound: gRPC core holds each call it is receiving up to `max_message_bytes` before Python sees it.
- **Overload at `59fa103`**: the excess ended CANCELLED by gRPC core (915), none RESOURCE_EXHAUSTED (the
  previous release refused all of it at the door). That commit runs a fast 256-row batch on the event loop
  (the bulk hand-off change, worth 1.2-1.3x rows/s at one caller), and under overload the loop then turned
  too slowly to take calls from core and refuse them. Fixed after this run: a big batch runs inline only
  when nothing waits behind it (`d202957`); `--only overload` at `7207145`, with other jobs using the
  cores: 800 RESOURCE_EXHAUSTED, 658 CANCELLED, 833 OK. Not yet measured on a quiet machine.
- **The soak's RSS** steps once, 355 → 372 MiB between 30 and 60 s, as the live INT8-vs-FP32 check's
  rolling window fills, and is flat from 60 s to the end of the run; the same server with
  `live_check_sample_rate=0` (a 150 s soak) was 315 → 323 MiB at 30 / 60 s and flat after. The servers of
  this run also imported scikit-learn (~40 MiB each): found here, fixed after the run (`f93e2b3`).
"""

METHOD = """
### How these are measured

`benchmarks/reliability/` starts `riskserve serve` with `RISKSERVE_*` settings on free 127.0.0.1 ports. By
default it runs the committed `HEAD` exported to the work folder (`--source head`), so uncommitted edits
in the checkout do not leak into the figures; `--source worktree` runs the installed checkout instead. The
quantization cache lives in the work folder (`--work-dir`, default `/tmp/riskserve-reliab`), so only the
first run quantizes. `--quick` shortens every scenario (about 10 minutes; the soak 2 minutes instead of 10,
`--soak-s` to choose); `--only drain,overload` picks scenarios; `--server-setting workers=2` passes any
server setting to every server started; `--drain-runs N` repeats the drain on fresh servers; `--source
COMMIT` runs an earlier commit (a baseline). Counts are exact; times depend on the shared machine.

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
- **Soak**: `benchmarks/reliability/soak.py`, a fresh server; RSS of its processes every 30 s; the
  growth is from the first sample after the warm-up to the last one under load, the slope a least-squares
  fit over those samples.
- **First minute**: `benchmarks/reliability/first_minute.py`, each start a fresh server: cold (empty
  quantization cache), warm, and warm with `startup_gc_freeze=false`; the load starts the moment health
  says SERVING. The load generator collects and freezes its own setup objects first (its own full GC
  paused it 70 ms mid-run once, which open-loop latency charges to the server).
- **Faults**: `benchmarks/reliability/faults.py`; the batcher fault and the hung call are injected by
  `benchmarks/reliability/fault_server.py` (benchmark code wrapping the CLI; the server has no fault hooks).
- **Faults at startup**: `benchmarks/reliability/startup_faults.py`, one fresh server per case on copies
  of the bundled models and of fraud's warm cache entry, the fault made before it starts; then the health
  of the server and of each model, one fraud `Score`, and the log events. The read-only and full caches are
  a read-only bind mount and a 4 KiB tmpfs (root only; otherwise the row says skipped).
- **Large messages**: `benchmarks/reliability/large_messages.py`, a fresh server: 48 concurrent `Score`
  calls over 4 channels, each a holdout transaction padded by its id to 15 MiB (over `max_message_bytes`)
  and then to 3.5 MiB (under it); the server's RSS every 5 ms.
"""


def _gen2(stats: str | None) -> str:
    found = re.search(r"gen2_collections=(\d+) gen2_longest_ms=([\d.]+)", stats or "")
    return f"{found[1]}, {found[2]}" if found else "-"


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
    rows += _soak_and_start_rows(s)
    rows += _fault_rows(s.get("faults") or {})
    rows += _startup_fault_rows((s.get("startup_faults") or {}).get("cases") or {})
    rows += _large_message_rows(s.get("large_messages") or {})
    if i := s.get("invariance"):
        a, c = i["in_score_batch_vs_single"], i["concurrent_unary_vs_single"]
        rows.append(
            f"| Batch invariance: {i['transactions']} holdout transactions | "
            f"**{a['differing']}** differ inside `ScoreBatch` (positions {i['batch_positions']['min']}-"
            f"{i['batch_positions']['max']}), **{c['differing']}** as concurrent unary calls "
            f"micro-batched with others, vs one-by-one `Score` (bit-exact comparison) | 0 |"
        )
    return rows


def _soak_and_start_rows(s: dict[str, Any]) -> list[str]:
    rows = []
    if k := s.get("soak"):
        rows.append(
            f"| Soak: mixed open loop at {k['rate_per_s']:g}/s for {k['load_s']:g} s, then {k['idle_s']:g} s "
            f"idle | RSS after the {k['warmup_s']:g} s warm-up {_mib(k['rss_after_warmup_kb'])} → "
            f"{_mib(k['rss_end_of_load_kb'])} at the end of the load "
            f"(**{k['growth_after_warmup_pct']:+.1f} %**), slope {k['slope_under_load_kib_per_min']:+.0f} "
            f"KiB/min ({k['bytes_per_call']:+.0f} B per call); idle {k['slope_idle_kib_per_min']:+.0f} "
            f"KiB/min; {k['calls']:,} calls, {k['errors']:,} not OK | "
            f"within {k['goal_growth_pct']:g} % after warm-up |"
        )
    if f := s.get("first_minute"):
        parts = []
        for start in f["starts"]:
            first, steady = start["first"], start["steady"]
            parts.append(
                f"{start['start']}: {first['p999']} vs {steady['p999']} ms "
                f"(**{start['p999_first_over_steady']}x**; other jobs {start['other_jobs_cores']['first']} / "
                f"{start['other_jobs_cores']['steady']} cores)"
            )
        rows.append(
            f"| First minute after a start: p99.9 of the first {f['first_s']:g} s vs the next "
            f"{f['steady_s']:g} s, mixed open loop at {f['rate_per_s']:g}/s from SERVING | "
            + "; ".join(parts)
            + " | within 2x |"
        )
    return rows


def _fault_rows(f: dict[str, Any]) -> list[str]:
    rows = []
    if k := f.get("worker_kill"):
        rows.append(
            f"| Fault: kill -9 of one worker (`workers=2`, unary `Score` at {k['rate_per_s']:g}/s over "
            f"{k['channels']} connections) | supervisor: `{k['supervisor_log']}`, exit {k['exit_status']} "
            f"{k['kill_to_exit_s']} s after the kill; {_counts(k['outcomes'])} of {k['calls']:,}; started "
            f"again (as the orchestrator would), SERVING {k['exit_to_serving_again_s']} s after the exit, "
            f"every call OK again {k['kill_to_all_ok_s']} s after the kill | as documented: the replica "
            "drains and exits 1 |"
        )
    if b := f.get("batcher_fault"):
        rows.append(
            "| Fault: one exception where a batch is concatenated (the wedge) | "
            f"{_counts(b['outcomes'])}; failed calls answered within {b['failed_answered_within_ms']} ms, "
            f"every call OK again {b['first_failure_to_all_ok_s']} s after the first failure; model/fraud "
            f"health: {', '.join(b['model_health_seen'])}; `{'`, `'.join(b['server_log'])}` | failed fast, "
            "recovered (before: every later call waited out its deadline, health SERVING) |"
        )
    if h := f.get("hung_inference"):
        rows.append(
            "| Fault: one ONNX Runtime call hangs 15 s (`watchdog_stall_s=3`) | "
            f"liveness: {' → '.join(h['liveness_seen'])}, NOT_SERVING "
            f"{h['first_failed_call_to_liveness_not_serving_s']} s after the first failed call, for "
            f"{h['liveness_not_serving_for_s']} s; {_counts(h['outcomes'])} | liveness fails within the "
            "watchdog's period, then fast refusals |"
        )
    if g := f.get("grpc_shed"):
        rows.append(
            f"| Fault: {g['burst']:,} concurrent unary `Score` calls at once | client: "
            f"{_counts(g['client_codes'])}; the server's metrics counted "
            f"{_counts(g['server_counted_by_code'])}: "
            f"**{g['not_in_any_server_metric']:,} calls in no server metric** (gRPC core shed them past "
            "`max_pending_rpcs`, CANCELLED) | counted on the client |"
        )
    return rows


STARTUP_FAULTS = {
    "scrambled_model": (
        "100 bytes of fraud's model.onnx scrambled",
        "fraud never served (UNAVAILABLE naming the file), credit serves",
    ),
    "flipped_int8": ("16 bytes of fraud's cached INT8 file flipped", "named, rebuilt, INT8 served"),
    "truncated_report": ("fraud's cached report.json truncated", "named, rebuilt, INT8 served"),
    "missing_manifest": ("fraud's cache manifest deleted", "named, rebuilt, INT8 served"),
    "int8_garbage_matching_manifest": (
        "fraud's cached INT8 file garbled, manifest checksum made to match",
        "named, rebuilt, INT8 served",
    ),
    "bogus_verdict_matching_manifest": (
        "fraud's cached verdict `bogus`, manifest checksum made to match",
        "named, rebuilt, INT8 served",
    ),
    "read_only_cache": ("cold start, cache on a read-only mount", "serves, one warning naming the directory"),
    "full_cache": ("cold start, cache on a full (4 KiB) tmpfs", "serves, one warning naming the directory"),
    "cache_under_a_file": ("cold start, cache path under a regular file", "serves, one warning naming it"),
}


def _large_message_rows(scenario: dict[str, Any]) -> list[str]:
    rows = []
    for key, goal in (
        ("over_limit", "refused before it is held, memory flat"),
        ("under_limit", "peak under the Deployment's 1 GiB limit"),
    ):
        if (b := scenario.get(key)) is None:
            continue
        rows.append(
            f"| Large messages: {b['calls']} concurrent `Score` calls of {b['message_bytes'] / 2**20:g} MiB "
            f"each | {_counts(b['outcomes'])}; RSS {b['rss_mib_before']:.0f} MiB → peak "
            f"**{b['rss_mib_peak']:.0f} MiB** → {b['rss_mib_after']:.0f} MiB, {b['seconds']:g} s | {goal} |"
        )
    return rows


def _startup_fault_rows(cases: dict[str, Any]) -> list[str]:
    rows = []
    for name, (fault, goal) in STARTUP_FAULTS.items():
        if (c := cases.get(name)) is None:
            continue
        if "skipped" in c:
            measured = f"skipped: {c['skipped']}"
        elif "start_error" in c:
            measured = f"did not start (exit {c['exit_status']}): `{c['start_error'][-200:]}`"
        else:
            health = ", ".join(f"{k} {v}" for k, v in c.get("health", {}).items())
            logged = "; ".join(f"`{line[:200]}`" for line in c["log"]) or "nothing logged"
            measured = (
                f"health: {health}; fraud Score: `{c.get('fraud_score')}`; log: {logged}; "
                f"event=serving after {c['seconds_to_serving_line']} s; exit {c['exit_status']}"
                + ("; **a traceback**" if c["traceback"] else "")
            )
        rows.append(f"| Fault at startup: {fault} | {measured} | {goal} |")
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
    out += _new_details(s)
    return out


def _new_details(s: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if k := s.get("soak"):
        series = ", ".join(f"{t:g} s: {_mib(kb)}" for t, kb in k["rss_kb"])
        windows = ", ".join(str(w["p99_ms"]) for w in k["latency_windows"])
        out += [
            "",
            f"**Soak** ({k['command']}). RSS: {series}. Client p99 per {k['sample_s']:g} s window (ms, from "
            f"the intended send): {windows}.",
        ]
    if f := s.get("first_minute"):
        out += [
            "",
            f'**First minute** ({f["command"]}). Latency in ms from the intended send; "other jobs" is '
            "the CPU the rest of the shared machine used meanwhile (cores of 2).",
            "",
            "| Start | startup s | first: p50 / p99 / p99.9 / max | steady: p50 / p99 / p99.9 / max "
            "| p99.9 ratio | other jobs, cores (first / steady) | server GC pauses ≥ 10 ms "
            "| server gen-2 collections, longest ms | generator's longest GC pause by generation, ms |",
            "|---|---:|---|---|---:|---|---|---|---|",
        ]
        for st in f["starts"]:
            a, b, gc = st["first"], st["steady"], st["gc_pauses_10ms_or_more"]
            out.append(
                f"| {st['start']} | {st['startup_s']} | {a['p50']} / {a['p99']} / {a['p999']} / {a['max']} | "
                f"{b['p50']} / {b['p99']} / {b['p999']} / {b['max']} | {st['p999_first_over_steady']} | "
                f"{st['other_jobs_cores']['first']} / {st['other_jobs_cores']['steady']} | "
                f"{gc['count']} (longest {gc['longest_ms']}) | {_gen2(st.get('server_gc_stats'))} | "
                f"{' / '.join(str(x) for x in st['generator_gc_longest_ms'])} |"
            )
    if k := (s.get("faults") or {}).get("worker_kill"):
        out += [
            "",
            f"**Worker killed** ({k['command']}).",
            "",
            "| Calls sent | " + " | ".join(sorted({o for p in k["by_phase"].values() for o in p})) + " |",
            "|---|" + "---:|" * len({o for p in k["by_phase"].values() for o in p}),
        ]
        names = sorted({o for p in k["by_phase"].values() for o in p})
        for phase, counts in k["by_phase"].items():
            out.append(f"| {phase} | " + " | ".join(f"{counts.get(n, 0):,}" for n in names) + " |")
    if g := (s.get("faults") or {}).get("grpc_shed"):
        out += [
            "",
            f"**gRPC core shedding** ({g['command']}). What an operator can see of the shed calls: "
            "nothing in riskserve's metrics (they never reach Python, so the server counts only the calls it "
            "answered) and nothing in its log; the clients see CANCELLED. Count them on the client (the "
            "load tester reports calls by code) and compare the clients' call counts with "
            "`riskserve_request_duration_seconds_count`: the difference is what gRPC core shed.",
        ]
    for name in ("batcher_fault", "hung_inference"):
        if x := (s.get("faults") or {}).get(name):
            out += ["", f"**{name.replace('_', ' ').capitalize()}** ({x['command']})."]
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
        FINDINGS,
        METHOD,
    ]
    return "\n".join(lines)
