"""A ROS node publishing the synthetic scene: camera, lidar and odometry at a fixed rate.

Camera and lidar of one frame share a stamp (the node clock at publish time);
the published stamps are kept so a test can check which came back. Frames are
published from a thread on a fixed schedule (frame k at start + k / rate), so
a frame that was late does not lower the average rate as a timer would.
With ``replay_frames = N`` the first N frames are rendered once and then
re-stamped in a loop: the source then costs almost no CPU, which is what a
benchmark of the stack (not of the scene renderer) wants.

Also runnable as its own process: ``avstack sensors --synthetic``.
"""

import threading
import time

from nav_msgs.msg import Odometry
from rclpy.node import Node
from sensor_msgs.msg import Image, PointCloud2

from avstack.synthetic import SyntheticScene
from stack_common import topics
from stack_common.image import rgb_to_image_msg
from stack_common.odometry import ego_to_odometry
from stack_common.pointcloud import array_to_cloud
from stack_common.qos import SENSOR_QOS
from stack_common.timeutil import ns_to_stamp, stamp_to_ns


class SyntheticSensorSource(Node):
    def __init__(self, scene: SyntheticScene | None = None, rate_hz: float = 10.0, encoding: str = 'bgr8',
                 camera_topic: str = topics.camera_topic('front'), lidar_topic: str = topics.lidar_topic('top'),
                 odometry_topic: str = topics.ODOMETRY, name: str = 'synthetic_sensors', replay_frames: int = 0,
                 camera: bool = True, **node_kwargs):
        """``camera``: publish camera images from the start (``camera_enabled`` switches them later)."""
        super().__init__(name, **node_kwargs)
        self.scene = scene or SyntheticScene()
        self.encoding = encoding
        self.camera_pub = self.create_publisher(Image, camera_topic, SENSOR_QOS)
        self.lidar_pub = self.create_publisher(PointCloud2, lidar_topic, SENSOR_QOS)
        self.odometry_pub = self.create_publisher(Odometry, odometry_topic, SENSOR_QOS)
        self.camera_enabled = threading.Event()
        if camera:
            self.camera_enabled.set()
        self.published_stamps: list[int] = []
        self.period_s = 1.0 / rate_hz
        self.replay_frames = replay_frames
        self._rendered: dict[int, tuple] = {}
        self._frame = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='synthetic_sensors', daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(max(start + self._frame * self.period_s - time.monotonic(), 0.0)):
            self.publish_frame()

    def destroy_node(self):
        self._stop.set()
        self._thread.join(timeout=2.0)
        return super().destroy_node()

    def render(self, frame: int) -> tuple:
        """(odometry, lidar, camera or None) messages of a frame, stamps still to be set."""
        if frame in self._rendered:
            return self._rendered[frame]
        t_s = frame * self.period_s
        ego = self.scene.ego(t_s)
        messages = (ego_to_odometry(ego), array_to_cloud(self.scene.lidar(t_s), ego.stamp_ns, 'lidar_top'),
                    rgb_to_image_msg(self.scene.camera(t_s), ego.stamp_ns, 'camera_front_optical', self.encoding))
        if self.replay_frames:
            self._rendered[frame] = messages
        return messages

    def publish_frame(self) -> None:
        # Render first, then stamp: a real sensor stamps at capture, before its driver's work.
        frame = self._frame % self.replay_frames if self.replay_frames else self._frame
        self._frame += 1
        odometry, lidar, camera = self.render(frame)
        stamp = ns_to_stamp(self.get_clock().now().nanoseconds)
        for msg in (odometry, lidar, camera):
            msg.header.stamp = stamp
        self.odometry_pub.publish(odometry)
        self.lidar_pub.publish(lidar)
        if self.camera_enabled.is_set():
            self.camera_pub.publish(camera)
        with self._lock:
            self.published_stamps.append(stamp_to_ns(stamp))

    def stamps(self) -> list[int]:
        with self._lock:
            return list(self.published_stamps)

