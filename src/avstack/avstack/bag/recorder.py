"""``avstack record`` and :class:`Recorder`: live topics into a rosbag2 directory, as ``ros2 bag record``.

The recorder discovers the wanted topics (named ones, or all) as their
publishers appear, subscribes with a QoS every publisher can match (reliable
only when all publishers are, transient-local only when all are, as rosbag2
does) and writes the received bytes unchanged with the receive time of the
node clock. Each topic's offered QoS profiles go into ``metadata.yaml`` so a
replay publishes with them. Stopping (Ctrl-C on the command line) drains the
messages already received, then closes the bag: index and metadata written.

In-process use (simulator, tests)::

    with RosRuntime() as ros, Recorder(ros, 'out/run1', topics=None, storage='mcap'):
        ...   # everything published meanwhile is recorded
"""

import threading
import time
from pathlib import Path

from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from avstack.bag.codec import BagError, message_class
from avstack.bag.qos import BURST_DEPTH
from avstack.bag.writer import BagWriter
from avstack.runtime.ros import RosRuntime

DISCOVERY_PERIOD_S = 0.2
DRAIN_QUIET_S = 0.3       # stop once no message arrived for this long ...
DRAIN_MAX_S = 5.0         # ... or after this long (a loaded machine takes a burst slowly)
DRAIN_POLL_S = 0.05


def subscription_qos(offered: list[QoSProfile]) -> QoSProfile:
    """A subscription QoS compatible with every offered profile, deep enough for bursts."""
    reliable = bool(offered) and all(p.reliability == ReliabilityPolicy.RELIABLE for p in offered)
    latched = bool(offered) and all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in offered)
    depth = max([BURST_DEPTH] + [int(p.depth) for p in offered])
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class RecorderNode(Node):
    """Discovers topics and writes what arrives; all bag access goes through :class:`BagWriter`."""

    def __init__(self, writer: BagWriter, topics: list[str] | None, name: str = 'avstack_recorder',
                 max_span_ns: int | None = None, **node_kwargs):
        super().__init__(name, **node_kwargs)
        self.writer = writer
        self.max_span_ns = max_span_ns            # the bag's length: later receipts are not written
        self.first_receipt_ns: int | None = None
        self.span_reached = threading.Event()
        self.wanted = None if topics is None else set(topics)
        self.skipped: dict[str, str] = {}          # topic -> why it is not recorded
        self.received = threading.Condition()
        self.last_receipt_s = 0.0
        self._recording = {}
        self._stopping = False
        self.discover()
        self.create_timer(DISCOVERY_PERIOD_S, self.discover)

    def discover(self) -> None:
        if self._stopping:
            return
        for topic, types in self.get_topic_names_and_types():
            if topic in self._recording or topic in self.skipped:
                continue
            if self.wanted is not None and topic not in self.wanted:
                continue
            publishers = self.get_publishers_info_by_topic(topic)
            if not publishers:
                continue  # only subscribers so far: wait for a publisher to learn its QoS
            self.subscribe(topic, types[0], [p.qos_profile for p in publishers])

    def subscribe(self, topic: str, type_name: str, offered: list[QoSProfile]) -> None:
        try:
            cls = message_class(type_name)
            self.writer.add_topic(topic, type_name, offered)
        except BagError as error:
            self.skipped[topic] = str(error)
            self.get_logger().warning(f'not recording {topic}: {error}')
            return
        self._recording[topic] = self.create_subscription(
            cls, topic, lambda data, t=topic: self.on_message(t, data), subscription_qos(offered), raw=True)
        self.get_logger().info(f'recording {topic} [{type_name}]')
        with self.received:
            self.received.notify_all()

    def on_message(self, topic: str, data: bytes) -> None:
        receipt_ns = self.get_clock().now().nanoseconds
        if self.max_span_ns is not None:
            if self.first_receipt_ns is None:
                self.first_receipt_ns = receipt_ns
            elif receipt_ns - self.first_receipt_ns > self.max_span_ns:
                self.span_reached.set()
                return
        try:
            self.writer.write(topic, receipt_ns, data)
        except BagError:
            return  # a callback still in flight after the bag was closed
        with self.received:
            self.last_receipt_s = time.monotonic()
            self.received.notify_all()

    @property
    def recorded_topics(self) -> list[str]:
        return sorted(self._recording)

    def drain(self) -> None:
        """Let the messages already delivered reach the bag, then stop taking new ones."""
        self._stopping = True
        deadline = time.monotonic() + DRAIN_MAX_S
        with self.received:
            self.last_receipt_s = max(self.last_receipt_s, time.monotonic())   # quiet counts from the stop
            # re-checked as time passes, not only when a message arrives
            while time.monotonic() - self.last_receipt_s < DRAIN_QUIET_S and time.monotonic() < deadline:
                self.received.wait(DRAIN_POLL_S)
        for subscription in self._recording.values():
            self.destroy_subscription(subscription)


class Recorder:
    """Record topics of a running :class:`RosRuntime` into ``out`` (a new rosbag2 directory).

    ``topics=None`` records every topic that has a publisher, including ones
    appearing later. Receipt times come from the node clock (``/clock`` with
    ``use_sim_time``). With ``duration_s`` the bag spans at most that long from
    its first message: later ones are not written, and ``span_reached`` is set.
    ``start()``/``stop()`` or use it as a context manager.
    """

    def __init__(self, ros: RosRuntime, out: str | Path, topics: list[str] | None = None, storage: str = 'mcap',
                 node_name: str = 'avstack_recorder', use_sim_time: bool = False, duration_s: float | None = None):
        self.ros, self.out, self.topics, self.storage = ros, Path(out), topics, storage
        self.node_name, self.use_sim_time = node_name, use_sim_time
        self.max_span_ns = None if duration_s is None else round(duration_s * 1e9)
        self.writer: BagWriter | None = None
        self.node: RecorderNode | None = None

    def start(self) -> 'Recorder':
        self.writer = BagWriter(self.out, self.storage)
        self.node = RecorderNode(self.writer, self.topics, self.node_name, self.max_span_ns,
                                 context=self.ros.context,
                                 parameter_overrides=[Parameter('use_sim_time', value=self.use_sim_time)])
        self.ros.executor.add_node(self.node)
        return self

    def stop(self) -> dict[str, int]:
        """Drain, unsubscribe and close the bag; returns the message count per topic."""
        if self.node is not None:
            self.node.drain()
            self.ros.executor.remove_node(self.node)
            self.node.destroy_node()
            self.node = None
        if self.writer is not None:
            self.writer.close()
        return self.counts

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.writer.counts) if self.writer else {}

    def wait_for_topics(self, topics: list[str], timeout_s: float) -> bool:
        """Block until every topic in ``topics`` is subscribed (its publishers were discovered)."""
        node = self.node
        with node.received:
            return node.received.wait_for(lambda: set(topics) <= set(node.recorded_topics), timeout_s)

    def wait_for_counts(self, predicate, timeout_s: float) -> bool:
        """Block until ``predicate(counts)`` holds (re-checked on every recorded message)."""
        node = self.node
        with node.received:
            return node.received.wait_for(lambda: predicate(self.counts), timeout_s)

    def __enter__(self) -> 'Recorder':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
