"""``avstack eval``: the stack over a rosbag, offline, deterministic, as fast as the CPU allows.

Reads the bag in log-time order, runs :class:`~avstack.offline.stack.OfflineStack`
(perception, planner and critic cores in this process, bag time as their
clock) and writes to ``--out``:

* ``output.mcap``: the stack's fused tokens, trajectories, assessments and
  takeover requests, at the bag time they were produced, and on
  ``/eval/input_bag`` the input bag they came from (path, and each storage
  file's name, size and xxh3-128 hash; open the output in Foxglove next to the
  input). With ``with_inputs`` the input sensor topics are copied in too, as
  recorded (a few GB for a minute of full-size camera and lidar);
* ``report.json``: frames, trajectories, distance, takeovers, km per
  takeover, open-loop error against the logged ego future, compute time per
  stage (see :mod:`avstack.offline.report`);
* ``paths.png``, ``takeovers.png``, ``latency.png``.

Everything but the compute times is a function of bag, config and
checkpoint: two runs write the same ``output.mcap`` byte for byte, and the
stack's outputs are the same bytes with and without the inputs.
"""

import json
import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import xxhash
from std_msgs.msg import String
from tqdm import tqdm

from avstack.bag.codec import serialize
from avstack.bag.reader import open_bag
from avstack.bag.sensor_topics import resolve_sensor_topics
from avstack.bag.writer import BagWriter
from avstack.offline.report import (
    OdometryTrack, PlannedPath, constant_velocity_plans, latency_summary, open_loop_errors, plot_latency, plot_paths,
    plot_takeover_timeline,
)
from avstack.offline.stack import (
    STAGES, DecodeFailure, FrameResult, OfflineConfig, OfflineStack, Passthrough, decoded_inputs,
)
from critic_monitor.state_machine import TakeoverState, Transition
from stack_common import topics
from stack_common.assessment import assessment_to_msg
from stack_common.memory import reuse_large_allocations
from stack_common.qos import LATCHED_QOS, PLAN_QOS, TOKENS_QOS
from stack_common.takeover import TakeoverReason, takeover_to_msg
from stack_common.tokens import tokens_to_cloud
from stack_common.trajectory import trajectory_to_path

OUTPUT_BAG = 'output.mcap'
REPORT = 'report.json'
PLOTS = ('paths.png', 'takeovers.png', 'latency.png')
CLOUD, PATH, DIAGNOSTICS = 'sensor_msgs/msg/PointCloud2', 'nav_msgs/msg/Path', 'diagnostic_msgs/msg/DiagnosticArray'
STRING = 'std_msgs/msg/String'
OUTPUT_TOPICS = (
    (topics.FUSED_TOKENS, CLOUD, TOKENS_QOS),
    (topics.TRAJECTORY, PATH, PLAN_QOS),
    (topics.ASSESSMENT, DIAGNOSTICS, PLAN_QOS),
    (topics.TAKEOVER_REQUEST, DIAGNOSTICS, LATCHED_QOS),
    (topics.EVAL_INPUT_BAG, STRING, LATCHED_QOS),
)
HASH_CHUNK = 8 << 20
PREFETCH = 8   # messages read, decoded and preprocessed ahead on the front thread
# The planner is a pure function of the tokens and the costliest stage: a second worker pays off once the
# other stages (reading and perception, the critic and output, the bag writer) have cores of their own.
PLANNER_WORKERS = 2 if (os.cpu_count() or 1) >= 4 else 1


@dataclass
class EvalRun:
    """What the run collected for the report."""

    frames: int = 0
    trajectories: int = 0
    plan_errors: dict[str, int] = field(default_factory=dict)
    plans: list[PlannedPath] = field(default_factory=list)
    odometry: list = field(default_factory=list)
    states: list[tuple[int, str]] = field(default_factory=list)
    takeovers: list[dict] = field(default_factory=list)
    first_stamp_ns: int | None = None     # earliest and latest header stamp of a decoded sensor message
    last_stamp_ns: int | None = None
    missing: dict[str, int] = field(default_factory=dict)
    inputs: dict[str, int] = field(default_factory=dict)
    samples_ms: dict[str, list[float]] = field(default_factory=lambda: {stage: [] for stage in STAGES})
    input_bag: dict = field(default_factory=dict)   # input_reference(): path, files with size and hash


# -------------------------------------------------------------------------------------------- the run

def evaluate(bag_path: Path, out: Path, config: OfflineConfig, mapping: dict[str, str] | None = None,
             plots: bool = True, progress: bool = False, with_inputs: bool = False) -> dict:
    """Run the stack over ``bag_path`` into ``out``; returns the report (also written to ``out/report.json``).
    ``with_inputs``: copy the input sensor messages into ``output.mcap`` too."""
    out = Path(out)
    reuse_large_allocations()
    with open_bag(bag_path) as bag:
        sensors = resolve_sensor_topics(bag, config.perception, mapping)
        stack = OfflineStack(config, sensors)
        out.mkdir(parents=True, exist_ok=True)
        for name in (OUTPUT_BAG, REPORT, *PLOTS):
            (out / name).unlink(missing_ok=True)
        collected = EvalRun(inputs={s.topic: 0 for s in sensors.all()})
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        writer = BagWriter.mcap_file(out / OUTPUT_BAG)
        hashing = ThreadPoolExecutor(1, thread_name_prefix='eval_input_hash')
        reference = hashing.submit(input_reference, bag)   # alongside the run: the files are read anyway
        try:
            if with_inputs:
                for sensor in sensors.all():
                    writer.add_topic(sensor.topic, sensor.type_name, bag.topics[sensor.topic].offered_qos)
            for topic, type_name, qos in OUTPUT_TOPICS:
                writer.add_topic(topic, type_name, [qos])
            _run(bag, sensors, stack, writer, collected, progress, with_inputs)
            collected.input_bag = reference.result()
            writer.write(topics.EVAL_INPUT_BAG, bag.start_ns,
                         serialize(String(data=json.dumps(collected.input_bag, sort_keys=True)), STRING))
        finally:
            hashing.shutdown(cancel_futures=True)
            writer.close()
        wall_s, cpu_s = time.perf_counter() - wall_start, time.process_time() - cpu_start
        report = build_report(bag, sensors, stack, collected, wall_s, cpu_s)
    if plots:
        track = OdometryTrack.from_states(collected.odometry)
        plot_paths(out / PLOTS[0], track, collected.plans, [t['stamp_ns'] for t in collected.takeovers])
        plot_takeover_timeline(out / PLOTS[1], bag.start_ns, bag.end_ns, collected.states, collected.takeovers)
        plot_latency(out / PLOTS[2], collected.samples_ms)
        report['plots'] = list(PLOTS)
    (out / REPORT).write_text(json.dumps(report, indent=2) + '\n')
    return report


def input_reference(bag) -> dict:
    """What identifies the input bag: its path and each storage file's name, size and xxh3-128 hash."""
    files = []
    for path in bag.files:
        digest = xxhash.xxh3_128()
        with open(path, 'rb') as stream:
            while chunk := stream.read(HASH_CHUNK):
                digest.update(chunk)
        files.append({'name': path.name, 'size': path.stat().st_size, 'xxh3_128': digest.hexdigest()})
    return {'path': str(Path(bag.path).resolve()), 'files': files}


def _front_half(bag, sensors, stack: OfflineStack):
    """Bag reading, decoding, perception: ordered steps, each batch after its message, encoded."""
    for message, item in decoded_inputs(bag, sensors, camera_size=stack.camera_size):
        yield stack.encode(stack.front(item, passthrough=(message, item)))
    yield stack.encode(stack.front_finish(bag.end_ns))


def _ordered_map(function, iterable, workers: int):
    """``map`` on ``workers`` threads, a bounded number of items in flight, results in input order."""
    if workers <= 1:
        yield from map(function, iterable)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix='eval_planner') as pool:
        pending: deque = deque()
        for item in iterable:
            pending.append(pool.submit(function, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _pipelined(iterator, name: str):
    """Run ``iterator`` on its own thread, a few items ahead, order kept (its exceptions re-raised here)."""
    items: queue.Queue = queue.Queue(maxsize=PREFETCH)
    done = object()
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in iterator:
                if not put(item):
                    return
            put(done)
        except BaseException as error:
            put(error)
        finally:
            close = getattr(iterator, 'close', None)
            if close is not None:
                close()   # stops the stages upstream of this one, if it was stopped early

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5.0)


def _run(bag, sensors, stack: OfflineStack, writer: BagWriter, collected: EvalRun, progress: bool,
         with_inputs: bool) -> None:
    bar = tqdm(total=round(bag.duration_s, 1), unit='s', disable=not progress, desc='eval',
               bar_format='{l_bar}{bar}| {n:.1f}/{total:.1f} s of bag [{elapsed}<{remaining}]')
    writer.write(topics.TAKEOVER_REQUEST, bag.start_ns, serialize(
        takeover_to_msg(bag.start_ns, TakeoverState.WAITING.value, []), DIAGNOSTICS))
    try:
        # Threads: reading to tokens, planning (on two workers where there are cores for them), then the
        # critic and the output here, in order (see OfflineStack).
        tokens = _pipelined(_front_half(bag, sensors, stack), 'eval_perception')
        for steps in _pipelined(_ordered_map(stack.plan, tokens, PLANNER_WORKERS), 'eval_planner'):
            for result in stack.back(steps):
                if isinstance(result, Passthrough):
                    _input(*result.payload, writer if with_inputs else None, collected)
                    bar.update(round((result.now_ns - bag.start_ns) / 1e9 - bar.n, 1))
                elif isinstance(result, FrameResult):
                    _frame(result, writer, collected)
                    _transitions(result.transitions, result.now_ns, writer, collected)
                else:
                    _transitions(result.transitions, result.now_ns, writer, collected)
    finally:
        bar.close()


def _input(message, item, writer: BagWriter | None, collected: EvalRun) -> None:
    if writer is not None:   # --with-inputs
        writer.write(message.topic, message.log_time_ns, message.data)
    collected.inputs[message.topic] += 1
    if not isinstance(item, DecodeFailure):
        if collected.first_stamp_ns is None:
            collected.first_stamp_ns = collected.last_stamp_ns = item.stamp_ns
        collected.first_stamp_ns = min(collected.first_stamp_ns, item.stamp_ns)
        collected.last_stamp_ns = max(collected.last_stamp_ns, item.stamp_ns)
        collected.samples_ms['decode'].append(item.decode_ms)
        if item.ego is not None:
            collected.odometry.append(item.ego)


def _frame(result: FrameResult, writer: BagWriter, collected: EvalRun) -> None:
    now = result.now_ns
    collected.frames += 1
    for sensor in result.frame.missing:
        collected.missing[sensor] = collected.missing.get(sensor, 0) + 1
    writer.write(topics.FUSED_TOKENS, now, serialize(tokens_to_cloud(result.frame.tokens), CLOUD))
    collected.samples_ms['perception'].append(result.perception_ms)
    collected.samples_ms['critic'].append(result.critic_ms)
    if result.plan is None:
        collected.plan_errors[result.plan_error] = collected.plan_errors.get(result.plan_error, 0) + 1
        return
    collected.trajectories += 1
    collected.samples_ms['planner'].append(result.planner_ms)
    trajectory = result.plan.trajectory
    writer.write(topics.TRAJECTORY, now, serialize(trajectory_to_path(trajectory), PATH))
    writer.write(topics.ASSESSMENT, now, serialize(assessment_to_msg(result.plan.assessment), DIAGNOSTICS))
    collected.plans.append(PlannedPath(trajectory.stamp_ns, now, trajectory.t_s, trajectory.xy))


def _transitions(transitions: list[Transition], now_ns: int, writer: BagWriter, collected: EvalRun) -> None:
    for transition in transitions:
        collected.states.append((transition.stamp_ns, transition.state.value))
        active = transition.state == TakeoverState.TAKEOVER_REQUESTED
        if not active and transition.previous not in (TakeoverState.TAKEOVER_REQUESTED, TakeoverState.WAITING):
            continue  # as the critic node: requests, their withdrawal and the end of start-up are published
        reasons = [TakeoverReason(r.check, r.message, r.value, r.threshold) for r in transition.reasons] \
            if active else []
        writer.write(topics.TAKEOVER_REQUEST, now_ns,
                     serialize(takeover_to_msg(transition.stamp_ns, transition.state.value, reasons), DIAGNOSTICS))
        if active and transition.previous != TakeoverState.TAKEOVER_REQUESTED:  # a new request, not an update
            collected.takeovers.append({'stamp_ns': transition.stamp_ns, 'reasons': [
                {'check': r.check, 'message': r.message, 'value': r.value, 'threshold': r.threshold}
                for r in reasons]})


def build_report(bag, sensors, stack: OfflineStack, collected: EvalRun, wall_s: float, cpu_s: float) -> dict:
    track = OdometryTrack.from_states(collected.odometry)
    distance_km = track.distance_m() / 1000.0 if sensors.odometry is not None else None
    for takeover in collected.takeovers:
        takeover['time_s'] = round((takeover['stamp_ns'] - bag.start_ns) / 1e9, 3)
    errors = open_loop_errors(track, collected.plans)
    errors['constant_velocity'] = {k: v for k, v in open_loop_errors(
        track, constant_velocity_plans(track, collected.plans)).items() if k != 'samples'}
    decode_errors = dict(sorted(stack.decode_failures.items()))
    # The drive's duration is what its sensors stamped, not how long recording took: a lockstep simulator writes
    # 30 s of sim time in a few seconds of wall time.
    duration_s = ((collected.last_stamp_ns - collected.first_stamp_ns) / 1e9 if collected.first_stamp_ns is not None
                  else bag.duration_s)
    return {
        'bag': str(bag.path),
        'input_bag': collected.input_bag,
        'storage': bag.storage,
        'ros_distro': bag.ros_distro,
        'topics': {s.key: s.topic for s in sensors.all()},
        'inputs': collected.inputs,
        'checkpoint': stack.config.planner['checkpoint'] or 'default',
        'notes': stack.notes,
        'frames': collected.frames,
        'trajectories': collected.trajectories,
        'plan_errors': collected.plan_errors,
        'missing_sensors': collected.missing,
        'duration_s': round(duration_s, 3),
        'bag_duration_s': round(bag.duration_s, 3),
        'distance_km': round(distance_km, 4) if distance_km is not None else None,
        'takeovers': collected.takeovers,
        'km_per_takeover': round(distance_km / len(collected.takeovers), 4)
        if collected.takeovers and distance_km is not None else None,
        'ade_m': errors['ade_m'],
        'fde_m': errors['fde_m'],
        'open_loop_samples': errors['samples'],
        'constant_velocity_ade_m': errors['constant_velocity']['ade_m'],
        'constant_velocity_fde_m': errors['constant_velocity']['fde_m'],
        'decode_errors': sum(decode_errors.values()),
        'decode_errors_by_topic': decode_errors,
        'compute_ms': latency_summary(collected.samples_ms),
        'wall_s': round(wall_s, 3),
        'real_time_factor': round(duration_s / wall_s, 3) if wall_s > 0 else None,
        'cpu_s_per_bag_s': round(cpu_s / duration_s, 3) if duration_s > 0 else None,
        'plots': [],
    }
