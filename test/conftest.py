"""Shared fixtures: an isolated ROS domain per test, the shared data (skipped where it is missing), and failing
Hypothesis examples printed as regression tests. What tests import (paths, ``examples``) is in ``support.py``.
"""

import itertools
import math
import os
import random
import zlib
from pathlib import Path

import pytest

from stack_common.transport import configure_dds_transport
from support import REAL_SAMPLE, RECORDED_BAGS, REPO

# Markers (pytest.ini registers them); `make test-fast` runs `-m unit`. Assigned here, so no test is left
# without one: test/integration/ is `slow` and `dds` (or `sim`: it drives highway-env); a test elsewhere
# that joins a DDS domain (it uses the ros_domain fixture) is `dds`; the rest is `unit`, except the modules
# below, slower than a unit test should be (seconds to minutes each, measured with --durations).
SIM_MODULES = {'test_sim_run', 'test_planner_behaviour', 'test_sim_expert_noise'}
INTEGRATION = REPO / 'test' / 'integration'
SLOW_MODULES = {'test_planner_behaviour', 'test_sim_expert_noise', 'test_training', 'test_train_cli', 'test_dagger',
                'test_colcon_build'}

def pytest_collection_modifyitems(items):
    for item in items:
        module = item.path.stem
        if module in SIM_MODULES:
            item.add_marker(pytest.mark.sim)
        if module in SLOW_MODULES or INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.slow)
        if (INTEGRATION in item.path.parents and module not in SIM_MODULES) or 'ros_domain' in item.fixturenames:
            item.add_marker(pytest.mark.dds)
        if not any(item.get_closest_marker(name) for name in ('dds', 'sim', 'slow')):
            item.add_marker(pytest.mark.unit)


# Parallel test runs on one machine must not hear each other: a domain per test,
# starting from a per-process offset. Fast DDS supports domain ids 0..232.
_domains = itertools.count(random.Random(os.getpid()).randrange(1, 200))


@pytest.fixture(autouse=True, scope='session')
def state_directory(tmp_path_factory) -> Path:
    """What nodes and commands write when no --out is given (critic statistics, demo runs) stays in the run."""
    path = tmp_path_factory.mktemp('xdg_state')
    os.environ['XDG_STATE_HOME'] = str(path)
    return path


@pytest.fixture
def ros_domain(monkeypatch) -> int:
    """A fresh ROS_DOMAIN_ID (and the stack's DDS transport) for this test and the processes it starts."""
    domain = next(_domains) % 230 + 1
    monkeypatch.setenv('ROS_DOMAIN_ID', str(domain))
    configure_dds_transport(os.environ)
    return domain


@pytest.fixture
def real_sample() -> Path:
    if not REAL_SAMPLE.is_dir():
        pytest.skip(f'real sensor sample not found at {REAL_SAMPLE}')
    return REAL_SAMPLE


@pytest.fixture
def recorded_bags() -> Path:
    """Bags written by rosbag2's own C++ writer (see its README.md)."""
    if not RECORDED_BAGS.is_dir():
        pytest.skip(f'bags recorded by ros2 bag not found at {RECORDED_BAGS}')
    return RECORDED_BAGS


# --- failing Hypothesis examples as regression tests -------------------------------------------------

_regressions: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Remember the arguments of the last failing call of a Hypothesis test's body (its final, shrunk replay)."""
    hypothesis = getattr(getattr(item, 'obj', None), 'hypothesis', None)
    if hypothesis is None:
        yield
        return
    inner, failing = hypothesis.inner_test, {}

    def recording(*args, **kwargs):
        try:
            return inner(*args, **kwargs)
        except BaseException:
            failing.clear()
            failing.update(kwargs)
            raise
    hypothesis.inner_test = recording
    outcome = yield
    hypothesis.inner_test = inner
    if outcome.excinfo is not None and failing:
        _regressions.append(regression_test(item, failing))


def regression_test(item, arguments: dict) -> str:
    """The failing call as a test function to paste into the test's own file (imports above it)."""
    generated = {k: v for k, v in arguments.items() if k not in item.fixturenames}
    texts = {k: repr(v) for k, v in generated.items()}
    modules = sorted({'.'.join(type(v).__module__.split('.')[:2]) for v in _leaves(generated.values())
                      if type(v).__module__.endswith('.msg') or '.msg.' in type(v).__module__})
    namespace = {'inf': math.inf, 'nan': math.nan}
    for module in modules:
        exec(f'import {module}', namespace)
    try:
        exact = all(repr(eval(text, namespace)) == texts[k] for k, text in texts.items())
    except Exception:  # noqa: BLE001 - a value whose repr is not Python: say so instead of a broken test
        exact = False
    fixtures = [name for name in item.fixturenames if name in arguments]
    name = item.originalname or item.name
    digest = f'{zlib.crc32("".join(texts.values()).encode()):08x}'
    lines = [f'# {item.path.relative_to(REPO)}: regression test for a failing example of {name}']
    if not exact:
        lines.append('# (some values do not repr to Python; use the @reproduce_failure line above instead)')
    lines += [f'import {module}' for module in modules] + ['from math import inf, nan', '', '',
              f'def test_{name.removeprefix("test_")}_example_{digest}({", ".join(fixtures)}):',
              f'    {name}.hypothesis.inner_test(']
    lines += [f'        {k}={k},' for k in fixtures] + [f'        {k}={text},' for k, text in texts.items()]
    return '\n'.join(lines + ['    )'])


def _leaves(values):
    for value in values:
        yield value
        if isinstance(value, (list, tuple)):
            yield from _leaves(value)
        for slot in getattr(value, '__slots__', ()):
            yield from _leaves([getattr(value, slot, None)])


def pytest_terminal_summary(terminalreporter):
    for text in _regressions:
        terminalreporter.section('failing example as a regression test', sep='-')
        terminalreporter.write_line(text)
