"""critic_node: watches plans and inputs on its own clock, requests takeovers.

Parameters: ``critic_monitor/schema/critic_node.schema.json``. Independent of
the planner by construction: no torch, no planner import, its own lidar
extrinsics; its watchdog timer (a ROS timer, so sim time works) fires whether
or not anything arrives. Camera topics are subscribed raw (only their arrival
matters here), so watching them costs no decoding; lidar clouds are subscribed
raw too and read from their bytes (:mod:`stack_common.intake`).

Outputs: ``/critic/takeover_request`` and ``/critic/takeover_active``
(latched; the flag also as a 10 Hz heartbeat with a deadline), one
``/diagnostics`` status per check plus the state, the takeover statistics and
the critic's own reaction times, and ``/critic/markers``. While starting up,
the request topic names the inputs still awaited. On SIGINT/SIGTERM the last
act is a takeover request ``critic_stopped``. The statistics are written to
``statistics_path`` as JSON when the node stops.
"""

import json
import os
import sys
import time
from collections import Counter

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry, Path as PathMsg
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import Image, PointCloud2
from std_msgs.msg import Bool
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from critic_monitor.markers import collision_markers
from critic_monitor.monitor import CriticCore
from critic_monitor.state_machine import TakeoverState, Transition
from critic_monitor.statistics import LatencyWindow
from stack_common import topics
from stack_common.assessment import msg_to_assessment
from stack_common.boundary import BoundaryGuard, ConversionError
from stack_common.constants import DIAGNOSTICS_PERIOD_S, WARN_THROTTLE_S
from stack_common.diagnostics import ERROR, OK, STALE, WARN, diagnostic_array, make_status
from stack_common.intake import parse_cloud
from stack_common.node_main import run_node
from stack_common.odometry import odometry_to_ego
from stack_common.pointcloud import point_channels
from stack_common.qos import (
    HEARTBEAT_PERIOD_S, LATCHED_QOS, ODOMETRY_QOS, PLAN_QOS, SENSOR_QOS, STATUS_QOS, TAKEOVER_ACTIVE_QOS,
)
from stack_common.ros_params import declare_node_config
from stack_common.state import state_path
from stack_common.takeover import TakeoverReason, takeover_to_msg
from stack_common.trajectory import path_to_trajectory

HARDWARE_ID = 'critic_monitor'
ACK_TIMEOUT_S = 1.0   # at stop, how long the last request may take to reach the subscribers matched then


class CriticNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__('critic_node', **node_kwargs)
        config = declare_node_config(self, 'critic_monitor')
        self.core = CriticCore(config, self.now_ns(), warn=self.warn_input)
        self.statistics_path = config['statistics_path']
        self.shutdown_linger_s = config['shutdown_linger_s']
        self.realtime_priority = config['realtime_priority']
        self.scheduling = 'normal'
        self.reaction = LatencyWindow()            # message receipt -> takeover published, ms
        self.watchdog_overshoot = LatencyWindow()  # silence beyond the timeout when a watchdog fired, ms
        self.boundary = BoundaryGuard(self)   # a message that does not convert is counted, never fatal
        self.input_errors: Counter[str] = Counter()   # inputs used despite a problem (a cloud's frame)
        self.active = False
        self.waiting: tuple[list[str], list[str]] = ([], [])   # start-up's awaited topics and checks, as published
        self.logged_reasons = []                   # the reasons of the last transition logged

        self.request_pub = self.create_publisher(DiagnosticArray, topics.TAKEOVER_REQUEST, LATCHED_QOS)
        self.active_pub = self.create_publisher(Bool, topics.TAKEOVER_ACTIVE, TAKEOVER_ACTIVE_QOS)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, STATUS_QOS)
        self.marker_pub = self.create_publisher(MarkerArray, topics.CRITIC_MARKERS, STATUS_QOS)
        guard = self.boundary.guard
        self.create_subscription(PathMsg, topics.TRAJECTORY, guard('trajectory', self.on_trajectory), PLAN_QOS)
        self.create_subscription(DiagnosticArray, topics.ASSESSMENT, guard('assessment', self.on_assessment), PLAN_QOS)
        self.create_subscription(DiagnosticArray, topics.PERCEPTION_STATUS,
                                 guard('perception_status', self.on_perception_status), STATUS_QOS)
        for topic in config['camera_topics']:
            self.create_subscription(Image, topic, lambda _, t=topic: self.core.on_input('camera', t, self.now_ns()),
                                     SENSOR_QOS, raw=True)
        for name, topic in self.core.lidar_topics.items():
            self.create_subscription(PointCloud2, topic,
                                     guard(f'lidar/{name}', lambda data, n=name: self.on_lidar(data, n)), SENSOR_QOS,
                                     raw=True)
        self.create_subscription(Odometry, config['odometry_topic'], guard('odometry', self.on_odometry),
                                 ODOMETRY_QOS)
        self.create_service(Trigger, '~/reset', self.on_reset)
        self.create_timer(1.0 / config['timer_hz'], self.on_tick)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self.publish_diagnostics)
        # The heartbeat tells a vehicle interface that the monitor lives: on the steady clock, so a paused
        # simulation does not silence it.
        self.create_timer(HEARTBEAT_PERIOD_S, self.publish_heartbeat, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.publish_waiting()
        self.active_pub.publish(Bool(data=False))

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def raise_priority(self) -> None:
        """Real-time scheduling for the calling thread, the one that will spin this node."""
        if self.realtime_priority <= 0:
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.realtime_priority))
        except (OSError, AttributeError) as error:
            self.get_logger().warning(
                f'cannot run callbacks at real-time priority {self.realtime_priority} '
                f'({getattr(error, "strerror", None) or error}); normal scheduling: other processes may '
                f'delay a takeover (grant CAP_SYS_NICE or an rtprio limit, or set realtime_priority: 0)')
            return
        self.scheduling = f'SCHED_FIFO {self.realtime_priority}'
        self.get_logger().info(f'callbacks run at {self.scheduling}')

    # --- inputs -------------------------------------------------------------------------------

    def on_trajectory(self, msg: PathMsg) -> None:
        start, receipt = time.perf_counter(), self.now_ns()
        self.publish_transitions(self.core.on_trajectory(path_to_trajectory(msg), receipt), start)
        self.publish_markers()

    def on_lidar(self, data: bytes, name: str) -> None:
        start, receipt = time.perf_counter(), self.now_ns()
        # A cloud that does not decode raises here: not counted as alive, a lidar whose clouds cannot be read
        # is a silent lidar.
        msg = parse_cloud(data)
        xyz, channels = point_channels(msg.array(), ('radial_velocity',))
        self.publish_transitions(self.core.on_lidar(name, xyz, msg.stamp_ns, receipt, msg.frame_id,
                                                    channels.get('radial_velocity')), start)
        self.publish_markers()

    def on_odometry(self, msg: Odometry) -> None:
        if not self.core.on_odometry(odometry_to_ego(msg), self.now_ns()):
            raise ConversionError('non_finite', 'odometry with NaN or inf ignored')

    def on_assessment(self, msg: DiagnosticArray) -> None:
        start, receipt = time.perf_counter(), self.now_ns()
        self.publish_transitions(self.core.on_assessment(msg_to_assessment(msg), receipt), start)

    def on_perception_status(self, msg: DiagnosticArray) -> None:
        start, receipt = time.perf_counter(), self.now_ns()
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if 'missing' in values:
                missing = [m for m in values['missing'].split(',') if m]
                self.publish_transitions(self.core.on_sensor_loss(missing, receipt), start)

    def on_tick(self) -> None:
        self.publish_transitions(self.core.tick(self.now_ns()), time.perf_counter())
        self.publish_waiting()

    def on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message, transitions = self.core.reset(self.now_ns())
        self.publish_transitions(transitions, time.perf_counter())
        self.get_logger().info(f'reset requested: {response.message}')
        return response

    def warn_input(self, text: str) -> None:
        """An input used despite a problem (a cloud in an unexpected frame): counted, logged throttled."""
        self.input_errors['lidar_frame_mismatch'] += 1
        self.get_logger().warning(text, throttle_duration_sec=WARN_THROTTLE_S)

    def stop(self) -> float:
        """Last words at SIGINT/SIGTERM (run_node calls it with the context alive): a takeover request
        ``critic_stopped``, delivered to the subscribers matched now; returns how long to keep serving it (and the
        heartbeat) to late joiners."""
        self.publish_transitions(self.core.stop(self.now_ns()), time.perf_counter())
        for publisher in (self.request_pub, self.active_pub):
            publisher.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S))
        return self.shutdown_linger_s

    # --- outputs ------------------------------------------------------------------------------

    def publish_heartbeat(self) -> None:
        self.active_pub.publish(Bool(data=self.active))

    def publish_waiting(self) -> None:
        """While starting up, the request topic names the inputs and checks still awaited (no ERROR status: no
        takeover requested)."""
        now = self.now_ns()
        waiting = ((self.core.waiting_for(), self.core.startup_failures(now))
                   if self.core.state == TakeoverState.WAITING else ([], []))
        if waiting != self.waiting:
            self.waiting = waiting
            if any(waiting):
                self.request_pub.publish(takeover_to_msg(now, TakeoverState.WAITING.value, [], *waiting))

    def publish_transitions(self, transitions: list[Transition], start: float) -> None:
        """Publish first (the reaction time ends there), then time, log and report."""
        if not transitions:
            return
        for transition in transitions:
            active = transition.state == TakeoverState.TAKEOVER_REQUESTED
            # Requests, their withdrawal and the end of start-up replace the latched request message.
            if active or transition.previous in (TakeoverState.TAKEOVER_REQUESTED, TakeoverState.WAITING):
                reasons = [TakeoverReason(r.check, r.message, r.value, r.threshold)
                           for r in transition.reasons] if active else []
                self.request_pub.publish(takeover_to_msg(transition.stamp_ns, transition.state.value, reasons))
            if active != self.active:
                self.active = active
                self.active_pub.publish(Bool(data=active))
        if any(t.state == TakeoverState.TAKEOVER_REQUESTED for t in transitions):
            self.reaction.add((time.perf_counter() - start) * 1e3)
        for transition in transitions:
            self.log_transition(transition)
        self.publish_diagnostics()

    def log_transition(self, transition: Transition) -> None:
        text = transition.describe_change(self.logged_reasons)
        self.logged_reasons = list(transition.reasons)
        if transition.state == TakeoverState.TAKEOVER_REQUESTED:
            for reason in transition.reasons:
                if reason.check.endswith('_timeout') and reason.value is not None and reason.threshold is not None:
                    self.watchdog_overshoot.add((reason.value - reason.threshold) * 1e3)
            self.get_logger().error(text)
        elif transition.state == TakeoverState.WARNING:
            self.get_logger().warning(text)
        else:
            self.get_logger().info(text)

    def publish_markers(self) -> None:
        plan = self.core.plan
        if plan is None or self.marker_pub.get_subscription_count() == 0:
            return
        self.marker_pub.publish(collision_markers(plan.trajectory.stamp_ns, plan.trajectory.frame_id, plan.sweep,
                                                  self.core.footprint, self.core.contact))

    def publish_diagnostics(self) -> None:
        now = self.now_ns()
        statuses = [make_status(f'critic/{r.check}', OK if r.ok else (ERROR if r.severity == 'critical' else WARN),
                                r.message, {'value': r.value, 'threshold': r.threshold, 'severity': r.severity},
                                hardware_id=HARDWARE_ID)
                    for r in self.core.results(now)]
        statuses += [make_status(f'critic/{check}', STALE, 'no plan or assessment yet', {}, hardware_id=HARDWARE_ID)
                     for check in self.core.pending_checks()]
        machine = self.core.machine
        state = machine.state.value
        waiting = machine.state == TakeoverState.WAITING
        values = {'state': state, 'time_resets': self.core.restarts,
                  'waiting_for': ','.join(self.core.waiting_for()) if waiting else '',
                  'failing': ','.join(self.core.startup_failures(now)) if waiting else ''}
        values.update({f'reason/{r.check}': r.describe() for r in machine.reasons})
        statuses.append(make_status('critic/state', ERROR if machine.takeover_active else
                                    (WARN if machine.state == TakeoverState.WARNING else OK),
                                    state, values, hardware_id=HARDWARE_ID))
        summary = self.core.statistics.summary()
        statistics = {key: summary[key] for key in ('distance_m', 'driven_s', 'takeovers', 'since_last_takeover_m',
                                                    'since_last_takeover_s')}
        statistics['km_per_takeover'] = summary['km_per_takeover'] if summary['km_per_takeover'] is not None else '-'
        statistics.update({f'takeovers/{reason}': count for reason, count in summary['takeovers_per_reason'].items()})
        statuses.append(make_status('critic/statistics', OK, f'{summary["distance_m"] / 1000:.3f} km, '
                                    f'{summary["takeovers"]} takeover(s)', statistics, hardware_id=HARDWARE_ID))
        timing = {'scheduling': self.scheduling}
        timing.update({f'reaction_{k}': v for k, v in self.reaction.summary().items()})
        timing.update({f'watchdog_overshoot_{k}': v for k, v in self.watchdog_overshoot.summary().items()})
        timing.update(self.boundary.values())
        timing.update({f'errors/{k}': v for k, v in self.input_errors.items()})
        statuses.append(make_status('critic/timing', OK, 'receipt -> takeover published', timing,
                                    hardware_id=HARDWARE_ID))
        self.diagnostics_pub.publish(diagnostic_array(now, statuses))

    def statistics_document(self) -> dict:
        return {'node': self.get_fully_qualified_name(), 'state': self.core.machine.state.value,
                'time_resets': self.core.restarts, 'scheduling': self.scheduling, **self.core.statistics.summary(),
                'reaction': self.reaction.summary(), 'watchdog_overshoot': self.watchdog_overshoot.summary()}

    def close(self) -> None:
        """Write the takeover statistics (called by run_node on shutdown)."""
        if not self.statistics_path:
            return
        path = state_path(self.statistics_path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + '.partial')
            partial.write_text(json.dumps(self.statistics_document(), indent=2) + '\n')
            partial.replace(path)
        except OSError as error:
            self.report(f'cannot write takeover statistics to {path}: {error.strerror}', error=True)
            return
        self.report(f'takeover statistics written to {path}')

    def report(self, text: str, error: bool = False) -> None:
        """Log, also after Ctrl-C shut the context down (rosout is gone then, stderr is not)."""
        if self.context.ok():
            (self.get_logger().error if error else self.get_logger().info)(text)
        else:
            print(f'[{"ERROR" if error else "INFO"}] [critic_node]: {text}', file=sys.stderr, flush=True)


def make_node() -> CriticNode:
    """The node for its own process: run_node spins it in this thread, so the priority applies there."""
    node = CriticNode()
    node.raise_priority()
    return node


def main(args=None) -> int:
    return run_node(make_node, args, last_words=True)


if __name__ == '__main__':
    raise SystemExit(main())
