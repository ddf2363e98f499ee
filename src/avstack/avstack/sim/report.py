"""What a closed-loop run amounted to: ``report.json``, its plots, and the suite's comparison of two runs.

Owns: the report document built from the bridge's episode records (per scenario: distance, duration,
takeovers with reasons, km per takeover, collisions, collisions per km, mean speed, deadline misses), the
plots (ego path with takeover and collision points; speed over time), the per-family comparison of a run
against a reference (deltas of the per-km rates, regressions, improvements) and the seesaw verdict.
Does not own: running anything (avstack.sim.run), the per-episode accounting (sim_bridge.metrics).
"""

import json
from dataclasses import dataclass
from pathlib import Path

from sim_bridge.metrics import summarize

TRACE_KEYS = ('trace_t_s', 'trace_x_m', 'trace_y_m', 'trace_speed_mps', 'trace_driver')
DRIVER_COLORS = {'stack': 'tab:blue', 'expert': 'tab:orange'}


def build_report(episodes: list[dict], run_info: dict) -> dict:
    scenarios = list(dict.fromkeys(e['scenario'] for e in episodes))
    return {
        **run_info,
        'scenarios': {s: summarize([e for e in episodes if e['scenario'] == s]) for s in scenarios},
        'total': summarize(episodes),
        'episodes': [{k: v for k, v in e.items() if k not in TRACE_KEYS} for e in episodes],
    }


def write_report(report: dict, path: Path) -> Path:
    path.write_text(json.dumps(report, indent=2) + '\n')
    return path


def plot_episodes(episodes: list[dict], out_dir: Path) -> list[Path]:
    """Per scenario: the ego path (takeovers as red crosses, collisions as black stars) and speed over time."""
    import matplotlib   # here, not at the top: `avstack sim-suite --help` reads this module's Tolerance
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    written = []
    for scenario in dict.fromkeys(e['scenario'] for e in episodes):
        runs = [e for e in episodes if e['scenario'] == scenario]
        figure, (path_axes, speed_axes) = plt.subplots(1, 2, figsize=(13, 4.5))
        for episode in runs:
            xs, ys, drivers = episode['trace_x_m'], episode['trace_y_m'], episode['trace_driver']
            for i in range(1, len(xs)):
                path_axes.plot(xs[i - 1:i + 1], ys[i - 1:i + 1], color=DRIVER_COLORS.get(drivers[i], 'gray'),
                               linewidth=1.5)
            for takeover in episode['takeovers']:
                path_axes.plot(takeover['x_m'], takeover['y_m'], 'rx', markersize=10, markeredgewidth=2)
                start_s = (takeover['stamp_ns'] - episode['start_stamp_ns']) / 1e9
                speed_axes.axvline(start_s, color='red', linestyle=':', linewidth=1)
            if episode['collisions'] and xs:
                path_axes.plot(xs[-1], ys[-1], 'k*', markersize=14)
            speed_axes.plot(episode['trace_t_s'], episode['trace_speed_mps'],
                            label=f'episode {episode["episode"]} (seed {episode["seed"]})')
        path_axes.set(title=f'{scenario}: ego path (blue: stack, orange: safety driver, x: takeover, *: collision)',
                      xlabel='x [m] (odom)', ylabel='y [m] (odom)')
        path_axes.set_aspect('equal', adjustable='datalim')
        path_axes.title.set_fontsize(9)
        speed_axes.set(title=f'{scenario}: speed (dotted: takeovers)', xlabel='sim time in episode [s]',
                       ylabel='speed [m/s]')
        if runs:
            speed_axes.legend(fontsize=7)
        figure.tight_layout()
        path = out_dir / f'{scenario}.png'
        figure.savefig(path, dpi=90)
        plt.close(figure)
        written.append(path)
    return written


# ------------------------------------------------------------------------------------ suite comparison

@dataclass(frozen=True)
class Tolerance:
    relative: float = 0.25        # a rate must change by more than this fraction ...
    per_km: float = 0.5           # ... and by more than this many events per km to count


def rates(summary: dict) -> dict[str, float | None]:
    """Per-km rates (lower is better) of one scenario summary, both over the whole distance driven.

    Takeovers are counted per km of the whole drive, not per km the stack drove: a stack that is taken over
    at once drives no km of its own, and its rate must still be comparable (and bad), not undefined. Two
    runs of the suite drive the same seeded episodes, so the distances are alike.
    """
    km = summary['distance_km']
    return {
        'takeovers_per_km': None if km <= 0 else summary['takeovers']['count'] / km,
        'collisions_per_km': None if km <= 0 else summary['collisions'] / km,
    }


def compare(current: dict, reference: dict, tolerance: Tolerance = Tolerance()) -> dict:
    """Per family: both runs' figures, the deltas, and whether the family regressed or improved; the seesaw."""
    families = {}
    for scenario, summary in current.items():
        ref = reference.get(scenario)
        if ref is None:
            continue
        new_rates, old_rates = rates(summary), rates(ref)
        deltas, worse, better = {}, [], []
        for name in new_rates:
            new, old = new_rates[name], old_rates[name]
            if new is None or old is None:
                deltas[name] = None
                continue
            deltas[name] = round(new - old, 4)
            margin = max(tolerance.per_km, tolerance.relative * old)
            if new - old > margin:
                worse.append(name)
            elif old - new > margin:
                better.append(name)
        if summary['distance_km'] < ref['distance_km'] * (1 - tolerance.relative):
            worse.append('distance_km')   # stopping on the spot must not pass for a clean drive
        families[scenario] = {
            'current': {**{k: _round(v) for k, v in new_rates.items()}, 'distance_km': summary['distance_km'],
                        'km_per_takeover': summary['km_per_takeover'], 'collisions': summary['collisions']},
            'reference': {**{k: _round(v) for k, v in old_rates.items()}, 'distance_km': ref['distance_km'],
                          'km_per_takeover': ref['km_per_takeover'], 'collisions': ref['collisions']},
            'deltas': deltas, 'regressed': worse, 'improved': better,
            'verdict': 'regressed' if worse else ('improved' if better else 'same'),
        }
    regressed = [s for s, f in families.items() if f['regressed']]
    improved = [s for s, f in families.items() if f['improved'] and not f['regressed']]
    return {'families': families, 'regressed': regressed, 'improved': improved,
            'seesaw': bool(regressed and improved),
            'tolerance': {'relative': tolerance.relative, 'per_km': tolerance.per_km}}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _fmt(value) -> str:
    if value is None:
        return '-'
    return f'{value:.3f}' if isinstance(value, float) else str(value)


def comparison_table(comparison: dict, current_name: str, reference_name: str) -> str:
    header = (f'{"family":<16} {"km":>7} {"km/takeover":>12} {"takeovers/km":>13} {"collisions/km":>14}   '
              f'{"d takeovers/km":>15} {"d collisions/km":>16}  verdict')
    lines = [f'{current_name} vs {reference_name}', header, '-' * len(header)]
    for scenario, family in comparison['families'].items():
        for label, side in ((current_name, family['current']), (reference_name, family['reference'])):
            lines.append(f'{scenario if label == current_name else "":<16} {_fmt(side["distance_km"]):>7} '
                         f'{_fmt(side["km_per_takeover"]):>12} {_fmt(side["takeovers_per_km"]):>13} '
                         f'{_fmt(side["collisions_per_km"]):>14}   '
                         + (f'{_fmt(family["deltas"]["takeovers_per_km"]):>15} '
                            f'{_fmt(family["deltas"]["collisions_per_km"]):>16}  {family["verdict"]}'
                            if label == current_name else f'{"":>15} {"":>16}  ({label})'))
    verdict = 'SEESAW: ' + ', '.join(comparison['regressed']) + ' worse while ' + ', '.join(comparison['improved']) \
        + ' better' if comparison['seesaw'] else ('regressed: ' + ', '.join(comparison['regressed'])
                                                  if comparison['regressed'] else 'no family regressed')
    lines.append(verdict)
    return '\n'.join(lines)


def takeovers_per_check(report: dict) -> dict:
    """Per family: km driven, takeovers, and per reason (critic check or safety driver) how many takeovers
    named it and how many per km. A takeover can name several reasons, so the per-reason counts may add up
    to more than the takeovers."""
    table = {}
    for scenario, summary in report['scenarios'].items():
        km = summary['distance_km']
        table[scenario] = {'km': km, 'takeovers': summary['takeovers']['count'],
                           'collisions': summary['collisions'],
                           'per_reason': {reason: {'takeovers': count,
                                                   'per_km': None if km <= 0 else round(count / km, 3)}
                                          for reason, count in summary['takeovers']['reasons'].items()}}
    return table


def checks_table(runs: dict[str, dict]) -> str:
    """One block per run: per family, km, takeovers, collisions and the takeovers naming each reason."""
    lines = []
    for name, report in runs.items():
        lines.append(f'{name}: takeovers per reason (a takeover may name several)')
        for scenario, row in takeovers_per_check(report).items():
            reasons = ', '.join(f'{reason} x{r["takeovers"]}' for reason, r in row['per_reason'].items()) or 'none'
            lines.append(f'  {scenario:<16} {row["km"]:7.3f} km  {row["takeovers"]:3d} takeovers  '
                         f'{row["collisions"]:2d} collisions  {reasons}')
    return '\n'.join(lines)
