"""bridge_node: highway-env on the stack's topics, the clock of every other node.

Parameters: ``sim_bridge/schema/bridge_node.schema.json``. Publishes ``/clock``, odometry, the camera, the
lidar, ``/sim/scene_info`` and ``/sim/status`` for every step, and with ``relabel`` the expert's plan from
that state on ``/sim/expert_plan``; subscribes to the planner's trajectory and the critic's takeover state.
With ``driver: expert-plans`` the bridge is the planner too: the expert's plan goes out on
``/planner/trajectory`` with an assessment, and comes back like any plan. The simulation runs on a worker thread
(:class:`SimulationCore` does the work): in lockstep it publishes a step, waits until the trajectory stamped with
that step arrived (or the deadline expired: a miss), then steps. This node runs on wall time: it is the source of
sim time.
"""

import json
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry, Path
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, PointCloud2
from std_msgs.msg import Bool, String

from sim_bridge.simulation import EXPERT_PLANS, MODEL, SimulationCore
from stack_common import topics
from stack_common.assessment import Assessment, assessment_to_msg
from stack_common.boundary import BoundaryGuard
from stack_common.constants import DIAGNOSTICS_PERIOD_S, WARN_THROTTLE_S
from stack_common.diagnostics import OK, WARN, diagnostic_array, make_status
from stack_common.image import rgb_to_image_msg
from stack_common.node_main import run_node
from stack_common.odometry import ego_to_odometry
from stack_common.pointcloud import array_to_cloud
from stack_common.qos import LATCHED_QOS, PLAN_QOS, SENSOR_QOS, STATUS_QOS
from stack_common.ros_params import declare_node_config
from stack_common.takeover import msg_to_takeover
from stack_common.timeutil import ns_to_stamp
from stack_common.trajectory import path_to_trajectory, trajectory_to_path

STARTUP_RESTAMP_NS = 1_000_000


class BridgeNode(Node):
    def __init__(self):
        super().__init__('bridge_node')
        self.config = config = declare_node_config(self, 'sim_bridge')
        self.core = SimulationCore(config)
        # Lockstep waits for the stack's plans; with the expert driving there are none to wait for, so an
        # expert run in lockstep steps as fast as it can (data collection), and one in realtime keeps pace.
        self.lockstep = config['lockstep']
        self.stack_drives = config['driver'] in (MODEL, EXPERT_PLANS)
        self.waits_for_plans = config['lockstep'] and self.stack_drives
        self.counters = {'steps': 0, 'deadline_misses': 0, 'plans': 0, 'rejected_plans': 0}

        self.clock_pub = self.create_publisher(Clock, topics.CLOCK, SENSOR_QOS)
        self.odometry_pub = self.create_publisher(Odometry, config['odometry_topic'], SENSOR_QOS)
        self.camera_pub = self.create_publisher(Image, config['camera']['topic'], SENSOR_QOS)
        self.lidar_pub = self.create_publisher(PointCloud2, config['lidar']['topic'], SENSOR_QOS)
        self.scene_pub = self.create_publisher(String, topics.SIM_SCENE_INFO, STATUS_QOS)
        self.status_pub = self.create_publisher(String, topics.SIM_STATUS, STATUS_QOS)
        self.route_pub = self.create_publisher(String, config['route_topic'], PLAN_QOS) \
            if config['route_topic'] else None
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, STATUS_QOS)
        self.expert_plan_pub = self.create_publisher(Path, topics.SIM_EXPERT_PLAN, PLAN_QOS) \
            if config['relabel'] else None
        self.plan_pub = self.assessment_pub = None
        if config['driver'] == EXPERT_PLANS:
            self.plan_pub = self.create_publisher(Path, topics.TRAJECTORY, PLAN_QOS)
            self.assessment_pub = self.create_publisher(DiagnosticArray, topics.ASSESSMENT, PLAN_QOS)
        self.boundary = BoundaryGuard(self)   # messages that do not convert: dropped/<input>/<reason>
        guard = self.boundary.guard
        self.create_subscription(Path, topics.TRAJECTORY, guard('trajectory', self.on_trajectory), PLAN_QOS)
        self.create_subscription(Bool, topics.TAKEOVER_ACTIVE, guard('takeover_active', self.on_takeover_active),
                                 LATCHED_QOS)
        self.create_subscription(DiagnosticArray, topics.TAKEOVER_REQUEST,
                                 guard('takeover_request', self.on_takeover_request), LATCHED_QOS)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self.publish_diagnostics)

        # open while the node runs (appended to after each episode), closed in destroy_node
        self.results_file = open(config['results_path'], 'a') if config['results_path'] else None  # noqa: SIM115
        self.plan_arrived = threading.Condition()
        self.first_plan_seen = False
        self.plan_waits_ms: list[float] = []
        self._next_step_s = time.monotonic()
        self.takeover_active = False
        self.takeover_reasons: tuple[str, ...] = ()
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self.run_simulation, name='simulation', daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------------------------ callbacks
    def on_trajectory(self, msg: Path) -> None:
        trajectory = path_to_trajectory(msg)
        with self.plan_arrived:
            if self.core.record is None or not self.core.accept_plan(trajectory):
                self.counters['rejected_plans'] += 1
                return
            self.counters['plans'] += 1
            self.plan_arrived.notify_all()

    def on_takeover_active(self, msg: Bool) -> None:
        self.takeover_active = msg.data

    def on_takeover_request(self, msg: DiagnosticArray) -> None:
        _, reasons = msg_to_takeover(msg)
        if reasons:
            self.takeover_reasons = tuple(f'critic:{r.check}' for r in reasons)

    # --------------------------------------------------------------------------------- the simulation
    def run_simulation(self) -> None:
        try:
            self.simulate()
        except Exception:
            if self.context.ok():
                raise
            # Ctrl-C shut the context down under the worker: the run is over, nothing more to publish.

    def simulate(self) -> None:
        core = self.core
        self.wait_for_subscribers()
        started_s = time.monotonic()
        while not self._stopping.is_set():
            with self.plan_arrived:
                if not core.start_next_episode():
                    break
            self.publish_route()
            while not self._stopping.is_set():
                frame = core.sense()
                self.publish_frame(frame)
                missed, wait_ms = self.hold_step(frame)
                with self.plan_arrived:
                    result = core.step(self.takeover_active, self.takeover_reasons, missed)
                self.counters['steps'] += 1
                if self.counters['steps'] == 1:
                    started_s = time.monotonic()   # the rate is the steady one: model loading is not in it
                elif self.waits_for_plans:
                    self.plan_waits_ms.append(wait_ms)
                self.publish_status('step', {'driver': result.driver, 'plan_wait_ms': round(wait_ms, 1)})
                if result.finished is not None:
                    self.finish_episode(result.finished)
                    break
        if not self._stopping.is_set():
            self.finish_run(time.monotonic() - started_s)

    def hold_step(self, frame) -> tuple[bool, float]:
        """Hold a step: until its plan in lockstep, to the wall clock in realtime; returns (missed, wait_ms).

        The first step of a run with the stack driving waits for the first plan in either mode, so the car
        does not drive off while the nodes are still loading.
        """
        if self.waits_for_plans or (self.stack_drives and not self.first_plan_seen):
            timeout_s = self.config['lockstep_timeout_s' if self.first_plan_seen else 'startup_timeout_s']
            arrived, wait_ms = self.wait_for_plan(frame, timeout_s)
            self.first_plan_seen = self.first_plan_seen or arrived
            self._next_step_s = time.monotonic()
            if not arrived:
                self.counters['deadline_misses'] += 1
                self.get_logger().warning(f'no trajectory for t={frame.stamp_ns / 1e9:.2f} s within {timeout_s:.1f} s: '
                                          'planner deadline miss', throttle_duration_sec=WARN_THROTTLE_S)
            return not arrived, wait_ms
        if not self.lockstep:
            self._next_step_s += self.core.period_ns / 1e9 / self.config['realtime_factor']
            self._stopping.wait(max(self._next_step_s - time.monotonic(), 0.0))
        return False, 0.0

    def finish_episode(self, record) -> None:
        self.publish_status('episode', record.to_dict())
        self.get_logger().info(f'{record.scenario} episode {record.episode}: {record.distance_m:.0f} m, '
                               f'{len(record.takeovers)} takeovers, {record.collisions} collisions, '
                               f'ended by {record.end_reason}')

    def finish_run(self, elapsed_s: float) -> None:
        steps = self.counters['steps']
        waits = np.asarray(self.plan_waits_ms or [np.nan])
        self.publish_status('done', {'steps': steps, 'wall_s': round(elapsed_s, 2),
                                     'steps_per_s': round((steps - 1) / elapsed_s, 2) if steps > 1 else None,
                                     'plan_wait_p50_ms': _finite(np.percentile(waits, 50)),
                                     'plan_wait_p95_ms': _finite(np.percentile(waits, 95)),
                                     'rejected_plans': self.counters['rejected_plans']})
        self.get_logger().info('all episodes done')

    def wait_for_subscribers(self) -> None:
        """Hold the first step until a recorder (or whoever must see every step) matched every data topic."""
        wanted = self.config['wait_for_subscribers']
        publishers = [self.clock_pub, self.odometry_pub, self.camera_pub, self.lidar_pub, self.scene_pub,
                      self.status_pub]
        deadline = time.monotonic() + self.config['startup_timeout_s']
        while wanted and not self._stopping.is_set() and time.monotonic() < deadline:
            missing = [p.topic_name for p in publishers if p.get_subscription_count() < wanted]
            if not missing:
                self._stopping.wait(self.config['connect_grace_s'])
                return
            self.get_logger().info(f'waiting for subscribers of {", ".join(missing)}', throttle_duration_sec=5.0)
            self._stopping.wait(0.05)

    def wait_for_plan(self, frame, timeout_s: float) -> tuple[bool, float]:
        """Wait for the plan of ``frame``'s stamp (or a later one), publishing the step again now and then.

        Before the first plan of the run the step goes out again 1 ms of sim time later each time (the world
        does not move): the stack drops a stamp it has seen, so a message lost between two nodes that were
        still connecting would otherwise never be made again. After that, the same frame goes out again for
        a node that joined late.
        """
        start = time.monotonic()
        deadline = start + timeout_s
        with self.plan_arrived:
            while not self.core.has_plan_for(frame.stamp_ns) and not self._stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False, (time.monotonic() - start) * 1e3
                if not self.plan_arrived.wait(min(remaining, self.config['republish_period_s'])) \
                        and not self.core.has_plan_for(frame.stamp_ns):
                    self.publish_route()
                    if not self.first_plan_seen:
                        self.core.hold(STARTUP_RESTAMP_NS)
                    self.publish_frame(self.core.sense() if not self.first_plan_seen else frame)
        return True, (time.monotonic() - start) * 1e3

    # ------------------------------------------------------------------------------------ publishing
    def publish_frame(self, frame) -> None:
        cfg = self.config
        self.clock_pub.publish(Clock(clock=ns_to_stamp(frame.stamp_ns)))
        self.odometry_pub.publish(ego_to_odometry(frame.ego, cfg['odom_frame_id'], cfg['base_frame_id']))
        self.lidar_pub.publish(array_to_cloud(frame.lidar, frame.stamp_ns, cfg['lidar']['frame_id']))
        self.camera_pub.publish(rgb_to_image_msg(frame.rgb, frame.stamp_ns, cfg['camera']['frame_id']))
        self.scene_pub.publish(String(data=json.dumps(frame.scene)))
        if frame.expert_plan is not None:
            path = trajectory_to_path(frame.expert_plan)
            if self.expert_plan_pub is not None:
                self.expert_plan_pub.publish(path)
            if self.plan_pub is not None:   # the expert as the planner: a sure plan, scored as such
                self.plan_pub.publish(path)
                self.assessment_pub.publish(assessment_to_msg(Assessment(frame.stamp_ns, 0, 1.0, 1.0,
                                                                         progress=1.0, comfort=1.0)))

    def publish_route(self) -> None:
        """The route command of this episode (again while waiting, for a planner that joined late)."""
        if self.route_pub is not None:
            self.route_pub.publish(String(data=self.core.route_command))

    def publish_status(self, kind: str, fields: dict) -> None:
        core, record = self.core, self.core.record
        document = {'kind': kind, 'stamp_ns': core.stamp_ns, 'scenario': getattr(core, 'scenario', None),
                    'driver_mode': core.driver_mode}
        if record is not None:
            vehicle = core.vehicle
            document |= {'episode': record.episode, 'speed_mps': round(float(vehicle.speed), 3),
                         'distance_m': round(record.distance_m, 2), 'takeovers': len(record.takeovers),
                         'collisions': record.collisions, 'deadline_misses': record.deadline_misses}
        text = json.dumps(document | fields)
        if kind != 'step' and self.results_file is not None:
            # The results also go to a file (first): a subscriber that falls behind may lose messages, a report
            # may not.
            self.results_file.write(text + '\n')
            self.results_file.flush()
        self.status_pub.publish(String(data=text))

    def publish_diagnostics(self) -> None:
        level = WARN if self.counters['deadline_misses'] else OK
        status = make_status('bridge_node', level, 'done' if self.core.done else 'running',
                             dict(self.counters, lockstep=self.lockstep, driver=self.config['driver'])
                             | self.boundary.values(),
                             hardware_id='sim_bridge')
        self.diagnostics_pub.publish(diagnostic_array(self.get_clock().now().nanoseconds, [status]))

    def close(self) -> None:
        self._stopping.set()
        with self.plan_arrived:
            self.plan_arrived.notify_all()
        self._worker.join(timeout=5.0)
        self.core.close()
        if self.results_file is not None:
            self.results_file.close()


def _finite(value: float) -> float | None:
    return round(float(value), 1) if np.isfinite(value) else None


def main(args=None) -> int:
    return run_node(BridgeNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
