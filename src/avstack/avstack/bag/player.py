"""``avstack replay`` and :class:`BagPlayer`: a bag's recorded bytes published with the recorded timing.

The player publishes each message's bytes as recorded (no deserialisation,
no re-serialisation) when the wall clock reaches its log time, scaled by
``rate``, with a QoS every recorded publisher's subscribers could match.
With ``clock_hz`` it also publishes ``/clock`` (bag time) so nodes with
``use_sim_time`` follow the bag; at the end of a ``loop`` both jump back to
the start, which every node of the stack treats as a time reset.

:class:`PlaybackClock` is the timing arithmetic, free of ROS.
"""

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rclpy.event_handler import PublisherEventCallbacks
from rclpy.node import Node
from rosgraph_msgs.msg import Clock

from avstack.bag.codec import BagError, message_class
from avstack.bag.qos import publishing_qos
from avstack.bag.reader import open_bag
from avstack.runtime.ros import RosRuntime
from stack_common import topics
from stack_common.constants import NS_PER_S
from stack_common.qos import STATUS_QOS
from stack_common.timeutil import ns_to_stamp

DEFAULT_CLOCK_HZ = 100.0


@dataclass
class PlaybackClock:
    """Bag time <-> wall time (``time.monotonic``) for one pass over the bag at ``rate``."""

    rate: float = 1.0
    bag_start_ns: int = 0
    wall_start_s: float = 0.0

    def restart(self, bag_start_ns: int, wall_start_s: float) -> None:
        self.bag_start_ns, self.wall_start_s = bag_start_ns, wall_start_s

    def wall_at(self, bag_ns: int) -> float:
        return self.wall_start_s + (bag_ns - self.bag_start_ns) / NS_PER_S / self.rate

    def bag_at(self, wall_s: float) -> int:
        return self.bag_start_ns + round((wall_s - self.wall_start_s) * self.rate * NS_PER_S)


@dataclass
class PlayerStatus:
    loops: int = 0                     # completed passes over the bag
    published: dict[str, int] = field(default_factory=dict)
    bag_time_ns: int = 0               # log time of the latest published message
    skipped: dict[str, str] = field(default_factory=dict)   # topic -> why it is not played
    error: str | None = None


class BagPlayer:
    """Play ``bag_path`` on a running :class:`RosRuntime`: ``start()``, ``wait_until(...)``, ``stop()``."""

    def __init__(self, ros: RosRuntime, bag_path: str | Path, rate: float = 1.0, loop: bool = False,
                 clock_hz: float | None = None, start_offset_s: float = 0.0, only_topics: list[str] | None = None,
                 remaps: dict[str, str] | None = None, node_name: str = 'avstack_player',
                 exclude_topics: tuple[str, ...] = ()):
        if rate <= 0:
            raise ValueError(f'rate {rate} must be > 0')
        self.ros, self.rate, self.loop, self.clock_hz = ros, rate, loop, clock_hz
        self.bag = open_bag(bag_path)
        missing = sorted(set(only_topics or []) - set(self.bag.topics))
        if missing:
            self.bag.close()
            raise BagError(f'{bag_path}: no topic(s) {", ".join(missing)} (topics: {self.bag.describe_topics()})')
        self.start_ns = self.bag.start_ns + round(start_offset_s * NS_PER_S)
        self.status = PlayerStatus()
        self.changed = threading.Condition()
        self.node = Node(node_name, context=ros.context)
        self.publishers = {}
        for name, info in self.bag.topics.items():
            if only_topics is not None and name not in only_topics:
                continue
            if name in exclude_topics:
                self.status.skipped[name] = 'excluded'
                continue
            if clock_hz and name == topics.CLOCK:
                self.status.skipped[name] = 'replaced by the player\'s own /clock (--clock)'
                continue
            try:
                cls = message_class(info.type_name)
            except BagError as error:
                self.status.skipped[name] = f'{info.count} message(s) of {error}'
                continue
            self.publishers[name] = self.node.create_publisher(
                cls, (remaps or {}).get(name, name), publishing_qos(info.offered_qos),
                event_callbacks=PublisherEventCallbacks(matched=self._on_matched))
        self.clock_pub = self.node.create_publisher(
            Clock, topics.CLOCK, STATUS_QOS, event_callbacks=PublisherEventCallbacks(matched=self._on_matched)
        ) if clock_hz else None
        self.clock = PlaybackClock(rate)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, name='bag_player', daemon=True)
        ros.executor.add_node(self.node)   # spun from now on: matched events reach wait_for_subscribers

    def competing_publishers(self) -> dict[str, list[str]]:
        """Topics (as published) that other nodes in the graph publish too: their subscribers get both."""
        own = (self.node.get_name(), self.node.get_namespace())
        competing = {}
        for publisher in self.publishers.values():
            others = [f'{i.node_namespace.rstrip("/")}/{i.node_name}'
                      for i in self.node.get_publishers_info_by_topic(publisher.topic_name)
                      if (i.node_name, i.node_namespace) != own]
            if others:
                competing[publisher.topic_name] = sorted(set(others))
        return competing

    def nothing_to_publish(self) -> str | None:
        """Why playing would publish no message at all (None when something will be published)."""
        if not self.publishers:
            return 'no topic to publish' + (
                f' (not playing {", ".join(sorted(self.status.skipped))})' if self.status.skipped else '')
        if not any(self.bag.topics[name].count for name in self.publishers):
            return f'its topics to publish ({", ".join(sorted(self.publishers))}) hold no messages'
        if self.start_ns > self.bag.end_ns:
            return f'the start offset is past its end ({self.bag.duration_s:.1f} s)'
        return None

    def _on_matched(self, _info) -> None:
        with self.changed:
            self.changed.notify_all()

    def wait_for_subscribers(self, topic_names: list[str], timeout_s: float) -> bool:
        """Block until each of ``topic_names`` (as published, after remapping) has a subscriber."""
        publishers = {p.topic_name: p for p in list(self.publishers.values()) + [self.clock_pub] if p is not None}
        wanted = [publishers[name] for name in topic_names]
        with self.changed:
            return self.changed.wait_for(lambda: all(p.get_subscription_count() for p in wanted), timeout_s)

    @property
    def duration_s(self) -> float:
        return max(self.bag.end_ns - self.start_ns, 0) / NS_PER_S

    def start(self) -> 'BagPlayer':
        self._thread.start()
        return self

    def stop(self) -> PlayerStatus:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self.ros.executor.remove_node(self.node)
        self.node.destroy_node()
        self.bag.close()
        return self.status

    def wait_until(self, predicate, timeout_s: float) -> bool:
        """Block until ``predicate(status)`` holds (re-checked after every message and loop) or the timeout."""
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self.status), timeout_s)

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive()

    def __enter__(self) -> 'BagPlayer':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the playback thread ---------------------------------------------------------------------

    def _play(self) -> None:
        try:
            while not self._stop.is_set():
                self.clock.restart(self.start_ns, time.monotonic())
                self._publish_clock(self.start_ns)
                for message in self.bag.messages(list(self.publishers), start_ns=self.start_ns):
                    if not self._wait_until(self.clock.wall_at(message.log_time_ns)):
                        return
                    self.publishers[message.topic].publish(bytes(message.data))
                    with self.changed:
                        published = self.status.published
                        published[message.topic] = published.get(message.topic, 0) + 1
                        self.status.bag_time_ns = message.log_time_ns
                        self.changed.notify_all()
                with self.changed:
                    self.status.loops += 1
                    self.changed.notify_all()
                if not self.loop:
                    return
        except BagError as error:
            with self.changed:
                self.status.error = str(error)
        finally:
            with self.changed:
                self.changed.notify_all()

    def _wait_until(self, wall_s: float) -> bool:
        """Wait for ``wall_s``, publishing /clock meanwhile; False when stopped."""
        period = 1.0 / self.clock_hz if self.clock_hz else None
        while True:
            now = time.monotonic()
            if now >= wall_s:
                return not self._stop.is_set()
            if period is not None:
                self._publish_clock(self.clock.bag_at(now))
            if self._stop.wait(min(wall_s - now, period or wall_s - now)):
                return False

    def _publish_clock(self, bag_ns: int) -> None:
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=ns_to_stamp(bag_ns)))
