"""The scenario families' names, without importing highway-env (command-line parsers use them for --help).

Owns: :data:`SCENARIOS` and :func:`scenario_id`, which accepts a family with or without its version.
The families themselves are in :mod:`sim_bridge.envs`.
"""

import argparse

SCENARIOS = ('highway-v0', 'merge-v0', 'roundabout-v0', 'intersection-v0')


class UnknownScenario(ValueError, argparse.ArgumentTypeError):
    """A name that is no scenario family (as an argparse ``type``, its message is shown as it is)."""


def scenario_id(name: str) -> str:
    """The scenario id of ``name``: a family with or without its version (``highway`` or ``highway-v0``)."""
    key = name.strip().lower()
    for scenario in SCENARIOS:
        if key in (scenario, scenario.rsplit('-', 1)[0]):
            return scenario
    raise UnknownScenario(f'unknown scenario {name!r}: choose one of {", ".join(SCENARIOS)} '
                          f'(the version may be left out: {", ".join(s.rsplit("-", 1)[0] for s in SCENARIOS)})')
