"""A generator process: its own event loop and grpc.aio channel(s), sending its share of the load.

Open loop: every arrival is sent at its intended time whatever the server does, and its latency is timed
from that intended time (corrected) as well as from the moment it really left (uncorrected). How late the
generator itself was (beyond waiting for an in-flight slot, which is the server's back-pressure and so is
charged to the server) is recorded as send lag. Closed loop: `concurrency` callers send, wait, send again.
"""

import asyncio
import gc
import itertools
import multiprocessing.connection
import time
from dataclasses import dataclass

import grpc
import numpy as np

from loadtest.open_loop import departures, precise_timer_loop
from loadtest.plan import RequestPool, Schedule
from loadtest.recording import Progress, Recording, new_histogram, record_us
from loadtest.stream_lane import StreamItem, StreamLane

PROGRESS_EVERY_S = 0.5
LATE_STOP_S = 1.0  # arrivals not sent within this long after the schedule's end are dropped (and reported)
CHANNEL_OPTIONS = [
    ("grpc.use_local_subchannel_pool", 1),  # each channel its own connection
    ("grpc.max_send_message_length", 256 * 1024 * 1024),
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
]
# A DEADLINE_EXCEEDED this close to the timeout is the caller giving up; earlier, the server refused fast.
TIMEOUT_SHARE = 0.95


class StreamEndedError(Exception):
    """The server ended a stream before answering the message just written."""


@dataclass(frozen=True)
class WorkerSpec:
    worker: int
    target: str
    pools: tuple[RequestPool, ...]
    schedule: Schedule  # open loop: this worker's arrivals; closed loop: the mix sequence to cycle
    closed_loop: bool
    concurrency: int  # closed loop: this worker's callers
    timeout_s: float
    max_in_flight: int
    channels: int
    connect_timeout_s: float
    slice_s: float  # width of the time slices of the latency-over-time histograms


def worker_main(spec: WorkerSpec, results, start_conn: multiprocessing.connection.Connection) -> None:
    """Process entry point: connect, report ready, wait for the common start time, run, ship the recording."""
    try:
        with asyncio.Runner(loop_factory=precise_timer_loop) as runner:
            runner.run(_Generator(spec, results).run(start_conn))
    except Exception as exc:  # reported to the parent, which fails the run with it
        results.put(("error", spec.worker, f"{type(exc).__name__}: {exc}"))


class _Generator:
    def __init__(self, spec: WorkerSpec, results) -> None:
        self.spec = spec
        self.results = results
        self.recording = Recording()
        self.recording.slice_s = spec.slice_s
        self.recording.scheduled = 0 if spec.closed_loop else spec.schedule.measured_count
        self._bodies = [itertools.cycle(pool.bodies) for pool in spec.pools]
        self._progress_histogram = new_histogram()
        self._answered = 0
        self._errors = 0
        self._in_flight: asyncio.Semaphore | None = None

    async def run(self, start_conn) -> None:
        channels = [
            grpc.aio.insecure_channel(self.spec.target, options=CHANNEL_OPTIONS)
            for _ in range(self.spec.channels)
        ]
        try:
            for channel in channels:
                await asyncio.wait_for(channel.channel_ready(), self.spec.connect_timeout_s)
        except TimeoutError as exc:
            raise ConnectionError(
                f"cannot connect to {self.spec.target} within {self.spec.connect_timeout_s:g} s; "
                "is the server running there?"
            ) from exc
        self._unary = [[ch.unary_unary(p.method_path) for p in self.spec.pools] for ch in channels]
        self._stream = [[ch.stream_stream(p.method_path) for p in self.spec.pools] for ch in channels]
        # Its own full collections would pause the generator mid-run, and open-loop latency from the
        # intended send would charge that to the server: everything set up so far is frozen first.
        gc.collect()
        gc.freeze()
        self.results.put(("ready", self.spec.worker))
        start = await asyncio.get_running_loop().run_in_executor(None, start_conn.recv)
        if start is None:
            return
        cpu_start, wall_start = time.process_time(), time.monotonic()
        reporter = asyncio.get_running_loop().create_task(self._report_progress())
        if self.spec.closed_loop:
            await self._closed_loop(start)
        else:
            await self._open_loop(start)
        reporter.cancel()
        self._send_progress()
        self.recording.cpu_s = time.process_time() - cpu_start
        self.recording.wall_s = time.monotonic() - wall_start
        for channel in channels:
            await channel.close()
        self.results.put(("done", self.spec.worker, self.recording.encode()))

    # ---- open loop ----

    async def _open_loop(self, start: float) -> None:
        spec, schedule, rec = self.spec, self.spec.schedule, self.recording
        self._in_flight = asyncio.Semaphore(spec.max_in_flight)
        lanes = self._open_stream_lanes()
        tasks: set[asyncio.Task] = set()
        loop = asyncio.get_running_loop()
        offsets, calls = schedule.offsets_s.tolist(), schedule.calls.tolist()
        stop_at = start + schedule.warmup_s + schedule.measured_s + LATE_STOP_S
        async for departure in departures(offsets, start, self._in_flight, lambda now: now <= stop_at):
            index, intended = departure.index, departure.intended
            offset = offsets[index]
            measured = offset >= schedule.warmup_s
            slice_index = int((offset - schedule.warmup_s) / spec.slice_s)
            mix_index = calls[index]
            if measured:
                rec.sent += 1
                rec.slot_waits += departure.waited_for_slot
                record_us(rec.send_lag, departure.lag_s)
            if spec.pools[mix_index].streaming:
                lanes[index % len(lanes)][mix_index].submit(
                    StreamItem(next(self._bodies[mix_index]), intended, measured, slice_index, mix_index)
                )
            else:
                task = loop.create_task(self._unary_call(index, mix_index, intended, measured, slice_index))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks)
        for by_pool in lanes:
            for lane in by_pool.values():
                lane.close()
        all_lanes = [lane for by_pool in lanes for lane in by_pool.values()]
        await asyncio.gather(*(lane.drain() for lane in all_lanes))

    def _open_stream_lanes(self) -> list[dict[int, StreamLane]]:
        lanes = []
        for by_pool in self._stream:
            per_channel = {}
            for mix_index, pool in enumerate(self.spec.pools):
                if pool.streaming:
                    lane = StreamLane(by_pool[mix_index], self._stream_done, self.spec.timeout_s)
                    lane.start()
                    per_channel[mix_index] = lane
            lanes.append(per_channel)
        return lanes

    async def _unary_call(
        self, index: int, mix_index: int, intended: float, measured: bool, slice_index: int
    ) -> None:
        call = self._unary[index % len(self._unary)][mix_index]
        sent = time.monotonic()
        details = ""
        try:
            await call(next(self._bodies[mix_index]), timeout=self.spec.timeout_s)
            code = "OK"
        except grpc.aio.AioRpcError as error:
            code, details = error.code().name, error.details() or ""
        finally:
            self._in_flight.release()
        if measured:
            self._finish(mix_index, intended, sent, time.monotonic(), code, slice_index, details)

    def _stream_done(self, item: StreamItem, sent: float, done: float, code: str, details: str) -> None:
        self._in_flight.release()
        if code in ("OK", "DEADLINE_EXCEEDED") and done - sent > self.spec.timeout_s:
            # as with a unary call, the caller gave up at the deadline
            code, details = "DEADLINE_EXCEEDED", "no answer within the timeout"
            done = sent + self.spec.timeout_s
        if item.measured:
            self._finish(item.mix_index, item.intended, sent, done, code, item.slice_index, details)

    def _finish(
        self,
        mix_index: int,
        intended: float,
        sent: float,
        done: float,
        code: str,
        slice_index: int,
        details: str = "",
    ) -> None:
        rec = self.recording
        rec.codes[code] += 1
        (rec.ok_per_slice if code == "OK" else rec.errors_per_slice)[slice_index] += 1
        if code != "OK" and code not in rec.error_details:
            rec.error_details[code] = details[:300]
        if code == "OK":
            pool = self.spec.pools[mix_index]
            rec.calls[pool.label] += 1
            rec.rows_ok += pool.rows_per_request
            self._answered += 1
        else:
            self._errors += 1
        # latency covers answers and calls the caller waited out; fast refusals are errors only
        timed_out = code == "DEADLINE_EXCEEDED" and done - sent >= TIMEOUT_SHARE * self.spec.timeout_s
        rec.timeouts += timed_out
        if code == "OK" or timed_out:
            rec.record(slice_index, done - intended, done - sent)
            record_us(self._progress_histogram, done - intended)

    # ---- closed loop ----

    async def _closed_loop(self, start: float) -> None:
        spec = self.spec
        warmup_end = start + spec.schedule.warmup_s
        end = warmup_end + spec.schedule.measured_s
        sequence = spec.schedule.calls.tolist()
        await asyncio.gather(*(self._caller(k, sequence, warmup_end, end) for k in range(spec.concurrency)))

    async def _caller(self, caller: int, sequence: list[int], warmup_end: float, end: float) -> None:
        streams: dict[int, grpc.aio.StreamStreamCall] = {}
        channel = caller % len(self._unary)
        for step in itertools.count(caller * 7919):
            sent = time.monotonic()
            if sent >= end:
                break
            mix_index = sequence[step % len(sequence)]
            body = next(self._bodies[mix_index])
            code, details = "OK", ""
            try:
                if self.spec.pools[mix_index].streaming:
                    stream = streams.get(mix_index)
                    if stream is None or stream.done():
                        stream = streams[mix_index] = self._stream[channel][mix_index]()
                    await asyncio.wait_for(self._stream_round_trip(stream, body), self.spec.timeout_s)
                else:
                    await self._unary[channel][mix_index](body, timeout=self.spec.timeout_s)
            except grpc.aio.AioRpcError as error:
                code, details = error.code().name, error.details() or ""
            except TimeoutError:
                code, details = "DEADLINE_EXCEEDED", f"no answer within {self.spec.timeout_s:g} s"
                streams.pop(mix_index).cancel()
            except (StreamEndedError, asyncio.InvalidStateError):
                code, details = "UNKNOWN", "the server ended the stream without answering"
                streams.pop(mix_index, None)
            if sent >= warmup_end:
                slice_index = int((sent - warmup_end) / self.spec.slice_s)
                self._finish(mix_index, sent, sent, time.monotonic(), code, slice_index, details)
        for stream in streams.values():
            stream.cancel()

    @staticmethod
    async def _stream_round_trip(stream: grpc.aio.StreamStreamCall, body: bytes) -> None:
        await stream.write(body)
        if await stream.read() is grpc.aio.EOF:
            raise StreamEndedError

    # ---- progress ----

    async def _report_progress(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            self._send_progress()

    def _send_progress(self) -> None:
        progress = Progress(self.spec.worker, self._answered, self._errors, self._progress_histogram.encode())
        self._progress_histogram.reset()
        self._answered = self._errors = 0
        self.results.put(("progress", progress))


def closed_loop_sequence(weights: list[float], seed: int, length: int = 4096) -> np.ndarray:
    """The mix entry each closed-loop call uses, cycled through by the callers."""
    probabilities = np.asarray(weights, dtype=np.float64)
    rng = np.random.default_rng(seed)
    return rng.choice(len(probabilities), size=length, p=probabilities / probabilities.sum()).astype(np.int16)
