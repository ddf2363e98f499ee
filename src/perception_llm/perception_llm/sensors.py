"""The sensor rig from a perception node config: each camera and lidar with topic, frame and calibration.

Reads the ``cameras``/``lidars`` lists and their ``camera.<name>`` /
``lidar.<name>`` sections (see the node's schema) into frozen specs, with the
stack's default topics and frame names filled in. Checks the schema cannot
express (a section for a sensor that is not listed, a degenerate quaternion)
raise :class:`~stack_common.config.ConfigError` naming the key.
"""

from dataclasses import dataclass

import numpy as np

from perception_llm.calibration import CameraModel, sensor_to_base
from stack_common import topics
from stack_common.config import ConfigError
from stack_common.frames import FramePolicy, default_sensor_frame


@dataclass(frozen=True)
class CameraSpec:
    name: str
    index: int                      # camera id: position in the ``cameras`` list
    topic: str
    frame_id: str
    compressed: bool
    base_from_sensor: np.ndarray    # 4x4, camera optical frame -> base_link
    model: CameraModel | None       # from the configured intrinsics; None when there are none
    frames: FramePolicy             # what a header.frame_id means for this camera
    camera_info_topic: str = ''     # sensor_msgs/CameraInfo whose K and D replace the configured intrinsics

    @property
    def key(self) -> str:
        return camera_key(self.name)


@dataclass(frozen=True)
class LidarSpec:
    name: str
    index: int
    topic: str
    frame_id: str
    base_from_sensor: np.ndarray    # 4x4, lidar frame -> base_link
    max_intensity: float            # raw intensity that maps to 1.0
    frames: FramePolicy             # clouds in the base frame are used as they are

    @property
    def key(self) -> str:
        return lidar_key(self.name)


def camera_key(name: str) -> str:
    return f'camera/{name}'


def lidar_key(name: str) -> str:
    return f'lidar/{name}'


def _extrinsic(section: dict, where: str) -> np.ndarray:
    try:
        return sensor_to_base(section.get('translation_m', (0.0, 0.0, 0.0)),
                              section.get('rotation_rpy_rad', (0.0, 0.0, 0.0)),
                              section.get('rotation_quat_xyzw', ()))
    except ValueError as error:
        raise ConfigError(f'perception_node: {where}: {error}') from error


def _sections(config: dict, kind: str, names: list[str]) -> None:
    unknown = sorted(set(config.get(kind, {})) - set(names))
    if unknown:
        raise ConfigError(f'perception_node: {kind}.{unknown[0]} configures a {kind} that is not in '
                          f'{kind}s {names}')
    if len(set(names)) != len(names):
        raise ConfigError(f'perception_node: {kind}s lists a name twice: {names}')


def camera_specs(config: dict) -> list[CameraSpec]:
    names = list(config['cameras'])
    _sections(config, 'camera', names)
    specs = []
    for index, name in enumerate(names):
        section = config['camera'].get(name, {})
        compressed = section.get('compressed', False)
        base_from_sensor = _extrinsic(section, f'camera.{name}')
        model = None
        if section.get('intrinsics'):
            fx, fy, cx, cy = section['intrinsics']
            try:
                model = CameraModel(fx, fy, cx, cy, tuple(section.get('distortion', ())), base_from_sensor)
            except ValueError as error:
                raise ConfigError(f'perception_node: camera.{name}: {error}') from error
        frame_id = section.get('frame_id') or default_sensor_frame('camera', name)
        specs.append(CameraSpec(
            name=name, index=index,
            topic=section.get('topic') or (topics.compressed_camera_topic(name) if compressed
                                           else topics.camera_topic(name)),
            frame_id=frame_id, compressed=compressed, base_from_sensor=base_from_sensor, model=model,
            frames=FramePolicy(camera_key(name), frame_id, base_frame=None),
            camera_info_topic=section.get('camera_info_topic', '')))
    return specs


def lidar_specs(config: dict) -> list[LidarSpec]:
    names = list(config['lidars'])
    _sections(config, 'lidar', names)
    specs = []
    for index, name in enumerate(names):
        section = config['lidar'].get(name, {})
        frame_id = section.get('frame_id') or default_sensor_frame('lidar', name)
        specs.append(LidarSpec(
            name=name, index=index, topic=section.get('topic') or topics.lidar_topic(name), frame_id=frame_id,
            base_from_sensor=_extrinsic(section, f'lidar.{name}'),
            max_intensity=float(section.get('max_intensity', 255.0)),
            frames=FramePolicy(lidar_key(name), frame_id, config['base_frame_id'])))
    return specs
