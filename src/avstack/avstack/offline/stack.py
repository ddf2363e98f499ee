"""The stack in one process over logged data: perception, planner and critic cores fed in stamp order.

:class:`OfflineStack` wires the three cores the way the three nodes wire
them over DDS (perception's tokens go to the planner, the plan, assessment
and sensor-loss report go to the critic, the critic watches the inputs and
ticks on its timer), but with the bag's time as every core's "now": a
message is received at its log time, the perception core is polled and the
critic ticks on a fixed grid of bag time, and a plan reaches the critic at
the time of the message that completed its sensor set. Nothing depends on
the wall clock or on thread timing, so the same bag, config and checkpoint
give the same trajectories, bit for bit.

:func:`decoded_inputs` turns bag messages into the cores' inputs (RGB
images, points, ego states); messages that do not decode are reported as
:class:`DecodeFailure` and skipped. ``avstack eval`` runs both over a bag;
dataset building and log mining reuse them.
"""

import copy
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from avstack.bag.codec import deserialize
from avstack.bag.reader import Bag, BagMessage
from avstack.bag.sensor_topics import SensorTopic, SensorTopics
from critic_monitor.monitor import CriticCore, lidar_topics
from critic_monitor.state_machine import Transition
from perception_llm.camera_encoder import camera_rgb
from perception_llm.pipeline import FrameInputs, FusedFrame, PerceptionCore
from perception_llm.weights import load_encoders
from planner.loading import load_planner
from planner.planning import Plan
from stack_common.boundary import ConversionError
from stack_common.camera_info import Intrinsics, camera_info_to_intrinsics
from stack_common.config import load_node_config
from stack_common.constants import NS_PER_S
from stack_common.intake import parse_cloud, parse_compressed_image, parse_image
from stack_common.odometry import EgoState, odometry_to_ego
from stack_common.pointcloud import LIDAR_CHANNELS, point_channels
from stack_common.timeutil import stamp_to_ns
from stack_common.tokens import TokenSet

STAGES = ('decode', 'perception', 'planner', 'critic')
# The critic calls a step may hold that return transitions (on_input and on_odometry do not).
TRANSITION_CALLS = ('on_lidar', 'tick')


# ------------------------------------------------------------------------------------------ decoding

@dataclass
class SensorInput:
    """One decoded sensor message: exactly one of ``rgb``, ``points``, ``ego`` or ``intrinsics`` is set."""

    sensor: SensorTopic
    stamp_ns: int                         # header stamp
    log_time_ns: int                      # receipt in the bag: the cores' "now"
    frame_id: str = ''                    # header frame: the frame policy places the points by it
    rgb: np.ndarray | None = None         # (H, W, 3) uint8, at the encoder's input size when one was given
    image_size: tuple[int, int] | None = None   # (width, height) of the camera image as recorded
    points: np.ndarray | None = None      # (N, 3) float32 in ``frame_id``
    intensity: np.ndarray | None = None   # (N,) float32
    radial_velocity: np.ndarray | None = None   # (N,) float32 m/s
    ego: EgoState | None = None
    intrinsics: Intrinsics | None = None  # a camera_info
    decode_ms: float = 0.0

    @property
    def kind(self) -> str:
        return self.sensor.key.split('/')[0]

    @property
    def name(self) -> str:
        return self.sensor.key.partition('/')[2]


@dataclass
class DecodeFailure:
    sensor: SensorTopic
    log_time_ns: int
    reason: str
    message: str


def decode(message: BagMessage, sensor: SensorTopic, camera_size: tuple[int, int] | None = None
           ) -> SensorInput | DecodeFailure:
    """One bag message decoded; cameras and lidars straight from their CDR bytes as the live nodes read them
    (:mod:`stack_common.intake`), a camera at ``camera_size`` (the encoder's input) when given, else in full."""
    start = time.perf_counter()
    try:
        if sensor.key.startswith('camera/'):
            raw = parse_compressed_image(message.data) if sensor.compressed else parse_image(message.data)
            item = SensorInput(sensor, raw.stamp_ns, message.log_time_ns, raw.frame_id)
            if camera_size is not None:
                item.rgb, item.image_size = camera_rgb(raw, *camera_size)
            else:
                item.rgb = raw.rgb()
        elif sensor.key.startswith('lidar/'):
            raw = parse_cloud(message.data)
            item = SensorInput(sensor, raw.stamp_ns, message.log_time_ns, raw.frame_id)
            item.points, channels = point_channels(raw.array(), LIDAR_CHANNELS)
            item.intensity, item.radial_velocity = channels.get('intensity'), channels.get('radial_velocity')
        else:
            msg = deserialize(message.data, message.type_name)
            item = SensorInput(sensor, stamp_to_ns(msg.header.stamp), message.log_time_ns, msg.header.frame_id)
            if sensor.key == 'odometry':
                item.ego = odometry_to_ego(msg)
            else:
                item.intrinsics = camera_info_to_intrinsics(msg)
    except ConversionError as error:
        return DecodeFailure(sensor, message.log_time_ns, error.reason, str(error))
    item.decode_ms = (time.perf_counter() - start) * 1e3
    return item


def decoded_inputs(bag: Bag, sensors: SensorTopics, start_ns: int | None = None,
                   camera_size: tuple[int, int] | None = None
                   ) -> Iterator[tuple[BagMessage, SensorInput | DecodeFailure]]:
    """``(raw message, decoded input or failure)`` for every sensor message, in log-time order; cameras at
    ``camera_size`` (:attr:`OfflineStack.camera_size`, as the live node decodes them) or in full."""
    by_topic = sensors.by_topic()
    for message in bag.messages(list(by_topic), start_ns=start_ns):
        yield message, decode(message, by_topic[message.topic], camera_size)


# ------------------------------------------------------------------------------------------- results

@dataclass
class FrameResult:
    """One fused token set and what came of it."""

    now_ns: int                           # bag time at which the set completed (and the plan was checked)
    frame: FusedFrame
    plan: Plan | None
    plan_error: str | None = None
    transitions: list[Transition] = field(default_factory=list)
    perception_ms: float = 0.0            # preprocessing + encoders
    planner_ms: float = 0.0
    critic_ms: float = 0.0

    @property
    def stamp_ns(self) -> int:
        return self.frame.tokens.stamp_ns


@dataclass
class CriticEvent:
    """Transitions of the critic not caused by a frame (timer ticks, inputs)."""

    now_ns: int
    transitions: list[Transition]


@dataclass
class Passthrough:
    """Something the caller handed to :meth:`OfflineStack.front` to get back in order from :meth:`back`."""

    now_ns: int
    payload: object


@dataclass
class _Step:
    """One ordered unit of work for the back half: a critic call or a frame (preprocessed, maybe planned)."""

    now_ns: int
    critic: tuple | None = None       # (method name, *args)
    inputs: FrameInputs | None = None
    perception_ms: float = 0.0
    tokens: TokenSet | None = None
    planned: bool = False
    plan: Plan | None = None
    plan_error: str | None = None
    planner_ms: float = 0.0
    passthrough: object = None


@dataclass
class OfflineConfig:
    perception: dict
    planner: dict
    critic: dict

    @classmethod
    def load(cls, config_path: str | Path | None = None, checkpoint: str | Path | None = None) -> 'OfflineConfig':
        """The three node configs from one parameter file (schema defaults without one)."""
        config = cls(load_node_config('perception_llm', 'perception_node', config_path),
                     load_node_config('planner', 'planner_node', config_path),
                     load_node_config('critic_monitor', 'critic_node', config_path))
        if checkpoint is not None:
            config.perception['checkpoint'] = config.planner['checkpoint'] = str(checkpoint)
        return config


class OfflineStack:
    """``stack.feed(input)`` in log-time order, then ``stack.finish(end_ns)``; each returns the results it caused.

    ``feed`` is ``back(front(input))``. As a pipeline, the stages may run on
    their own threads: ``front`` (perception's queues, sync and numpy
    preprocessing, the clock grid) returns ordered steps, ``encode`` (the
    encoders) and ``plan`` (the planner: a pure function of the tokens) fill
    in their frames, and ``back`` (the critic, which needs every input in
    order) must receive the steps in the order ``front`` made them; it runs
    whatever stage was skipped. Either way the results are the same.
    """

    def __init__(self, config: OfflineConfig, sensors: SensorTopics):
        self.config = config
        self.sensors = sensors
        torch.set_num_threads(max(config.perception['num_threads'], config.planner['num_threads']))
        encoders, perception_note = load_encoders(config.perception)
        self.perception = PerceptionCore(config.perception, encoders)
        # Cameras are decoded to the encoder's input size, as the live node does (decoded_inputs(camera_size=...)).
        self.camera_size = (self.perception.encoder_config.input_width, self.perception.encoder_config.input_height)
        self.planner, planner_note = load_planner(config.planner)
        self.notes = [n for n in (perception_note, planner_note) if n]
        self.route = config.planner['default_route']
        self.critic_config = critic_watching(config.critic, sensors)
        self._critic_lidar_topics = lidar_topics(self.critic_config)
        self.tick_ns = round(NS_PER_S / self.critic_config['timer_hz'])
        self.critic: CriticCore | None = None
        self._next_tick_ns: int | None = None
        self.decode_failures: Counter[str] = Counter()   # '<topic>/<reason>'

    # -- sequential use --------------------------------------------------------------------------

    def feed(self, item: 'SensorInput | DecodeFailure') -> list:
        """One bag message (decoded, or a failure), at its log time."""
        return self.back(self.front(item))

    def finish(self, end_ns: int) -> list:
        """Ticks and polls up to ``end_ns``, so a sensor set still waiting is emitted or dropped."""
        return self.back(self.front_finish(end_ns))

    # -- front half: perception queues and preprocessing, the clock ------------------------------

    def front(self, item: 'SensorInput | DecodeFailure | None', passthrough: object = None,
              now_ns: int | None = None) -> list[_Step]:
        """The ordered steps one input causes; ``passthrough`` comes back from :meth:`back` before them."""
        now = item.log_time_ns if item is not None else now_ns
        steps = self._advance(now)
        if passthrough is not None:
            steps.append(_Step(now, passthrough=passthrough))
        if item is None:
            return steps
        kind = item.sensor.key.split('/')[0]
        if isinstance(item, DecodeFailure):
            self.decode_failures[f'{item.sensor.topic}/{item.reason}'] += 1
            if kind == 'camera':  # the critic subscribes to cameras raw: a message arrived all the same
                steps.append(_Step(now, critic=('on_input', 'camera', item.sensor.topic, now)))
            return steps
        if kind == 'camera_info':
            try:
                self.perception.set_intrinsics(item.name, item.intrinsics)
            except ValueError:   # the node drops it with a warning; counted here
                self.decode_failures[f'{item.sensor.topic}/unusable'] += 1
            return steps
        if kind == 'camera':
            steps.append(_Step(now, critic=('on_input', 'camera', item.sensor.topic, now)))
            return steps + self._preprocess(
                self.perception.add_camera(item.name, item.stamp_ns, item.rgb, now, item.frame_id, item.image_size),
                now)
        if kind == 'lidar':
            steps += [_Step(now, critic=('on_lidar', name, item.points, item.stamp_ns, now, item.frame_id,
                                         item.radial_velocity))
                      for name in self._critic_lidars(item.sensor.topic)]
            return steps + self._preprocess(self.perception.add_lidar(
                item.name, item.stamp_ns, item.points, item.intensity, now, item.frame_id, item.radial_velocity), now)
        steps.append(_Step(now, critic=('on_odometry', item.ego, now)))
        self.perception.add_odometry(item.ego)
        return steps

    def front_finish(self, end_ns: int) -> list[_Step]:
        return self._advance(end_ns + 1) if self._next_tick_ns is not None else []

    def _advance(self, now_ns: int) -> list[_Step]:
        """Perception polls and critic ticks due before ``now_ns``, on a fixed grid of bag time."""
        if self._next_tick_ns is None:
            self._next_tick_ns = now_ns + self.tick_ns
            return [_Step(now_ns, critic=('start', now_ns))]
        if now_ns < self._next_tick_ns - self.tick_ns - NS_PER_S:   # time went back: restart the grid
            self._next_tick_ns = now_ns
        steps = []
        while self._next_tick_ns < now_ns:
            tick_ns = self._next_tick_ns
            steps += self._preprocess(self.perception.poll(tick_ns), tick_ns)
            steps.append(_Step(tick_ns, critic=('tick', tick_ns)))
            self._next_tick_ns += self.tick_ns
        return steps

    def _preprocess(self, synced_sets, now_ns: int) -> list[_Step]:
        steps = []
        for synced in synced_sets:
            start = time.perf_counter()
            inputs = self.perception.preprocess(synced)
            steps.append(_Step(now_ns, inputs=inputs, perception_ms=(time.perf_counter() - start) * 1e3))
        return steps

    # -- middle: encoders and planner (stateless, any thread) ------------------------------------

    def encode(self, steps: list[_Step]) -> list[_Step]:
        for step in steps:
            if step.inputs is not None and step.tokens is None:
                start = time.perf_counter()
                step.tokens = self.perception.encode(step.inputs)
                step.perception_ms += (time.perf_counter() - start) * 1e3
        return steps

    def plan(self, steps: list[_Step]) -> list[_Step]:
        for step in self.encode(steps):
            if step.tokens is not None and not step.planned:
                start = time.perf_counter()
                try:
                    step.plan = self.planner.plan(step.tokens, self.route)
                except ValueError as error:  # the planner node drops such a set with a warning, so does this
                    step.plan_error = str(error)
                step.planner_ms = (time.perf_counter() - start) * 1e3
                step.planned = True
        return steps

    def _critic_lidars(self, topic: str) -> list[str]:
        return [name for name, lidar_topic in self._critic_lidar_topics.items() if lidar_topic == topic]

    # -- back half: the critic ----------------------------------------------------------------------

    def back(self, steps: list[_Step]) -> list:
        results = []
        for step in self.plan(steps):
            if step.passthrough is not None:
                results.append(Passthrough(step.now_ns, step.passthrough))
            elif step.inputs is not None:
                results.append(self._frame(step))
            elif step.critic[0] == 'start':
                self.critic = CriticCore(self.critic_config, step.critic[1])
            else:
                method, *args = step.critic
                returned = getattr(self.critic, method)(*args)
                if method in TRANSITION_CALLS and returned:
                    results.append(CriticEvent(step.now_ns, returned))
        return results

    def _frame(self, step: _Step) -> FrameResult:
        now_ns = step.now_ns
        frame = FusedFrame(step.tokens, list(step.inputs.missing))
        result = FrameResult(now_ns, frame, step.plan, step.plan_error, perception_ms=step.perception_ms,
                             planner_ms=step.planner_ms)
        start = time.perf_counter()
        critic = self.critic
        if result.plan is not None:
            result.transitions += critic.on_trajectory(result.plan.trajectory, now_ns)
            result.transitions += critic.on_assessment(result.plan.assessment, now_ns)
        result.transitions += critic.on_sensor_loss(frame.missing, now_ns)
        result.critic_ms = (time.perf_counter() - start) * 1e3
        return result


def critic_watching(critic_config: dict, sensors: SensorTopics) -> dict:
    """The critic config with its watched topics set to the bag's sensor topics (names in the bag may differ)."""
    config = copy.deepcopy(critic_config)
    config['camera_topics'] = [s.topic for s in sensors.cameras.values()]
    if sensors.odometry is not None:
        config['odometry_topic'] = sensors.odometry.topic
    lidar_topics = [s.topic for s in sensors.lidars.values()]
    for name in config['lidars']:
        section = config['lidar'].setdefault(name, {})
        if name in sensors.lidars:
            section['topic'] = sensors.lidars[name].topic
        elif len(lidar_topics) == 1:
            section['topic'] = lidar_topics[0]
    return config
