"""Shared fixtures: an isolated ROS domain per test, and the paths of shared data."""

import itertools
import os
import random
from pathlib import Path

import pytest

from stack_common.transport import configure_dds_transport

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / 'shared' / 'data'
REAL_SAMPLE = SHARED_DATA / 'real_urban_sample'
STACK_CONFIG = REPO / 'config' / 'stack.yaml'

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
