"""Frames of the synthetic scene fed to a perception core at 10 Hz, for the perception tests."""

from avstack.synthetic.scene import SyntheticScene
from perception_llm.pipeline import PerceptionCore
from stack_common.config import load_node_config
from stack_common.odometry import EgoState
from stack_common.pointcloud import points_xyz_intensity

from support import STACK_CONFIG

MS = 1_000_000
PERIOD = 100 * MS
SCENE = SyntheticScene()


def perception_config() -> dict:
    """The perception node's configuration from the shipped config/stack.yaml."""
    return load_node_config('perception_llm', 'perception_node', STACK_CONFIG)


def feed_frame(core: PerceptionCore, k: int, camera=True, lidar=True, odometry=True, base_ns=10_000 * MS):
    """Frame k of the synthetic scene at 10 Hz; returns the sets it completed."""
    stamp = base_ns + k * PERIOD
    ready = []
    if odometry:
        core.add_odometry(EgoState(stamp, SCENE.speed_mps * k / 10, 0.0, 0.0, SCENE.speed_mps))
    if camera:
        ready += core.add_camera('front', stamp, SCENE.camera(k / 10), stamp + 5 * MS)
    if lidar:
        points, intensity = points_xyz_intensity(SCENE.lidar(k / 10))
        ready += core.add_lidar('top', stamp + 3 * MS, points, intensity, stamp + 20 * MS)
    return ready
