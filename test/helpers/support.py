"""What tests import: the repository's paths, the shared data's, and the Hypothesis profiles with ``examples``.

Hypothesis profiles (``HYPOTHESIS_PROFILE``): ``ci``, the default, is derandomised, so every run of ``make test``
draws the same examples; ``fuzz`` (``make fuzz``) draws ``FUZZ_FACTOR`` times as many random ones, and
conftest.py prints each failing example as a regression test to paste into the test's file.
"""

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / 'shared' / 'data'
REAL_SAMPLE = SHARED_DATA / 'real_urban_sample'
RECORDED_BAGS = SHARED_DATA / 'rosbag2_recorded'
STACK_CONFIG = REPO / 'config' / 'stack.yaml'

_HYPOTHESIS = dict(deadline=None, database=None, print_blob=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile('ci', derandomize=True, **_HYPOTHESIS)
settings.register_profile('fuzz', derandomize=False, **_HYPOTHESIS)
PROFILE = os.environ.get('HYPOTHESIS_PROFILE', 'ci')
settings.load_profile(PROFILE)
FUZZ_FACTOR = int(os.environ.get('FUZZ_FACTOR', '10')) if PROFILE == 'fuzz' else 1


def examples(ci_count: int) -> settings:
    """A property test's settings: ``ci_count`` examples in CI, ``FUZZ_FACTOR`` times as many under make fuzz."""
    return settings(max_examples=ci_count * FUZZ_FACTOR)
