"""planner_node: fused tokens in, ``nav_msgs/Path`` and self-assessment out.

Parameters: ``planner/schema/planner_node.schema.json``. The model runs on a
worker thread that always takes the newest token set; sets that were replaced
before the worker got to them are counted as stale drops. The token sets come
from ``/perception/fused_tokens``, or in memory from perception in the same
process (``planner.driving_process``), which then plans on perception's thread
right after each set: no hand-over, no stale drops.
"""

import threading

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Path
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import String

from planner.loading import load_planner
from stack_common import topics
from stack_common.assessment import assessment_to_msg
from stack_common.boundary import BoundaryGuard
from stack_common.constants import DIAGNOSTICS_PERIOD_S, WARN_THROTTLE_S
from stack_common.diagnostics import OK, WARN, diagnostic_array, make_status
from stack_common.node_main import run_node
from stack_common.qos import PLAN_QOS, STATUS_QOS, TOKENS_QOS
from stack_common.ros_params import declare_node_config
from stack_common.tokens import TokenSet, cloud_to_tokens
from stack_common.trajectory import trajectory_to_path



class PlannerNode(Node):
    def __init__(self, tokens_in_memory: bool = False, **node_kwargs):
        """``tokens_in_memory``: composed with perception in one process (``planner.driving_process``), which
        hands over each token set with :meth:`accept`; no subscription to the tokens topic then."""
        super().__init__('planner_node', **node_kwargs)
        config = declare_node_config(self, 'planner')
        # Publishers first: subscribers (the critic, a recorder) match while the model loads, so the first plan,
        # which follows the publisher's creation at once when tokens are waiting, is not lost to them.
        self.path_pub = self.create_publisher(Path, topics.TRAJECTORY, PLAN_QOS)
        self.assessment_pub = self.create_publisher(DiagnosticArray, topics.ASSESSMENT, PLAN_QOS)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, STATUS_QOS)
        torch.set_num_threads(config['num_threads'])
        self.core, note = load_planner(config)
        if note:
            self.get_logger().warning(note)
        self.route = config['default_route']
        self.counters = {'received': 0, 'planned': 0, 'dropped_stale': 0, 'rejected': 0, 'internal_error': 0,
                         'unknown_route': 0}
        self.forward_ms: list[float] = []
        self.boundary = BoundaryGuard(self)   # token sets that do not decode: dropped/tokens/<reason>

        if not tokens_in_memory:
            self.create_subscription(PointCloud2, topics.FUSED_TOKENS, self.boundary.guard('tokens', self.on_tokens),
                                     TOKENS_QOS)
        self.create_subscription(String, config['route_topic'], self.boundary.guard('route', self.on_route), PLAN_QOS)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self.publish_diagnostics)

        self._newest = None
        self._wake = threading.Condition()   # guards _newest and counters; notified on every change
        self._stopping = False
        # Composed, the planner plans on the thread that hands it the tokens, right after perception: a worker
        # thread would contend with perception's for the GIL at every one of the model's small operations.
        self._worker = None if tokens_in_memory else threading.Thread(
            target=self.run_worker, name='planner_worker', daemon=True)
        if self._worker is not None:
            self._worker.start()
        cfg = self.core.model.cfg
        self.get_logger().info(
            f'{self.core.source}: d_model {cfg.d_model}, {cfg.n_layers} layers, {cfg.n_modes} modes x '
            f'{cfg.horizon} waypoints, on {config["device"]} ({config["dtype"]}); '
            f'{topics.FUSED_TOKENS} -> {topics.TRAJECTORY}')

    def on_tokens(self, msg: PointCloud2) -> None:
        self.accept(cloud_to_tokens(msg))

    def accept(self, tokens: TokenSet) -> None:
        """The newest token set, for the worker; one it had not taken yet counts as a stale drop (any thread).
        Composed (no worker), the set is planned and the plan published before this returns."""
        if self._worker is None:
            self._count('received')
            self.plan_and_publish(tokens)
            return
        with self._wake:
            self.counters['received'] += 1
            if self._newest is not None:
                self.counters['dropped_stale'] += 1
            self._newest = tokens
            self._wake.notify_all()

    def on_route(self, msg: String) -> None:
        if msg.data not in self.core.route_index:
            self._count('unknown_route')
            self.get_logger().warning(f'unknown route command {msg.data!r}; keeping {self.route!r}',
                                      throttle_duration_sec=WARN_THROTTLE_S)
            return
        self.route = msg.data

    def run_worker(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._newest is not None or self._stopping)
                if self._stopping:
                    return
                tokens, self._newest = self._newest, None
            if not self.plan_and_publish(tokens):
                return   # Ctrl-C: rclpy invalidated the publishers before close() stopped this thread

    def plan_and_publish(self, tokens: TokenSet) -> bool:
        """Plan ``tokens`` and publish the plan and its assessment; False once rclpy is shutting down."""
        try:
            plan = self.core.plan(tokens, self.route)
        except ValueError as error:
            self._count('rejected')
            self.get_logger().warning(f'cannot plan: {error}', throttle_duration_sec=WARN_THROTTLE_S)
            return True
        except Exception as error:  # noqa: BLE001 - a bad token set must not stop the planner
            self._count('internal_error')
            self.get_logger().error(f'planning failed: {type(error).__name__}: {error}',
                                    throttle_duration_sec=WARN_THROTTLE_S)
            return True
        try:
            self.path_pub.publish(trajectory_to_path(plan.trajectory))
            self.assessment_pub.publish(assessment_to_msg(plan.assessment))
        except Exception:  # noqa: BLE001 - re-raised unless rclpy is shutting down
            if not self.context.ok():
                return False
            raise
        self.forward_ms.append(plan.forward_ms)
        self._count('planned')
        return True

    def _count(self, counter: str) -> None:
        with self._wake:
            self.counters[counter] += 1
            self._wake.notify_all()

    def wait_for(self, predicate, timeout_s: float) -> bool:
        """Block until ``predicate(counters)`` holds or the timeout passes (tests, tools)."""
        with self._wake:
            return self._wake.wait_for(lambda: predicate(self.counters), timeout_s)

    def publish_diagnostics(self) -> None:
        forward = np.asarray(self.forward_ms[-100:] or [0.0])
        self.forward_ms = self.forward_ms[-100:]
        values = dict(self.counters, route=self.route, forward_p50_ms=float(np.percentile(forward, 50)),
                      forward_max_ms=float(forward.max())) | self.boundary.values()
        level = WARN if self.counters['rejected'] or self.boundary.counts else OK
        status = make_status('planner_node', level, 'running', values, hardware_id='planner')
        self.diagnostics_pub.publish(diagnostic_array(self.get_clock().now().nanoseconds, [status]))

    def close(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=2.0)


def main(args=None) -> int:
    return run_node(PlannerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
