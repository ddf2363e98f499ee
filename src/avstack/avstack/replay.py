"""``avstack replay`` and :class:`BagPlayer`: a bag's recorded bytes published with the recorded timing.

The player publishes each message's bytes as recorded (no deserialisation,
no re-serialisation) when the wall clock reaches its log time, scaled by
``rate``, with a QoS every recorded publisher's subscribers could match.
With ``clock_hz`` it also publishes ``/clock`` (bag time) so nodes with
``use_sim_time`` follow the bag; at the end of a ``loop`` both jump back to
the start, which every node of the stack treats as a time reset.

:class:`PlaybackClock` is the timing arithmetic, free of ROS.
"""

import argparse
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rclpy.event_handler import PublisherEventCallbacks
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from tqdm import tqdm

from avstack.bag import BagError, message_class, open_bag, publishing_qos
from avstack.record import stop_on_signals
from avstack.ros_runtime import RosRuntime
from stack_common import topics
from stack_common.qos import STATUS_QOS
from stack_common.timeutil import NS_PER_S, ns_to_stamp

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
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


def parse_remaps(entries: list[str]) -> dict[str, str]:
    """``['/a:=/b']`` -> ``{'/a': '/b'}``; :class:`ValueError` naming a bad entry."""
    remaps = {}
    for entry in entries:
        source, sep, target = entry.partition(':=')
        if not sep or not source.startswith('/') or not target.startswith('/'):
            raise ValueError(f'--remap {entry!r}: expected /from:=/to')
        remaps[source] = target
    return remaps


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
                 remaps: dict[str, str] | None = None, node_name: str = 'avstack_player'):
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


# ------------------------------------------------------------------------------------------------ CLI

def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'replay', help='publish a rosbag with its recorded timing (bytes as recorded)',
        description='Publish the messages of BAG as they were recorded: the same bytes, the same spacing (scaled '
                    'by --rate), each topic with its recorded QoS. With --clock, /clock carries bag time so nodes '
                    'started with use_sim_time (avstack up --use-sim-time) follow the bag; with --loop the bag '
                    'restarts at its end and time jumps back, which the stack\'s nodes treat as a reset.',
        epilog='examples:\n'
               '  avstack replay bags/drive1 --clock --loop\n'
               '  avstack replay bags/drive1 --rate 0.5 --start-offset 20 --topics /vehicle/odometry\n'
               '  avstack replay bags/other_car --remap /cam0/image_raw:=/sensors/camera/front/image_raw\n'
               'exit codes: 0 played to the end (or stopped with Ctrl-C), 1 the bag is unusable or has nothing to '
               'publish, 2 bad usage.',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('bag', type=Path, help='rosbag2 directory or .mcap/.db3 file')
    parser.add_argument('--rate', '-r', type=float, default=1.0, help='playback speed factor (default 1)')
    parser.add_argument('--loop', '-l', action='store_true', help='start over at the end, until Ctrl-C')
    parser.add_argument('--clock', nargs='?', type=float, const=DEFAULT_CLOCK_HZ, default=None, metavar='HZ',
                        help=f'publish /clock with bag time (at HZ, default {DEFAULT_CLOCK_HZ:g})')
    parser.add_argument('--start-offset', type=float, default=0.0, metavar='S', help='skip the first S seconds')
    parser.add_argument('--topics', nargs='+', default=None, metavar='TOPIC', help='play only these topics')
    parser.add_argument('--remap', action='append', default=[], metavar='FROM:=TO',
                        help='publish topic FROM as TO (repeatable)')
    parser.set_defaults(run=run)


def run(args) -> int:
    try:
        remaps = parse_remaps(args.remap)
        if args.rate <= 0 or args.start_offset < 0 or (args.clock is not None and args.clock <= 0):
            raise ValueError('--rate and --clock must be > 0, --start-offset >= 0')
    except ValueError as error:
        print(f'avstack replay: {error}', file=sys.stderr)
        return EXIT_USAGE
    stop = stop_on_signals()
    with RosRuntime() as ros:
        try:
            player = BagPlayer(ros, args.bag, args.rate, args.loop, args.clock, args.start_offset, args.topics,
                               remaps)
        except BagError as error:
            print(f'avstack replay: {error}', file=sys.stderr)
            return EXIT_FAILURE
        for topic, reason in player.status.skipped.items():
            print(f'avstack replay: not playing {topic}: {reason}', file=sys.stderr)
        empty = player.nothing_to_publish()
        if empty:
            player.stop()
            print(f'avstack replay: nothing to publish from {args.bag}: {empty}', file=sys.stderr)
            return EXIT_FAILURE
        print(f'playing {args.bag}: {len(player.publishers)} topics, {player.duration_s:.1f} s at {args.rate:g}x'
              + (', /clock' if args.clock else '') + (', looping' if args.loop else '') + '; Ctrl-C stops',
              flush=True)
        bar = tqdm(total=round(player.duration_s, 1), unit='s', disable=not sys.stderr.isatty(), desc='replay',
                   bar_format='{l_bar}{bar}| {n:.1f}/{total:.1f} s of bag [loop {postfix}]', postfix=0)
        player.start()
        while not stop.wait(0.2) and not player.finished:
            status = player.status
            bar.set_postfix_str(str(status.loops), refresh=False)
            bar.update(round(max(status.bag_time_ns - player.start_ns, 0) / NS_PER_S - bar.n, 1))
        bar.close()
        status = player.stop()
    if status.error:
        print(f'avstack replay: {status.error}', file=sys.stderr)
        return EXIT_FAILURE
    if not status.published and not stop.is_set():
        print(f'avstack replay: published no message: the metadata of {args.bag} lists '
              f'{player.bag.message_count}, its storage files gave none', file=sys.stderr)
        return EXIT_FAILURE
    print(f'published {sum(status.published.values())} messages on {len(status.published)} topics, '
          f'{status.loops} full pass(es)', flush=True)
    return EXIT_OK
