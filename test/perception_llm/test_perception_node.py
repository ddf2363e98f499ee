"""perception_node as its own process over real DDS: bad input is counted and skipped, sensor loss is
reported, and the real sample comes back as the same tokens the core computes offline.

The test process plays the sensors (a probe node publishing camera, lidar and
odometry) and listens to /perception/fused_tokens, /perception/status and
/diagnostics. It waits on conditions with deadlines, never on sleeps.
"""

import threading
import time

import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField

from avstack.runtime.launcher import STACK_NODES, Launcher
from avstack.runtime.ros import RosRuntime
from avstack.synthetic.scene import SyntheticScene
from perception_llm.pipeline import PerceptionCore
from perception_llm.weights import load_encoders
from stack_common import topics
from stack_common.camera_info import Intrinsics, intrinsics_to_camera_info
from stack_common.config import load_node_config, read_params_files
from stack_common.image import rgb_to_compressed_msg, rgb_to_image_msg
from stack_common.odometry import EgoState, ego_to_odometry
from stack_common.pointcloud import array_to_cloud
from stack_common.qos import SENSOR_QOS, STATUS_QOS
from stack_common.timeutil import stamp_to_ns
from stack_common.tokens import Modality, cloud_to_tokens

from support import STACK_CONFIG
from real_sample import decoded, real_config, real_params, scene_messages

PERCEPTION = tuple(n for n in STACK_NODES if n.name == 'perception_node')
STARTUP_TIMEOUT_S = 60.0
MS = 1_000_000
SCENE = SyntheticScene(rings=16, azimuths=1000)     # a light sweep: this test is about handling, not load
CAMERA_INFO = '/sensors/camera/front/camera_info'
FRONT_CAMERA, TOP_LIDAR = topics.camera_topic('front'), topics.lidar_topic('top')


class PerceptionProbe(Node):
    """Publishes sensor messages and records perception's tokens, status and counters."""

    def __init__(self, camera_topic=FRONT_CAMERA, lidar_topic=TOP_LIDAR, compressed=False, **kwargs):
        super().__init__('perception_probe', **kwargs)
        self.changed = threading.Condition()
        self.tokens = {}              # stamp -> TokenSet
        self.missing = {}             # stamp -> missing sensors from /perception/status
        self.no_intrinsics = {}       # stamp -> cameras without intrinsics, from /perception/status
        self.counters: dict[str, str] = {}
        self.camera_pub = self.create_publisher(CompressedImage if compressed else Image, camera_topic, SENSOR_QOS)
        self.lidar_pub = self.create_publisher(PointCloud2, lidar_topic, SENSOR_QOS)
        self.odometry_pub = self.create_publisher(Odometry, topics.ODOMETRY, SENSOR_QOS)
        tokens_qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(PointCloud2, topics.FUSED_TOKENS, self.on_tokens, tokens_qos)
        self.create_subscription(DiagnosticArray, topics.PERCEPTION_STATUS, self.on_status, STATUS_QOS)
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self.on_diagnostics, STATUS_QOS)

    def on_tokens(self, msg: PointCloud2) -> None:
        tokens = cloud_to_tokens(msg)
        with self.changed:
            self.tokens[tokens.stamp_ns] = tokens
            self.changed.notify_all()

    def on_status(self, msg: DiagnosticArray) -> None:
        values = {kv.key: kv.value for kv in msg.status[0].values}
        with self.changed:
            self.missing[stamp_to_ns(msg.header.stamp)] = [m for m in values['missing'].split(',') if m]
            self.no_intrinsics[stamp_to_ns(msg.header.stamp)] = [m for m in values['no_intrinsics'].split(',') if m]
            self.changed.notify_all()

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == 'perception_node':
                with self.changed:
                    self.counters = {kv.key: kv.value for kv in status.values}
                    self.changed.notify_all()

    def wait_for(self, predicate, timeout_s: float, recheck_s: float = 0.1) -> bool:
        """Block until ``predicate(self)`` holds, re-checked on every message and every ``recheck_s``."""
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(min(recheck_s, remaining))
            return True

    def until_received(self, send, stamp_ns: int, attempts: int = 30) -> bool:
        """``send()`` once a second until tokens and status for ``stamp_ns`` came back (the first messages
        after discovery can still be lost on a best-effort topic)."""
        for _ in range(attempts):
            send()
            if self.wait_for(lambda p: stamp_ns in p.tokens and stamp_ns in p.missing, 1.0):
                return True
        return False

    def connected(self) -> bool:
        return (self.camera_pub.get_subscription_count() > 0 and self.lidar_pub.get_subscription_count() > 0
                and self.count_publishers(topics.FUSED_TOKENS) > 0)

    def frame(self, stamp_ns: int, camera=True, lidar=True, odometry=True, cloud=None,
              camera_frame='camera_front_optical', lidar_frame='lidar_top', t_s=None):
        """One synthetic frame (of scene time ``t_s``, default from the stamp); ``cloud`` replaces the lidar's
        structured points, given in ``lidar_frame``."""
        t_s = (stamp_ns % 10**11) / 1e9 if t_s is None else t_s
        if odometry:
            ego = SCENE.ego(t_s)
            ego.stamp_ns = stamp_ns
            self.odometry_pub.publish(ego_to_odometry(ego))
        if lidar:
            self.lidar_pub.publish(array_to_cloud(SCENE.lidar(t_s) if cloud is None else cloud, stamp_ns, lidar_frame))
        if camera:
            self.camera_pub.publish(rgb_to_image_msg(SCENE.camera(t_s), stamp_ns, camera_frame, 'bgr8'))


def log_tail(tmp_path, lines: int = 20) -> str:
    text = (tmp_path / 'node.log').read_text().splitlines()
    return 'perception_node did not connect; its log ends:\n' + '\n'.join(text[-lines:])


def counted(probe: PerceptionProbe, *keys: str) -> bool:
    return all(int(probe.counters.get(key, 0)) > 0 for key in keys)


def camera_message(stamp_ns: int, **fields) -> Image:
    msg = rgb_to_image_msg(SCENE.camera(0.0), stamp_ns, 'camera_front_optical', 'rgb8')
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


def lidar_message(stamp_ns: int, points: np.ndarray | None = None) -> PointCloud2:
    return array_to_cloud(SCENE.lidar(0.0) if points is None else points, stamp_ns, 'lidar_top')


@pytest.mark.timeout(180)
def test_each_kind_of_bad_input_is_counted_and_good_input_after_it_is_still_tokenized(ros_domain, tmp_path):
    with open(tmp_path / 'node.log', 'w') as log, RosRuntime() as ros, \
            Launcher(STACK_CONFIG, nodes=PERCEPTION, output=log) as launcher:
        probe = ros.add(PerceptionProbe(context=ros.context))
        assert probe.wait_for(lambda p: p.connected(), STARTUP_TIMEOUT_S), log_tail(tmp_path)
        now = probe.get_clock().now().nanoseconds
        stamp = [now + k * 100 * MS for k in range(12)]
        # the first frame may go out before the node's subscriptions matched ours: repeat until it comes back
        assert probe.until_received(lambda: probe.frame(stamp[0]), stamp[0]), 'no tokens: see node.log'

        # camera messages that do not decode
        probe.camera_pub.publish(camera_message(stamp[1], encoding='yuv422'))
        probe.camera_pub.publish(camera_message(stamp[2], step=1280 * 3 - 1))
        truncated = camera_message(stamp[3])
        truncated.data = truncated.data[:len(truncated.data) // 2]
        probe.camera_pub.publish(truncated)
        assert probe.wait_for(lambda p: counted(p, 'dropped/camera/front/unknown_encoding',
                                                'dropped/camera/front/bad_step', 'dropped/camera/front/truncated'), 5.0)

        # clouds that do not decode: cut short, and without an x field
        short = lidar_message(stamp[4])
        short.data = short.data[:len(short.data) - 100]
        probe.lidar_pub.publish(short)
        no_x = lidar_message(stamp[5])
        no_x.fields = [PointField(name='u' if f.name == 'x' else f.name, offset=f.offset, datatype=f.datatype,
                                  count=f.count) for f in no_x.fields]
        probe.lidar_pub.publish(no_x)
        assert probe.wait_for(lambda p: counted(p, 'dropped/lidar/top/truncated',
                                                'dropped/lidar/top/missing_field'), 5.0)

        # clouds that decode but are odd: NaN/inf points, no points, no intensity (and a camera in a wrong frame)
        with_nan = SCENE.lidar(0.6)
        with_nan['x'][::7], with_nan['z'][1::7] = np.nan, np.inf
        empty = SCENE.lidar(0.0)[:0]
        no_intensity = np.zeros(500, np.dtype({'names': ['x', 'y', 'z'], 'formats': ['<f4'] * 3}))
        no_intensity['x'] = 10.0
        for k, cloud in ((6, with_nan), (7, empty), (8, no_intensity)):
            probe.frame(stamp[k], cloud=cloud, camera_frame='camera_front_optical' if k < 8 else 'wrong_frame')
            assert probe.wait_for(lambda p, k=k: stamp[k] in p.tokens, 5.0), f'no tokens for the odd cloud of frame {k}'
            lidar_tokens = probe.tokens[stamp[k]].count(Modality.LIDAR)   # one per occupied BEV block of 300
            assert lidar_tokens == 0 if k == 7 else 0 < lidar_tokens < 300, lidar_tokens
        # stamps out of order and repeated, odometry going back
        probe.camera_pub.publish(camera_message(stamp[7] - 5 * MS))
        probe.camera_pub.publish(camera_message(stamp[8]))
        probe.odometry_pub.publish(ego_to_odometry(EgoState(stamp[2], 0.0, 0.0, 0.0, 5.0)))
        assert probe.wait_for(lambda p: counted(
            p, 'flagged/lidar/top/nonfinite_points', 'flagged/lidar/top/empty_cloud', 'flagged/lidar/top/no_intensity',
            'flagged/camera/front/frame_mismatch', 'dropped/camera/front/out_of_order',
            'dropped/camera/front/duplicate_stamp', 'dropped/odometry/out_of_order'), 5.0), probe.counters

        probe.frame(stamp[11])
        assert probe.wait_for(lambda p: stamp[11] in p.tokens and stamp[11] in p.missing, 5.0), \
            'good input after the bad is tokenized'
        good = probe.tokens[stamp[11]]
        assert good.count(Modality.CAMERA) == 32 and good.count(Modality.LIDAR) > 0 and probe.missing[stamp[11]] == []
        assert launcher.running['perception_node'].process.poll() is None
        assert not [key for key in probe.counters if key.endswith('internal_error')], 'no unexpected exception'


@pytest.mark.timeout(180)
def test_a_lost_lidar_is_masked_and_reported_and_its_return_is_noticed(ros_domain, tmp_path):
    with open(tmp_path / 'node.log', 'w') as log, RosRuntime() as ros, \
            Launcher(STACK_CONFIG, nodes=PERCEPTION, output=log):
        probe = ros.add(PerceptionProbe(context=ros.context))
        assert probe.wait_for(lambda p: p.connected(), STARTUP_TIMEOUT_S), log_tail(tmp_path)
        now = probe.get_clock().now().nanoseconds
        first = now
        assert probe.until_received(lambda: probe.frame(first), first), 'no tokens: see node.log'
        without_lidar = [now + k * 100 * MS for k in range(1, 4)]
        for stamp in without_lidar:
            probe.frame(stamp, lidar=False)
            assert probe.wait_for(lambda p, stamp=stamp: stamp in p.missing, 5.0), \
                'a set without the lidar is still published'
            assert probe.missing[stamp] == ['lidar/top']
            assert probe.tokens[stamp].count(Modality.LIDAR) == 0 and probe.tokens[stamp].count(Modality.CAMERA) == 32
        back = now + 500 * MS
        probe.frame(back)
        assert probe.wait_for(lambda p: back in p.missing, 5.0) and probe.missing[back] == []


@pytest.mark.timeout(180)
def test_the_real_sample_over_dds_gives_the_tokens_the_core_computes_offline(ros_domain, tmp_path, real_sample):
    scene = real_sample / 'scene_b'
    config = tmp_path / 'real.yaml'
    config.write_text(yaml.safe_dump({'perception_node': {'ros__parameters': real_params(scene, compressed=True)}}))
    image_msg, cloud_msg = scene_messages(scene)
    rgb, points, intensity = decoded(scene)
    png = rgb_to_compressed_msg(rgb, stamp_to_ns(image_msg.header.stamp), 'center_camera', 'png')
    config_offline = real_config(scene, compressed=True)
    offline = PerceptionCore(config_offline, load_encoders(config_offline)[0])   # the weights the node loads
    offline.add_camera('center', stamp_to_ns(image_msg.header.stamp), rgb, 0)
    [synced] = offline.add_lidar('top', stamp_to_ns(cloud_msg.header.stamp), points, intensity, 0)
    expected = offline.tokenize(synced)
    with open(tmp_path / 'node.log', 'w') as log, RosRuntime() as ros, \
            Launcher(config, nodes=PERCEPTION, output=log):
        probe = ros.add(PerceptionProbe(camera_topic=topics.compressed_camera_topic('center'), compressed=True,
                                        context=ros.context))
        assert probe.wait_for(lambda p: p.connected(), STARTUP_TIMEOUT_S), log_tail(tmp_path)

        def send() -> None:
            probe.camera_pub.publish(png)
            probe.lidar_pub.publish(cloud_msg)
        assert probe.until_received(send, expected.tokens.stamp_ns), 'no tokens for the real frame: see node.log'
        received = probe.tokens[expected.tokens.stamp_ns]
        assert probe.missing[received.stamp_ns] == ['odometry'], 'the sample has no odometry'
        assert np.array_equal(received.modality, expected.tokens.modality)
        assert np.allclose(received.embedding, expected.tokens.embedding, atol=1e-5)
        assert np.array_equal(received.anchors, expected.tokens.anchors, equal_nan=True)


@pytest.mark.timeout(180)
def test_a_cloud_in_base_link_is_used_as_it_is_and_camera_info_gives_the_camera_its_intrinsics(ros_domain, tmp_path):
    """The shipped lidar is 1.8 m up in lidar_top; the same sweep sent in base_link (raised by 1.8 m) must give
    the same tokens. The camera has no intrinsics in the config, only a camera_info topic."""
    config = tmp_path / 'camera_info.yaml'
    config.write_text(yaml.safe_dump({'perception_node': {'ros__parameters': {'camera': {'front': {
        'intrinsics': [], 'camera_info_topic': CAMERA_INFO}}}}}))
    params = tmp_path / 'params.yaml'
    params.write_text(yaml.safe_dump(read_params_files([STACK_CONFIG, config])))
    sweep = SCENE.lidar(0.5)
    in_base = sweep.copy()
    in_base['z'] += load_node_config('perception_llm', 'perception_node', params)['lidar']['top']['translation_m'][2]
    with open(tmp_path / 'node.log', 'w') as log, RosRuntime() as ros, \
            Launcher(params, nodes=PERCEPTION, output=log):
        probe = ros.add(PerceptionProbe(context=ros.context))
        info_pub = probe.create_publisher(CameraInfo, CAMERA_INFO, SENSOR_QOS)
        assert probe.wait_for(lambda p: p.connected(), STARTUP_TIMEOUT_S), log_tail(tmp_path)
        now = probe.get_clock().now().nanoseconds
        sensor_stamp, base_stamp, calibrated = now, now + 100 * MS, now + 200 * MS
        assert probe.until_received(lambda: probe.frame(sensor_stamp, cloud=sweep, t_s=0.5), sensor_stamp)
        probe.frame(base_stamp, cloud=in_base, lidar_frame='base_link', t_s=0.5)
        assert probe.wait_for(lambda p: base_stamp in p.tokens and base_stamp in p.no_intrinsics, 5.0)
        lidar = [probe.tokens[s].modality == Modality.LIDAR for s in (sensor_stamp, base_stamp)]
        np.testing.assert_allclose(probe.tokens[base_stamp].embedding[lidar[1]],
                                   probe.tokens[sensor_stamp].embedding[lidar[0]], atol=1e-5)
        assert 'flagged/lidar/top/frame_mismatch' not in probe.counters

        # until a camera_info came, the status says the camera has no intrinsics and its tokens no position
        assert probe.no_intrinsics[base_stamp] == ['camera/front']
        camera = probe.tokens[base_stamp].modality == Modality.CAMERA
        assert np.isnan(probe.tokens[base_stamp].anchors[camera]).all()
        info = intrinsics_to_camera_info(Intrinsics(800.0, 800.0, 640.0, 360.0, (), (1280, 720)), now, 'cam')

        def send() -> None:
            info_pub.publish(info)
            probe.frame(calibrated, cloud=sweep, t_s=0.5)
        assert probe.until_received(send, calibrated)
        assert probe.wait_for(lambda p: p.no_intrinsics.get(calibrated) == [], 5.0), probe.no_intrinsics
        anchors = probe.tokens[calibrated].anchors[probe.tokens[calibrated].modality == Modality.CAMERA]
        # 17 of the 32 camera patches see the ground (the road and the fences), measured; none without intrinsics
        assert np.isfinite(anchors).all(axis=1).sum() > 10, 'the road and the fences have positions now'
