"""Declare a node's parameters from its schema, after checking its overrides.

The node's ``--params-file`` overrides are validated with :mod:`stack_common.config`
(unknown keys, wrong types and out-of-range values stop the node at start-up
with a message naming the key), a sensor left without its mounting is named in
a warning, then every parameter is declared read-only with its description and
range, so ``ros2 param describe`` documents it.
"""

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

from stack_common.config import RCLPY_PARAMETERS, flatten, load_schema, uncalibrated_sensors, unflatten, validate

_ARRAY_TYPES = {
    'number': Parameter.Type.DOUBLE_ARRAY,
    'integer': Parameter.Type.INTEGER_ARRAY,
    'string': Parameter.Type.STRING_ARRAY,
    'boolean': Parameter.Type.BOOL_ARRAY,
}
_SCALAR_TYPES = {
    'number': Parameter.Type.DOUBLE,
    'integer': Parameter.Type.INTEGER,
    'string': Parameter.Type.STRING,
    'boolean': Parameter.Type.BOOL,
}


def declare_node_config(node: Node, package: str) -> dict:
    """Validate the overrides given to ``node`` and declare them all; returns the nested config."""
    schema = load_schema(package, node.get_name())
    # rclpy keeps the parameter-file values it received for this node here; it
    # has no public accessor for values that were not (yet) declared.
    overrides = {}
    for name, parameter in node._parameter_overrides.items():
        if name in RCLPY_PARAMETERS or name.startswith('qos_overrides.'):
            continue
        value = parameter.value
        if value is None:
            # rcl's YAML parser cannot type an empty list (`key: []`) and hands it over unset
            if _leaf_schema(schema, name.split('.')).get('type') != 'array':
                continue
            value = []
        overrides[name] = value
    config = validate(schema, unflatten(overrides), node.get_name())
    for line in uncalibrated_sensors(unflatten(overrides), config):
        node.get_logger().warning(line)
    for name, value in flatten(config).items():
        leaf = _leaf_schema(schema, name.split('.'))
        node.declare_parameter(name, _typed(leaf, value), _descriptor(leaf), ignore_override=True)
    return config


def _leaf_schema(schema: dict, path: list[str]) -> dict:
    for key in path:
        schema = schema.get('properties', {}).get(key) or schema.get('additionalProperties') or {}
    return schema


def _typed(schema: dict, value) -> Parameter.Type | object:
    if isinstance(value, list) and not value:
        return _ARRAY_TYPES.get(schema.get('items', {}).get('type'), Parameter.Type.STRING_ARRAY)
    return value


def _descriptor(schema: dict) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=schema.get('description', ''), read_only=True)
    if 'type' in schema and schema['type'] in _SCALAR_TYPES:
        descriptor.type = _SCALAR_TYPES[schema['type']].value
    low, high = schema.get('minimum'), schema.get('maximum')
    if low is not None and high is not None:
        if schema.get('type') == 'integer':
            descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high))]
        elif schema.get('type') == 'number':
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high))]
    return descriptor
