"""``avstack sim``: drive highway-env in closed loop with the stack (or the expert) and report per scenario.

Starts the bridge and, with ``--driver model``, perception, planner and critic as processes over real DDS;
lockstep by default (one sim step per trajectory, so results do not depend on CPU speed). Writes
``DIR/report.json``, one plot per scenario, ``DIR/params.yaml`` and an MCAP of the run (``DIR/run_mcap``).
"""

from pathlib import Path

from avstack.commands.options import UsageError, add_command, add_out, add_sim_arguments, sim_options
from sim_bridge.scenarios import SCENARIOS, scenario_id

EPILOG = """examples:
  avstack sim --scenario highway-v0 --episodes 3 --seed 1 -o out/sim/highway
  avstack sim --scenario highway-v0 merge-v0 roundabout-v0 intersection-v0 --driver expert -o bags/expert
  avstack sim --scenario roundabout-v0 --checkpoint out/train/ckpt --realtime -o out/sim/demo

report.json per scenario: distance_km, stack_distance_km, duration_s, takeovers {count, reasons: how many
takeovers named each reason (one takeover can name several)}, km_per_takeover (stack km / takeovers; null
when none), collisions, collisions_per_km, mean_speed_mps, deadline_misses. --driver expert records training
data: camera, lidar, odometry (the label), /sim/scene_info."""


def register(subparsers) -> None:
    parser = add_command(
        subparsers, 'sim', run,
        help='closed-loop drive in highway-env: km per takeover, collisions per km, per scenario',
        description='Run the bridge and the stack (or the expert alone) as real processes over DDS for N '
                    'seeded episodes per scenario and write OUT/report.json, plots and an MCAP of the run.',
        epilog=EPILOG, raw=True)
    parser.add_argument('--scenario', nargs='+', type=scenario_id, default=['highway-v0'], metavar='SCENARIO',
                        help=f'scenario families, in order: {", ".join(SCENARIOS)}, the version optional '
                             f'(default highway-v0)')
    parser.add_argument('--driver', choices=('model', 'expert', 'expert-plans'), default='model',
                        help='model: the stack drives, the safety driver takes over on request; '
                             'expert: IDM/MOBIL drives everything (data collection, no stack nodes); '
                             'expert-plans: the expert\'s own 4 s plan is published as the planner\'s, tracked '
                             'and watched by the real critic (the critic\'s false alarms on good driving)')
    parser.add_argument('--checkpoint', type=Path, default=None, help='model checkpoint (default: the shipped one)')
    add_out(parser, help='where report.json, the plots, params.yaml, nodes.log and the MCAP (run_mcap) go')
    parser.add_argument('--realtime', action='store_true',
                        help='step at wall-clock rate with the newest trajectory (demos) instead of lockstep')
    parser.add_argument('--expert-noise', type=float, default=None, metavar='RAD',
                        help='with --driver expert: std of a slow steering disturbance on the expert, so the '
                             'recorded data shows recoveries from drift (e.g. 0.03)')
    parser.add_argument('--expert-speed-noise', type=float, default=None, metavar='HZ',
                        help='with --driver expert: rate of events in which the expert cruises at 0.3-1.2x its '
                             'cruise speed for 1.5-4 s, so the data shows recoveries to cruise (e.g. 0.1)')
    parser.add_argument('--lead-brake', type=float, default=None, metavar='HZ',
                        help='rate of events in which a car ahead of the ego (or one cutting in) brakes hard for '
                             '2-5 s, so the recorded data shows the answer to a braking lead car (e.g. 0.2)')
    parser.add_argument('--relabel', action='store_true',
                        help='record the expert\'s plan from every state on /sim/expert_plan (the driver label '
                             'of DAgger and of disturbed expert data; training prefers it to the logged future)')
    add_sim_arguments(parser)


def run(args) -> int:
    if args.episodes < 1:
        raise UsageError('--episodes must be at least 1')
    from avstack.sim.console import execute

    options = sim_options(args, list(args.scenario), args.driver, args.out, args.checkpoint, args.realtime)
    return execute(options)[0]
