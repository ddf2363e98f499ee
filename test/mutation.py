"""``make mutation``: mutmut over the safety path, each module against its own fast unit tests; a score per module.

mutmut mutates the files of ``source_paths`` in a copy of the project (``mutants/``) and imports them from
``mutants/src``, so it needs one import root per package. This script lays out such a copy under
``build/mutation`` (``src/<package>`` = ``src/<package>/<package>``, the tests, the config), runs
``mutmut run`` there for the mutants of each module below, and prints killed / total per module.

    python test/mutation.py [MODULE ...]      # all modules, or those named (e.g. critic_monitor/checks.py)
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKSPACE = REPO / 'build' / 'mutation'
PACKAGES = ('stack_common', 'critic_monitor', 'perception_llm', 'planner', 'avstack')
CRITIC_TESTS = ['test/critic_monitor/test_critic_checks.py', 'test/critic_monitor/test_critic_validity.py',
                'test/critic_monitor/test_critic_collision.py', 'test/critic_monitor/test_critic_calibration.py',
                'test/critic_monitor/test_state_machine.py']
CONVERSION_TESTS = ['test/stack_common/test_contracts_pointcloud.py', 'test/stack_common/test_contracts_image.py',
                    'test/stack_common/test_contracts_messages.py', 'test/stack_common/test_boundary.py']
# module -> (mutant names it owns, the fast unit tests that must kill them)
MODULES = {
    'critic_monitor/checks.py': ('critic_monitor.checks.*', CRITIC_TESTS),
    'critic_monitor/collision.py': ('critic_monitor.collision.*', CRITIC_TESTS),
    'critic_monitor/state_machine.py': ('critic_monitor.state_machine.*', CRITIC_TESTS),
    'planner/planning.py': ('planner.planning.*', ['test/planner/test_planner_model.py']),
    'planner/model.py': ('planner.model.x_choose_mode__mutmut_*', ['test/planner/test_planner_model.py']),
    'stack_common/pointcloud.py': ('stack_common.pointcloud.*', CONVERSION_TESTS),
    'stack_common/image.py': ('stack_common.image.*', CONVERSION_TESTS),
    'stack_common/tokens.py': ('stack_common.tokens.*', CONVERSION_TESTS),
    'stack_common/trajectory.py': ('stack_common.trajectory.*', CONVERSION_TESTS),
}
# A test that starts node processes: they import the original code, not the mutant, and it is slow.
NOT_UNIT = 'not leaves_critic_and_perception_running'
TARGET = 0.85


def lay_out(modules: list[str]) -> None:
    """A fresh copy of the project in the layout mutmut imports from, configured for ``modules``."""
    shutil.rmtree(WORKSPACE, ignore_errors=True)
    for package in PACKAGES:
        shutil.copytree(REPO / 'src' / package / package, WORKSPACE / 'src' / package,
                        ignore=shutil.ignore_patterns('__pycache__'))
    for folder in ('test', 'config'):
        shutil.copytree(REPO / folder, WORKSPACE / folder, ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copy(REPO / 'pytest.ini', WORKSPACE)   # the tests' import paths and markers
    tests = sorted({test for module in modules for test in MODULES[module][1]})
    (WORKSPACE / 'pyproject.toml').write_text(
        '[tool.mutmut]\n'
        f'source_paths = {json.dumps([f"src/{m}" for m in modules])}\n'
        f'also_copy = {json.dumps(["src", "test", "config", "pytest.ini"])}\n'
        f'pytest_add_cli_args = {json.dumps(["-p", "no:cacheprovider", "-q", "-k", NOT_UNIT])}\n'
        f'pytest_add_cli_args_test_selection = {json.dumps(tests)}\n'
        'process_isolation = "forkserver"\n')


def results() -> dict[str, str]:
    """mutant name -> status, from ``mutmut results --all true``."""
    out = subprocess.run([sys.executable, '-m', 'mutmut', 'results', '--all', 'true'], cwd=WORKSPACE,
                         capture_output=True, text=True, check=True).stdout
    statuses = {}
    for line in out.splitlines():
        match = re.match(r'\s*(\S+__mutmut_\d+): (.+)$', line)
        if match:
            statuses[match.group(1)] = match.group(2).strip()
    return statuses


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('modules', nargs='*', metavar='MODULE', help=f'default: all of {", ".join(MODULES)}')
    parser.add_argument('--max-children', type=int, default=os.cpu_count(), help='parallel mutants')
    args = parser.parse_args(argv)
    modules = args.modules or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        parser.error(f'unknown module(s) {unknown}; known: {", ".join(MODULES)}')
    lay_out(modules)
    patterns = [MODULES[m][0] for m in modules]
    run = subprocess.run([sys.executable, '-m', 'mutmut', 'run', '--max-children', str(args.max_children),
                          *patterns], cwd=WORKSPACE)
    if run.returncode != 0:
        print(f'mutmut run failed ({run.returncode}); see {WORKSPACE}', file=sys.stderr)
        return 1
    statuses = results()
    print(f'\n{"module":34} {"killed":>7} {"total":>6} {"score":>6}   survived')
    below = []
    for module in modules:
        prefix = MODULES[module][0].rstrip('*')
        mine = {name: status for name, status in statuses.items() if name.startswith(prefix)}
        killed = sum(status in ('killed', 'timeout', 'segfault') for status in mine.values())
        score = killed / len(mine) if mine else 1.0
        survived = sorted(name.removeprefix(prefix.rsplit('.', 1)[0] + '.') for name, status in mine.items()
                          if status not in ('killed', 'timeout', 'segfault'))
        print(f'{module:34} {killed:7d} {len(mine):6d} {score:6.0%}   {" ".join(survived)}')
        below += [module] if score < TARGET else []
    print(f'\nbelow {TARGET:.0%}: {", ".join(below) or "none"}; `cd {WORKSPACE} && mutmut show NAME` shows a mutant')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
