"""critic_node: watches plans and inputs on its own clock, requests takeovers.

Parameters: ``critic_monitor/schema/critic_node.schema.json``. Independent of
the planner by construction: no torch, no planner import; its watchdog timer
fires whether or not anything arrives. Camera topics are subscribed raw (only
their arrival matters here), so watching them costs no decoding.
"""

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry, Path
from rclpy.node import Node
from sensor_msgs.msg import Image, PointCloud2
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from critic_monitor.monitor import CriticCore
from critic_monitor.state_machine import TakeoverState, Transition
from stack_common import topics
from stack_common.diagnostics import ERROR, OK, WARN, diagnostic_array, make_status
from stack_common.node_main import run_node
from stack_common.qos import LATCHED_QOS, PLAN_QOS, SENSOR_QOS, STATUS_QOS
from stack_common.ros_params import declare_node_config
from stack_common.takeover import TakeoverReason, takeover_to_msg
from stack_common.trajectory import path_to_trajectory

DIAGNOSTICS_PERIOD_S = 1.0


class CriticNode(Node):
    def __init__(self):
        super().__init__('critic_node')
        config = declare_node_config(self, 'critic_monitor')
        self.core = CriticCore(config, self.now_ns())

        self.request_pub = self.create_publisher(DiagnosticArray, topics.TAKEOVER_REQUEST, LATCHED_QOS)
        self.active_pub = self.create_publisher(Bool, topics.TAKEOVER_ACTIVE, LATCHED_QOS)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, STATUS_QOS)
        self.create_subscription(Path, topics.TRAJECTORY, self.on_trajectory, PLAN_QOS)
        self.create_subscription(DiagnosticArray, topics.PERCEPTION_STATUS, self.on_perception_status, STATUS_QOS)
        for topic in config['camera_topics']:
            self.create_subscription(Image, topic, lambda _, t=topic: self.on_input('camera', t), SENSOR_QOS,
                                     raw=True)
        for topic in config['lidar_topics']:
            self.create_subscription(PointCloud2, topic, lambda _, t=topic: self.on_input('lidar', t), SENSOR_QOS,
                                     raw=True)
        odometry = config['odometry_topic']
        self.create_subscription(Odometry, odometry, lambda _: self.on_input('odometry', odometry), SENSOR_QOS,
                                 raw=True)
        self.create_service(Trigger, '~/reset', self.on_reset)
        self.create_timer(1.0 / config['timer_hz'], self.on_tick)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self.publish_diagnostics)
        self.active_pub.publish(Bool(data=False))

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def on_trajectory(self, msg: Path) -> None:
        self.publish_transitions(self.core.on_trajectory(path_to_trajectory(msg), self.now_ns()))

    def on_input(self, watchdog: str, topic: str) -> None:
        self.core.on_input(watchdog, topic, self.now_ns())

    def on_perception_status(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if 'missing' in values:
                self.core.on_sensor_loss([m for m in values['missing'].split(',') if m], self.now_ns())

    def on_tick(self) -> None:
        self.publish_transitions(self.core.tick(self.now_ns()))

    def on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message, transitions = self.core.reset(self.now_ns())
        self.publish_transitions(transitions)
        self.get_logger().info(f'reset requested: {response.message}')
        return response

    def publish_transitions(self, transitions: list[Transition]) -> None:
        for transition in transitions:
            reasons = [TakeoverReason(r.check, r.message, r.value, r.threshold) for r in transition.reasons]
            detail = '; '.join(f'{r.check}: {r.message}' for r in reasons)
            text = f'{transition.previous.value} -> {transition.state.value}' + (f' ({detail})' if detail else '')
            active = transition.state == TakeoverState.TAKEOVER_REQUESTED
            if active:
                self.get_logger().error(text)
            else:
                self.get_logger().info(text)
            self.request_pub.publish(takeover_to_msg(transition.stamp_ns, transition.state.value,
                                                     reasons if active else []))
            self.active_pub.publish(Bool(data=active))

    def publish_diagnostics(self) -> None:
        now = self.now_ns()
        statuses = [make_status(f'critic/{r.check}', OK if r.ok else (ERROR if r.severity == 'critical' else WARN),
                                r.message, {'value': r.value, 'threshold': r.threshold, 'severity': r.severity},
                                hardware_id='critic_monitor')
                    for r in self.core.results(now)]
        state = self.core.machine.state.value
        statuses.append(make_status('critic/state', ERROR if self.core.machine.takeover_active else OK, state,
                                    {'state': state, 'time_resets': self.core.restarts},
                                    hardware_id='critic_monitor'))
        self.diagnostics_pub.publish(diagnostic_array(now, statuses))


def main(args=None) -> int:
    return run_node(CriticNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
