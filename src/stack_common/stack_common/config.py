"""Node configuration: ROS 2 parameter files checked against a JSON schema per node.

Every node has ``<package>/schema/<node>.schema.json`` (JSON Schema draft 7,
as Autoware does). The schema holds each parameter's type, range, default and
description; ``additionalProperties: false`` makes unknown keys an error.
The same functions serve the live node (its ``--params-file`` overrides), the
offline tools (a YAML file) and the launcher's pre-flight check, so a bad
configuration fails the same way everywhere: at start-up, naming the key and
the allowed range.
"""

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

PARAMS_KEY = 'ros__parameters'
WILDCARD = '/**'
# Parameters rclpy itself declares or interprets; they are not part of a node's schema.
RCLPY_PARAMETERS = ('use_sim_time', 'start_type_description_service')


class ConfigError(ValueError):
    """A configuration that does not satisfy its schema; the message names the key."""


def load_schema(package: str, node_name: str) -> dict:
    text = resources.files(package).joinpath('schema', f'{node_name}.schema.json').read_text()
    return json.loads(text)


def read_params_file(path: str | Path) -> dict:
    """Parse a ROS 2 parameter file; a clear one-line error when it cannot be read."""
    try:
        document = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise ConfigError(f'cannot read config {path}: {error.strerror}') from error
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f'{path}:{mark.line + 1}:{mark.column + 1}' if mark else str(path)
        problem = ' '.join(filter(None, (error.context, error.problem)))
        raise ConfigError(f'config {where}: not valid YAML: {problem}') from error
    except yaml.YAMLError as error:
        raise ConfigError(f'config {path} is not valid YAML: {str(error).splitlines()[0]}') from error
    if not isinstance(document, dict):
        raise ConfigError(f'config {path} must map node names to {{{PARAMS_KEY}: ...}}')
    return document


def read_params_files(paths) -> dict:
    """Several parameter files laid over each other, later ones winning (as several ``--params-file``)."""
    return merge_documents(*(read_params_file(path) for path in paths))


def node_section(document: dict, node_name: str) -> dict:
    """The parameters a node named ``node_name`` receives: ``/**`` first, its own section on top."""
    merged: dict = {}
    for key in (WILDCARD, node_name, '/' + node_name):
        section = document.get(key)
        if section is None:
            continue
        if not isinstance(section, dict) or PARAMS_KEY not in section:
            raise ConfigError(f'section {key!r} must contain {PARAMS_KEY!r}')
        _deep_merge(merged, section[PARAMS_KEY] or {})
    for name in RCLPY_PARAMETERS:
        merged.pop(name, None)
    return merged


def unflatten(flat: dict[str, Any]) -> dict:
    """``{'a.b': 1}`` -> ``{'a': {'b': 1}}`` (how rclpy reports nested YAML keys)."""
    nested: dict = {}
    for key, value in flat.items():
        target = nested
        *parents, leaf = key.split('.')
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return nested


def flatten(nested: dict, prefix: str = '') -> dict[str, Any]:
    flat = {}
    for key, value in nested.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            flat.update(flatten(value, name + '.'))
        else:
            flat[name] = value
    return flat


def validate(schema: dict, params: dict, node_name: str) -> dict:
    """Fill defaults, coerce integers given for numbers, and check ``params``; returns the config."""
    config = copy.deepcopy(params)
    _fill_defaults(schema, config)
    _coerce_numbers(schema, config)
    import jsonschema   # here: the command line reads schemas (its choices) without it
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError('; '.join(_describe(node_name, error) for error in errors[:5]))
    return config


def uncalibrated_sensors(params: dict, config: dict) -> list[str]:
    """The sensors of a validated ``config`` whose mounting the given ``params`` leave to the schema defaults.

    A camera or lidar whose section in the parameter files lacks ``translation_m`` or a rotation (or, for a
    camera, ``intrinsics``) is placed at base_link's origin, unrotated: what a parameter file that replaced
    config/stack.yaml instead of being laid over it does. One line per sensor, for a start-up warning.
    """
    lines = []
    for kind, listed in (('camera', 'cameras'), ('lidar', 'lidars')):
        for name in config.get(listed) or []:
            given = (params.get(kind) or {}).get(name) or {}
            absent = [key for key in ('translation_m',) if key not in given]
            if 'rotation_rpy_rad' not in given and 'rotation_quat_xyzw' not in given:
                absent.append('rotation_rpy_rad')
            if kind == 'camera' and 'intrinsics' not in given:
                absent.append('intrinsics')
            if absent:
                lines.append(f'{kind} {name} has no {", ".join(absent)} in its parameters: their defaults '
                             f'apply (at base_link\'s origin, unrotated, no intrinsics). Was a parameter file '
                             f'given instead of laid over config/stack.yaml?')
    return lines


def load_node_config(package: str, node_name: str, path: str | Path | None = None) -> dict:
    """The validated config of one node from a parameter file (schema defaults when ``path`` is None)."""
    params = node_section(read_params_file(path), node_name) if path else {}
    return validate(load_schema(package, node_name), params, node_name)


def merge_documents(*documents: dict) -> dict:
    """Parameter documents merged left to right, as several ``--params-file`` are: later keys win."""
    merged: dict = {}
    for document in documents:
        _deep_merge(merged, document)
    return merged


def _deep_merge(target: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _subschemas(schema: dict, instance: dict):
    """(key, subschema) for each key of ``instance`` the object schema describes."""
    properties = schema.get('properties', {})
    extra = schema.get('additionalProperties')
    for key in instance:
        if key in properties:
            yield key, properties[key]
        elif isinstance(extra, dict):
            yield key, extra


def _fill_defaults(schema: dict, instance: dict) -> None:
    for key, subschema in schema.get('properties', {}).items():
        if key not in instance and 'default' in subschema:
            instance[key] = copy.deepcopy(subschema['default'])
        elif key not in instance and subschema.get('type') == 'object':
            instance[key] = {}
    for key, subschema in _subschemas(schema, instance):
        if isinstance(instance[key], dict):
            _fill_defaults(subschema, instance[key])


def _coerce_numbers(schema: dict, instance: dict) -> None:
    for key, subschema in _subschemas(schema, instance):
        value = instance[key]
        if isinstance(value, dict):
            _coerce_numbers(subschema, value)
        elif subschema.get('type') == 'number' and isinstance(value, int) and not isinstance(value, bool):
            instance[key] = float(value)
        elif (subschema.get('type') == 'array' and subschema.get('items', {}).get('type') == 'number'
              and isinstance(value, list)):
            instance[key] = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]


def allowed(schema: dict) -> str:
    """A human description of what a schema admits: type, range, choices."""
    parts = [schema.get('type', 'any')]
    if 'enum' in schema:
        parts.append(f'one of {schema["enum"]}')
    low = schema.get('minimum', schema.get('exclusiveMinimum'))
    high = schema.get('maximum', schema.get('exclusiveMaximum'))
    if low is not None or high is not None:
        left = '(' if 'exclusiveMinimum' in schema else '['
        right = ')' if 'exclusiveMaximum' in schema else ']'
        parts.append(f'in {left}{"-inf" if low is None else low}, {"inf" if high is None else high}{right}')
    if 'minItems' in schema or 'maxItems' in schema:
        parts.append(f'with {schema.get("minItems", 0)}..{schema.get("maxItems", "any")} items')
    return ' '.join(str(p) for p in parts)


def _describe(node_name: str, error) -> str:
    """One line for a jsonschema.ValidationError."""
    path = '.'.join(str(p) for p in error.absolute_path)
    if error.validator == 'additionalProperties':
        known = sorted(error.schema.get('properties', {}))
        unknown = sorted(set(error.instance) - set(known))
        where = f'{path}.' if path else ''
        return (f'{node_name}: unknown parameter(s) {", ".join(where + u for u in unknown)}'
                + (f' (known here: {", ".join(known)})' if known else ''))
    if error.validator == 'required':
        return f'{node_name}: {path or "config"}: {error.message}'
    return f'{node_name}: parameter {path!r} = {error.instance!r} is invalid: expected {allowed(error.schema)}'
