"""The command line's convention (docs/cli.md) in one place: the pieces every subcommand is built from.

* :func:`add_command` makes a subcommand's parser: no abbreviated options, its own usage on a bad option.
* ``-o/--out DIR`` (:func:`add_out`): created when missing, a non-empty one refused unless ``--force``; the
  command sees it as an absolute path, and when it fails on its input (exit 2) what it wrote there is gone.
* ``--duration S`` (:func:`add_duration`): seconds of the thing the command produces.
* ``--map ROLE=TOPIC`` (:func:`add_map`) names a sensor's topic; ``--remap FROM:=TO`` (:func:`add_remap`)
  renames a topic as ROS remapping does.
* ``--config FILE``... (:func:`add_config`) laid over the shipped config/stack.yaml unless ``--no-defaults``.
* Exit codes (``stack_common.constants``): ``EXIT_OK``, ``EXIT_FAILURE`` (raise :class:`Failure`), ``EXIT_USAGE`` (raise
  :class:`UsageError`; configuration, checkpoint and bag errors count as such too).

This module and every command module import nothing heavy at the top (no torch, rclpy, highway_env, cv2):
``avstack --help`` builds every parser. A command imports what it needs inside its ``run``.
"""

import argparse
import os
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from stack_common.constants import EXIT_FAILURE, EXIT_USAGE
from stack_common.state import STATISTICS_FILE, state_directory



class UsageError(Exception):
    """Bad usage, configuration or input file: the command prints this one line and exits 2."""


class Failure(Exception):
    """The command ran and failed (a node died, nothing came out): it prints this one line and exits 1."""


class CommandParser(argparse.ArgumentParser):
    """A parser without abbreviated options that reports unknown arguments with its own usage."""

    def __init__(self, *args, **kwargs):
        kwargs['allow_abbrev'] = False
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:   # as a subcommand: argparse would hand them up to the top-level parser and its usage
            self.error(f'unrecognized arguments: {" ".join(extras)}')
        return namespace, extras


def add_command(subparsers, name: str, run, help: str, description: str = '', epilog: str = '',
                raw: bool = False) -> CommandParser:
    """The parser of subcommand ``name``, whose ``run(args)`` returns an exit code (or raises)."""
    parser = subparsers.add_parser(
        name, help=help, description=description or help, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter if raw else argparse.HelpFormatter)
    parser.set_defaults(run=run, prog=parser.prog, out_state=None)
    return parser


# ------------------------------------------------------------------------------------------- outputs

def add_out(parser, help: str = 'output directory', required: bool = True, state: str | None = None) -> None:
    """``-o/--out DIR`` and ``--force``; ``state``: without --out, a new STATE_DIR/<state>/<time> directory."""
    default = (f'; default: a new directory in {state_directory() / state}' if state
               else '' if required else '; without it nothing is written')
    parser.add_argument('-o', '--out', type=Path, required=required, metavar='DIR',
                        help=f'{help} (created if missing; must be empty unless --force{default})')
    parser.add_argument('--force', action='store_true',
                        help='write into a non-empty --out: the files of an earlier run there are replaced')
    if state:
        parser.set_defaults(out_state=state)


def _first_missing(path: Path) -> Path | None:
    """The outermost directory of ``path`` that does not exist yet (what making it creates), or None."""
    missing = None
    for candidate in [path, *path.parents]:
        if candidate.exists():
            return missing
        missing = candidate
    return missing


@contextmanager
def output_directory(path: Path, force: bool):
    """The absolute --out, created; on an input error (exit 2) inside, what the command put there is removed."""
    out = Path(path).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise UsageError(f'--out {out}: exists and is not a directory')
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(f'--out {out} is not empty: choose a new directory, or pass --force to replace '
                         f'what an earlier run wrote there')
    created = _first_missing(out)
    before = set() if created else set(out.iterdir())
    out.mkdir(parents=True, exist_ok=True)
    try:
        yield out
    except BaseException as error:
        if exit_code(error) == EXIT_USAGE:
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)
            else:
                for entry in set(out.iterdir()) - before:
                    shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------- options

def seconds(text: str) -> float:
    """An argparse type: a duration in seconds, > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number of seconds') from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f'{text!r}: a duration must be > 0 seconds')
    return value


def add_duration(parser, help: str, default: float | None = None) -> None:
    """``--duration S``: seconds of what the command produces (bag length, sim time, clip length)."""
    parser.add_argument('--duration', type=seconds, default=default, metavar='S',
                        help=help + (f' (default {default:g})' if default is not None else ''))


def map_entry(text: str) -> tuple[str, str]:
    """An argparse type: ``ROLE=/topic`` -> (role, topic)."""
    role, sep, topic = text.partition('=')
    role, topic = role.strip().strip('/'), topic.strip()
    if not sep or not role or ':' in role or not topic.startswith('/'):
        raise argparse.ArgumentTypeError(f'{text!r}: expected ROLE=/topic, e.g. camera/front=/cam/image_raw, '
                                         f'lidar/top=/points, odometry=/odom')
    return role, topic


def add_map(parser) -> None:
    """``--map ROLE=TOPIC ...``: which bag topic is which sensor (repeatable; several after one --map)."""
    parser.add_argument('--map', type=map_entry, action='extend', nargs='+', default=[], metavar='ROLE=TOPIC',
                        help='the topic of a sensor: camera/<name>, lidar/<name> or odometry (camera= and '
                             'lidar= name the first one); found by name or type otherwise')


def remap_entry(text: str) -> tuple[str, str]:
    """An argparse type: ``/from:=/to`` -> (from, to), ROS's remapping syntax."""
    source, sep, target = text.partition(':=')
    if not sep or not source.startswith('/') or not target.startswith('/'):
        raise argparse.ArgumentTypeError(f'{text!r}: expected /from:=/to')
    return source, target


def add_remap(parser, help: str) -> None:
    parser.add_argument('--remap', type=remap_entry, action='append', default=[], metavar='FROM:=TO', help=help)


def add_config(parser) -> None:
    """``--config FILE`` (repeatable) over config/stack.yaml, and ``--no-defaults``."""
    parser.add_argument('--config', type=Path, action='append', default=[], metavar='FILE',
                        help='parameter file laid over the shipped config/stack.yaml (repeatable: later files '
                             'win, as several --params-file do); a relative name not found here is looked up '
                             'in the installed config directory, e.g. config/remaps/carla_ros_bridge.yaml')
    parser.add_argument('--no-defaults', action='store_true',
                        help='start from the --config files alone, not from config/stack.yaml')


def config_files(args) -> list[Path]:
    """The parameter files of ``args``, in layering order."""
    from avstack.runtime.paths import default_config, find_config
    files = ([] if args.no_defaults else [default_config()]) + [find_config(p) for p in args.config]
    if not files:
        raise UsageError('--no-defaults needs at least one --config FILE')
    return files


def write_params(args, path: Path) -> Path:
    """The layered configuration of ``args`` as one parameter file at ``path`` (what the run used)."""
    import yaml

    from stack_common.config import read_params_files
    path.write_text(yaml.safe_dump(read_params_files(config_files(args)), sort_keys=False))
    return path


# ------------------------------------------------------------------------------------------- running

def params_file(args, out: Path) -> Path:
    """The layered configuration in ``out/params.yaml``, the critic's statistics under ``args.out`` if given."""
    import yaml

    from stack_common.config import PARAMS_KEY
    path = write_params(args, out / 'params.yaml')
    if args.out is not None:
        document = yaml.safe_load(path.read_text())
        critic = document.setdefault('critic_node', {PARAMS_KEY: {}})[PARAMS_KEY]
        critic['statistics_path'] = str(args.out / STATISTICS_FILE)
        path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def stop_on_signals() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM, so a tool can finish its files instead of dying mid-write."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def exit_code(error: BaseException) -> int | None:
    """The exit code an exception stands for (None: a bug, shown with its traceback)."""
    if isinstance(error, Failure):
        return EXIT_FAILURE
    if isinstance(error, UsageError):
        return EXIT_USAGE
    if not isinstance(error, Exception):
        return None
    from avstack.bag.codec import BagError
    from stack_common.checkpoint import CheckpointError
    from stack_common.config import ConfigError
    return EXIT_USAGE if isinstance(error, (BagError, CheckpointError, ConfigError)) else None


def run(args) -> int:
    """Run the parsed command: --out prepared, errors as one line and their exit code."""
    name = args.prog
    try:
        if getattr(args, 'out', None) is None and args.out_state:
            args.out = state_directory() / args.out_state / time.strftime('%Y%m%d-%H%M%S')
        if getattr(args, 'out', None) is None:
            return args.run(args)
        # torchrun's other ranks write into the directory that rank 0 prepared
        force = args.force or os.environ.get('RANK', '0') != '0'
        with output_directory(args.out, force) as args.out:
            return args.run(args)
    except KeyboardInterrupt:
        print(f'{name}: interrupted', file=sys.stderr)
        return EXIT_FAILURE
    except Exception as error:
        code = exit_code(error)
        if code is None:
            raise
        print(f'{name}: {error}', file=sys.stderr)
        return code


# ------------------------------------------------------------------------------------ simulation runs

def add_sim_arguments(parser) -> None:
    """Options shared by ``sim``, ``sim-suite`` and ``demo``."""
    parser.add_argument('--episodes', type=int, default=1, help='episodes per scenario (default 1)')
    parser.add_argument('--seed', type=int, default=0, help='env seed of episode 0; episode k uses seed + k')
    add_duration(parser, 'sim seconds per episode (default: config/sim.yaml, 40)')
    parser.add_argument('--density', type=float, default=None, help='traffic density multiplier (default 1)')
    add_config(parser)
    parser.add_argument('--sim-config', type=Path, default=None,
                        help='bridge parameters and stack overrides laid over the --config files '
                             '(default config/sim.yaml)')
    parser.add_argument('--no-record', action='store_true', help='do not write the MCAP of the run')


def sim_options(args, scenarios: list[str], driver: str, out: Path, checkpoint: Path | None,
                realtime: bool = False):
    """The run of the simulation options ``args`` (:func:`add_sim_arguments`) ask for."""
    from avstack.sim.run import SimOptions

    return SimOptions(out=out, scenarios=scenarios, episodes=args.episodes, seed=args.seed, driver=driver,
                      realtime=realtime, duration_s=args.duration, density=args.density, checkpoint=checkpoint,
                      expert_noise_rad=getattr(args, 'expert_noise', None),
                      expert_speed_noise_hz=getattr(args, 'expert_speed_noise', None),
                      lead_brake_hz=getattr(args, 'lead_brake', None),
                      relabel=getattr(args, 'relabel', False),
                      config=config_files(args), sim_config=args.sim_config, record=not args.no_record)
