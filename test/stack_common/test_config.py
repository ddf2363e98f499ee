"""Node configs: schema defaults, the shipped YAML, and errors that name the key and the allowed range."""

import json
from pathlib import Path

import pytest
import yaml

from avstack.runtime.launcher import STACK_NODES, check_config
from stack_common.config import ConfigError, flatten, load_node_config, load_schema, node_section, validate

from support import STACK_CONFIG


@pytest.mark.parametrize('node', STACK_NODES, ids=lambda n: n.name)
def test_shipped_config_is_valid(node):
    load_node_config(node.package, node.name, STACK_CONFIG)


@pytest.mark.parametrize('node', STACK_NODES, ids=lambda n: n.name)
def test_shipped_config_lists_every_parameter(node):
    """The YAML shows users every parameter a node has (sensor sections may add more)."""
    shipped = flatten(node_section(yaml.safe_load(STACK_CONFIG.read_text()), node.name))
    defaults = flatten(validate(load_schema(node.package, node.name), {}, node.name))
    missing = sorted(k for k in defaults if k not in shipped and not k.startswith(('camera.', 'lidar.')))
    assert not missing


@pytest.mark.parametrize('node', STACK_NODES, ids=lambda n: n.name)
def test_every_schema_parameter_is_documented(node):
    schema = load_schema(node.package, node.name)

    def leaves(s, path=''):
        for key, sub in s.get('properties', {}).items():
            if sub.get('type') == 'object':
                yield from leaves(sub.get('additionalProperties') if isinstance(sub.get('additionalProperties'),
                                                                                 dict) else sub, f'{path}{key}.')
            else:
                yield f'{path}{key}', sub
    undocumented = [name for name, sub in leaves(schema) if not sub.get('description')]
    assert not undocumented


def write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / 'config.yaml'
    path.write_text(yaml.safe_dump(document))
    return path


def test_unknown_key_is_named(tmp_path):
    path = write(tmp_path, {'critic_node': {'ros__parameters': {'checks': {'staleness': {'max_age': 0.2}}}}})
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) checks\.staleness\.max_age .*max_age_s"):
        load_node_config('critic_monitor', 'critic_node', path)


def test_out_of_range_value_names_key_and_range(tmp_path):
    path = write(tmp_path, {'critic_node': {'ros__parameters': {'timer_hz': 5.0}}})
    with pytest.raises(ConfigError, match=r"'timer_hz' = 5\.0 .*in \[20\.0, 1000\.0\]"):
        load_node_config('critic_monitor', 'critic_node', path)


def test_wrong_type_is_named(tmp_path):
    path = write(tmp_path, {'planner_node': {'ros__parameters': {'num_threads': 'two'}}})
    with pytest.raises(ConfigError, match=r"'num_threads' = 'two' .*integer"):
        load_node_config('planner', 'planner_node', path)


def test_integer_for_a_float_parameter_is_accepted(tmp_path):
    path = write(tmp_path, {'critic_node': {'ros__parameters': {'timer_hz': 40}}})
    assert load_node_config('critic_monitor', 'critic_node', path)['timer_hz'] == 40.0


def test_wildcard_section_applies_and_node_section_wins(tmp_path):
    document = {'/**': {'ros__parameters': {'use_sim_time': True, 'num_threads': 2}},
                'planner_node': {'ros__parameters': {'num_threads': 3}}}
    assert node_section(document, 'planner_node') == {'num_threads': 3}
    path = write(tmp_path, document)
    assert load_node_config('planner', 'planner_node', path)['num_threads'] == 3        # its own section wins
    assert load_node_config('perception_llm', 'perception_node', path)['num_threads'] == 2  # /** applies
    assert load_node_config('perception_llm', 'perception_node')['num_threads'] != 2      # (not the default)


@pytest.mark.parametrize('node', STACK_NODES, ids=lambda n: n.name)
def test_the_loaded_config_holds_the_values_of_the_yaml(node):
    """Every value the shipped YAML gives a node (its /** section, then its own) is the loaded value."""
    document = yaml.safe_load(STACK_CONFIG.read_text())
    expected = {}
    for section in ('/**', node.name):
        expected.update(flatten(document.get(section, {}).get('ros__parameters', {})))
    expected.pop('use_sim_time', None)   # rclpy's own parameter, not in the schema
    loaded = flatten(load_node_config(node.package, node.name, STACK_CONFIG))
    assert expected and {key: loaded.get(key) for key in expected} == expected


def test_unknown_node_section_fails_the_preflight(tmp_path):
    path = write(tmp_path, {'planer_node': {'ros__parameters': {}}})
    with pytest.raises(ConfigError, match='planer_node'):
        check_config(path)


def test_unreadable_config_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match='cannot read config'):
        check_config(tmp_path / 'missing.yaml')
    bad = tmp_path / 'bad.yaml'
    bad.write_text('planner_node: [unclosed')
    with pytest.raises(ConfigError, match='not valid YAML'):
        check_config(bad)


@pytest.mark.parametrize('node', STACK_NODES, ids=lambda n: n.name)
def test_schemas_are_valid_json_schema(node):
    import jsonschema
    jsonschema.Draft7Validator.check_schema(load_schema(node.package, node.name))
    json.dumps(load_schema(node.package, node.name))


def test_a_node_declares_its_validated_parameters_from_a_params_file(tmp_path):
    """Through rclpy's own YAML parser: descriptors, coerced integers, and `[]` (which rcl hands over unset)."""
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node

    from stack_common.ros_params import declare_node_config
    path = write(tmp_path, {'critic_node': {'ros__parameters': {'timer_hz': 40, 'camera_topics': []}}})
    context = Context()
    rclpy.init(args=['--ros-args', '--params-file', str(path)], context=context)
    try:
        node = Node('critic_node', context=context)
        config = declare_node_config(node, 'critic_monitor')
        assert config['timer_hz'] == 40.0 and config['camera_topics'] == []
        assert node.get_parameter('timer_hz').value == 40.0
        descriptor = node.describe_parameter('timer_hz')
        assert descriptor.read_only and descriptor.floating_point_range[0].from_value == 20.0
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_a_sensor_that_loses_its_calibration_through_a_params_file_is_named_at_start_up(tmp_path, capfd):
    """A file that replaces config/stack.yaml instead of following it drops the lidar's mounting: say so."""
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node

    from stack_common.ros_params import declare_node_config
    path = write(tmp_path, {'critic_node': {'ros__parameters': {'lidars': ['roof'],
                                                                 'lidar': {'roof': {'topic': '/points'}}}}})
    context = Context()
    rclpy.init(args=['--ros-args', '--params-file', str(path)], context=context)
    try:
        node = Node('critic_node', context=context)
        declare_node_config(node, 'critic_monitor')
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    err = capfd.readouterr().err
    assert 'lidar roof has no translation_m, rotation_rpy_rad in its parameters' in err, err


def test_the_shipped_config_and_its_overlays_keep_every_sensor_calibrated():
    from stack_common.config import read_params_files, uncalibrated_sensors
    for overlay in [[], ['sim.yaml'], ['remaps/autoware.yaml'], ['remaps/carla_ros_bridge.yaml']]:
        document = read_params_files([STACK_CONFIG, *(STACK_CONFIG.parent / o for o in overlay)])
        for node in STACK_NODES:
            params = node_section(document, node.name)
            assert uncalibrated_sensors(params, validate(load_schema(node.package, node.name), params, node.name)) \
                == [], (overlay, node.name)


def test_a_partial_config_is_laid_over_the_shipped_one_unless_no_defaults(tmp_path, monkeypatch):
    from argparse import Namespace

    from avstack.commands.options import UsageError, config_files
    from stack_common.config import read_params_files
    partial = write(tmp_path, {'perception_node': {'ros__parameters': {'odometry_topic': '/odom'}}})
    layered = node_section(read_params_files(config_files(Namespace(config=[partial], no_defaults=False))),
                           'perception_node')
    shipped = node_section(yaml.safe_load(STACK_CONFIG.read_text()), 'perception_node')
    assert layered['odometry_topic'] == '/odom' and layered['camera'] == shipped['camera']
    alone = node_section(read_params_files(config_files(Namespace(config=[partial], no_defaults=True))),
                         'perception_node')
    assert 'camera' not in alone
    with pytest.raises(UsageError, match='--no-defaults needs'):
        config_files(Namespace(config=[], no_defaults=True))
    # the README's config/... names work from any directory
    monkeypatch.chdir(tmp_path)
    found = config_files(Namespace(config=[Path('config/remaps/autoware.yaml')], no_defaults=False))[-1]
    assert found == STACK_CONFIG.parent / 'remaps' / 'autoware.yaml'


def test_a_yaml_syntax_error_names_file_line_and_column(tmp_path):
    from stack_common.config import read_params_file
    bad = tmp_path / 'bad.yaml'
    bad.write_text('critic_node:\n  ros__parameters:\n    camera_topics: [/a\n    timer_hz: 50.0\n')
    with pytest.raises(ConfigError, match=rf'config {bad}:4:13: not valid YAML: .*expected'):
        read_params_file(bad)
