"""The command line's convention (docs/cli.md), checked on every subcommand's parser, and fast help."""

import argparse
import json
import subprocess
import sys

import pytest

from avstack.cli import SUBCOMMANDS, build_parser, main
from sim_bridge.scenarios import SCENARIOS
from stack_common.constants import EXIT_USAGE

HEAVY = ('torch', 'rclpy', 'highway_env', 'cv2')


def subcommands(parser: argparse.ArgumentParser, prefix=()):
    """(words, parser) of every subcommand, nested ones (bag reindex) included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from subcommands(sub, (*prefix, name))


def leaves():
    return [(words, parser) for words, parser in subcommands(build_parser())
            if not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)]


def option(parser, name):
    return next((a for a in parser._actions if name in a.option_strings), None)


LEAVES = leaves()


def test_every_module_in_the_table_is_a_subcommand():
    assert {words[0] for words, _ in LEAVES} == set(SUBCOMMANDS)


@pytest.mark.parametrize('words, parser', LEAVES, ids=[' '.join(w) for w, _ in LEAVES])
def test_each_subcommand_follows_the_convention(words, parser):
    assert parser.allow_abbrev is False
    options = {s for a in parser._actions for s in a.option_strings}
    out = option(parser, '--out')
    if out is not None:
        assert out.option_strings == ['-o', '--out'] and option(parser, '--force') is not None
    # one spelling per idea
    assert not options & {'--duration-s', '--clip-s', '--stamps-out', '--log'}, options
    duration = option(parser, '--duration')
    if duration is not None:
        assert duration.metavar == 'S' and duration.type.__name__ == 'seconds'
    mapping = option(parser, '--map')
    if mapping is not None:
        assert mapping.metavar == 'ROLE=TOPIC' and mapping.type.__name__ == 'map_entry'
    remap = option(parser, '--remap')
    if remap is not None:
        assert remap.metavar == 'FROM:=TO' and remap.type.__name__ == 'remap_entry'
    if option(parser, '--config') is not None:
        assert option(parser, '--config').default == [] and option(parser, '--no-defaults') is not None


@pytest.mark.parametrize('words', [w for w, _ in LEAVES], ids=[' '.join(w) for w, _ in LEAVES])
def test_a_bad_option_prints_the_subcommands_own_usage_and_exits_2(words, capsys):
    assert main([*words, '--no-such-option']) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f'usage: avstack {" ".join(words)} '), err
    assert 'unrecognized arguments: --no-such-option' in err or 'are required' in err, err


def test_options_are_not_abbreviated(tmp_path, capsys):
    assert main(['record', '-o', str(tmp_path / 'bag'), '--al']) == EXIT_USAGE   # once silently --all
    assert 'usage: avstack record' in capsys.readouterr().err


def test_map_takes_role_equals_topic_everywhere_and_says_what_is_wrong(tmp_path, capsys):
    for command in (['eval', 'bag'], ['mine', 'bag'], ['train', '--data', 'bag']):
        assert main([*command, '-o', str(tmp_path / 'out'), '--map', 'camera/front:=/cam']) == EXIT_USAGE
        assert 'expected ROLE=/topic' in capsys.readouterr().err


def test_help_imports_nothing_heavy():
    """`avstack --help` and every `avstack COMMAND --help` parse without torch, rclpy, highway_env or cv2."""
    script = f"""
import json, sys
from avstack.cli import main
for words in {[list(w) for w, _ in LEAVES]} + [[]]:
    assert main(words + ['--help']) == 0
print(json.dumps(sorted(m for m in {list(HEAVY)} if m in sys.modules)))
"""
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []


def test_scenario_choices_are_the_bridge_families():
    from sim_bridge.envs import ENV_CLASSES
    from stack_common.config import load_schema
    assert tuple(ENV_CLASSES) == SCENARIOS
    names = load_schema('sim_bridge', 'bridge_node')['properties']['scenarios']['items']['enum']
    assert sorted(names) == sorted(SCENARIOS + tuple(s.removesuffix('-v0') for s in SCENARIOS))
