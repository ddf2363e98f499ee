"""In-process ROS nodes spun on a background thread (for the CLI's own helper nodes and tests)."""

import contextlib
import threading

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

from stack_common.transport import configure_dds_transport


class RosRuntime:
    """``with RosRuntime() as ros: node = ros.add(MyNode(context=ros.context))``.

    Stop the processes these nodes talk to before leaving the block (``with RosRuntime() as ros,
    Launcher(...):``): Fast DDS's TCP transport (LARGE_DATA) can block forever tearing down a participant
    whose peer is still in the middle of sending to it (eProsima/Fast-DDS#6066); a peer that is gone
    closed its sockets.
    """

    def __init__(self, threads: int = 2):
        configure_dds_transport()
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=threads, context=self.context)
        self._thread = threading.Thread(target=self._spin, name='ros_runtime', daemon=True)
        self._nodes = []

    def add(self, node):
        self._nodes.append(node)
        self.executor.add_node(node)
        return node

    def _spin(self) -> None:
        with contextlib.suppress(ExternalShutdownException):
            self.executor.spin()

    def __enter__(self) -> 'RosRuntime':
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        for node in self._nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2.0)
