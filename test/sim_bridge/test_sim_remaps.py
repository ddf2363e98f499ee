"""The remap configs for other simulators and stacks: valid over stack.yaml, and perception and critic agree.

A user of carla-ros-bridge or Autoware passes one of config/remaps/*.yaml after config/stack.yaml; the
merged file must pass every node's schema, perception must read the simulator's topics, and the critic must
watch the very topics perception reads (else its watchdogs would fire on topics nobody publishes) and place the
lidar the same way; the camera's intrinsics come from the simulator's or Autoware's camera_info.
"""

import pytest
import yaml

from avstack.runtime.launcher import STACK_NODES, check_config
from stack_common.config import load_node_config, read_params_files

from support import REPO, STACK_CONFIG

REMAPS = {
    'carla_ros_bridge.yaml': ('/carla/ego_vehicle/rgb_front/image', '/carla/ego_vehicle/rgb_front/camera_info',
                              '/carla/ego_vehicle/lidar', '/carla/ego_vehicle/odometry'),
    'autoware.yaml': ('/sensing/camera/camera0/image_raw', '/sensing/camera/camera0/camera_info',
                      '/sensing/lidar/concatenated/pointcloud', '/localization/kinematic_state'),
}


@pytest.mark.parametrize('name, expected', REMAPS.items())
def test_a_remap_over_stack_yaml_is_valid_and_perception_and_critic_read_the_same_topics(name, expected, tmp_path):
    merged = tmp_path / 'params.yaml'
    merged.write_text(yaml.safe_dump(read_params_files([STACK_CONFIG, REPO / 'config' / 'remaps' / name])))
    check_config(merged, STACK_NODES)
    perception = load_node_config('perception_llm', 'perception_node', merged)
    critic = load_node_config('critic_monitor', 'critic_node', merged)
    camera, camera_info, lidar, odometry = expected
    assert perception['camera']['front']['topic'] == camera and critic['camera_topics'] == [camera]
    assert perception['camera']['front']['camera_info_topic'] == camera_info
    assert perception['camera']['front']['intrinsics'] == [], 'stack.yaml\'s intrinsics would apply until camera_info'
    assert perception['lidar']['top']['topic'] == lidar and critic['lidar']['top']['topic'] == lidar
    assert perception['odometry_topic'] == odometry == critic['odometry_topic']
    for key in ('frame_id', 'translation_m', 'rotation_rpy_rad'):
        assert perception['lidar']['top'][key] == critic['lidar']['top'][key], key
    # What the remap does not mention keeps the value of stack.yaml.
    stack = yaml.safe_load(STACK_CONFIG.read_text())['perception_node']['ros__parameters']
    assert perception['sync'] == stack['sync'] and perception['token_dim'] == stack['token_dim']
