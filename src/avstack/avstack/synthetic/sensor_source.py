"""A ROS node publishing the synthetic scene: camera, lidar and odometry at a fixed rate.

Camera and lidar of one frame share a stamp (the node clock at capture, the time the
scene is rendered for); the published stamps are kept so a test can check which came back. Frames are
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

from avstack.synthetic.scene import SyntheticScene
from stack_common import topics
from stack_common.image import rgb_to_image_msg
from stack_common.odometry import ego_to_odometry
from stack_common.pointcloud import array_to_cloud
from stack_common.qos import SENSOR_QOS
from stack_common.timeutil import ns_to_stamp


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
        self._start_ns = self.get_clock().now().nanoseconds
        while not self._stop.wait(max(start + self._frame * self.period_s - time.monotonic(), 0.0)):
            self.publish_frame()

    def destroy_node(self):
        self._stop.set()
        self._thread.join(timeout=2.0)
        return super().destroy_node()

    def render(self, t_s: float) -> tuple:
        """(odometry, lidar, camera) messages of the scene at ``t_s``, stamps still to be set."""
        ego = self.scene.ego(t_s)
        return (ego_to_odometry(ego), array_to_cloud(self.scene.lidar(t_s), ego.stamp_ns, 'lidar_top'),
                rgb_to_image_msg(self.scene.camera(t_s), ego.stamp_ns, 'camera_front_optical', self.encoding))

    def publish_frame(self) -> None:
        """One frame, stamped when it is captured. Live, the scene is rendered at that time, so the odometry's
        pose agrees with its stamp even when this thread runs late on a loaded machine (a frame rendered for
        its slot and stamped later would put the car where it was, not where it is). Replayed frames are
        rendered once and restamped."""
        stamp_ns = self.get_clock().now().nanoseconds
        if self.replay_frames:
            frame = self._frame % self.replay_frames
            if frame not in self._rendered:
                self._rendered[frame] = self.render(frame * self.period_s)
            odometry, lidar, camera = self._rendered[frame]
        else:
            odometry, lidar, camera = self.render((stamp_ns - self._start_ns) / 1e9)
        self._frame += 1
        stamp = ns_to_stamp(stamp_ns)
        for msg in (odometry, lidar, camera):
            msg.header.stamp = stamp
        self.odometry_pub.publish(odometry)
        self.lidar_pub.publish(lidar)
        if self.camera_enabled.is_set():
            self.camera_pub.publish(camera)
        with self._lock:
            self.published_stamps.append(stamp_ns)

    def stamps(self) -> list[int]:
        with self._lock:
            return list(self.published_stamps)

