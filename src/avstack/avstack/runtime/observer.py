"""A ROS node that watches the stack's outputs: trajectories, assessments and takeovers.

Used by ``avstack demo`` for its status line, by the benchmarks for latency,
and by the integration tests, which wait on its condition instead of sleeping.
"""

import threading
import time
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Path
from rclpy.node import Node
from std_msgs.msg import Bool

from stack_common import topics
from stack_common.assessment import msg_to_assessment
from stack_common.qos import LATCHED_QOS, PLAN_QOS, STATUS_QOS
from stack_common.takeover import TakeoverReason, msg_to_takeover
from stack_common.timeutil import stamp_to_ns


@dataclass
class Received:
    stamp_ns: int        # header stamp (= sensor stamp)
    receipt_ns: int      # node clock at receipt
    monotonic_s: float   # time.monotonic() at receipt


@dataclass
class TakeoverEvent:
    receipt_ns: int
    monotonic_s: float
    reasons: list[TakeoverReason]
    stamp_ns: int = 0    # header stamp: the critic's clock when it made the request


class StackObserver(Node):
    def __init__(self, name: str = 'stack_observer', **node_kwargs):
        super().__init__(name, **node_kwargs)
        self.trajectories: list[Received] = []
        self.takeovers: list[TakeoverEvent] = []
        self.takeover_active = False
        self.plan_score: float | None = None
        self.critic_state = 'unknown'
        self.missing_sensors: set[str] = set()   # as perception's latest status names them
        self.changed = threading.Condition()
        self.create_subscription(Path, topics.TRAJECTORY, self.on_trajectory, PLAN_QOS)
        self.create_subscription(DiagnosticArray, topics.TAKEOVER_REQUEST, self.on_takeover, LATCHED_QOS)
        self.create_subscription(Bool, topics.TAKEOVER_ACTIVE, self.on_active, LATCHED_QOS)
        self.create_subscription(DiagnosticArray, topics.ASSESSMENT, self.on_assessment, PLAN_QOS)
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self.on_diagnostics, STATUS_QOS)
        self.create_subscription(DiagnosticArray, topics.PERCEPTION_STATUS, self.on_perception_status, STATUS_QOS)

    def _now(self) -> tuple[int, float]:
        return self.get_clock().now().nanoseconds, time.monotonic()

    def on_trajectory(self, msg: Path) -> None:
        receipt_ns, monotonic_s = self._now()
        with self.changed:
            self.trajectories.append(Received(stamp_to_ns(msg.header.stamp), receipt_ns, monotonic_s))
            self.changed.notify_all()

    def on_takeover(self, msg: DiagnosticArray) -> None:
        receipt_ns, monotonic_s = self._now()
        stamp_ns, reasons = msg_to_takeover(msg)
        with self.changed:
            if reasons:
                self.takeovers.append(TakeoverEvent(receipt_ns, monotonic_s, reasons, stamp_ns))
            self.changed.notify_all()

    def on_active(self, msg: Bool) -> None:
        with self.changed:
            self.takeover_active = msg.data
            self.changed.notify_all()

    def on_assessment(self, msg: DiagnosticArray) -> None:
        self.plan_score = msg_to_assessment(msg).plan_score

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == 'critic/state':
                with self.changed:
                    self.critic_state = status.message
                    self.changed.notify_all()

    def on_perception_status(self, msg: DiagnosticArray) -> None:
        missing = {m for s in msg.status for kv in s.values if kv.key == 'missing' for m in kv.value.split(',') if m}
        with self.changed:
            self.missing_sensors = missing
            self.changed.notify_all()

    def wait_for(self, predicate, timeout_s: float) -> bool:
        """Block until ``predicate(self)`` holds (re-checked on every received message) or the timeout."""
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self), timeout_s)

    def latencies_ms(self, since_monotonic_s: float = 0.0) -> np.ndarray:
        with self.changed:
            return np.array([(r.receipt_ns - r.stamp_ns) / 1e6 for r in self.trajectories
                             if r.monotonic_s >= since_monotonic_s])

    def returned_stamps(self) -> set[int]:
        with self.changed:
            return {r.stamp_ns for r in self.trajectories}
