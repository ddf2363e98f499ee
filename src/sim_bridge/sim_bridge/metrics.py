"""Episode accounting: distance, who drove it, takeovers, collisions, deadline misses, and a trace for plots.

Owns: :class:`EpisodeRecord` (filled step by step by the simulation core, published as JSON at the end of
each episode) and :func:`summarize`, the per-scenario figures of ``report.json``. Distance between takeovers
counts the distance the stack drove (``stack_distance_m``), as disengagement reports do; collisions per km
count every collision over all distance, whoever drove.
Does not own: deciding takeovers (sim_bridge.expert) or collisions (the simulator).
"""

from collections import Counter
from dataclasses import asdict, dataclass, field

M_PER_KM = 1000.0


@dataclass
class EpisodeRecord:
    scenario: str
    seed: int
    episode: int
    driver_mode: str                 # 'model' or 'expert'
    start_stamp_ns: int
    duration_s: float = 0.0
    steps: int = 0
    distance_m: float = 0.0
    stack_distance_m: float = 0.0
    collisions: int = 0
    collision_driver: str | None = None
    takeovers: list[dict] = field(default_factory=list)    # {stamp_ns, x_m, y_m, reasons}
    deadline_misses: int = 0
    end_reason: str = ''              # 'collision', 'goal', 'time_limit', 'stopped'
    # One entry per step, for plots: sim time since start (s), x, y (odom, m), speed (m/s), driver.
    trace_t_s: list[float] = field(default_factory=list)
    trace_x_m: list[float] = field(default_factory=list)
    trace_y_m: list[float] = field(default_factory=list)
    trace_speed_mps: list[float] = field(default_factory=list)
    trace_driver: list[str] = field(default_factory=list)

    def add_step(self, t_s: float, x_m: float, y_m: float, speed_mps: float, driver: str, moved_m: float) -> None:
        self.steps += 1
        self.duration_s = t_s
        self.distance_m += moved_m
        if driver == 'stack':
            self.stack_distance_m += moved_m
        self.trace_t_s.append(round(t_s, 3))
        self.trace_x_m.append(round(x_m, 3))
        self.trace_y_m.append(round(y_m, 3))
        self.trace_speed_mps.append(round(speed_mps, 3))
        self.trace_driver.append(driver)

    def to_dict(self) -> dict:
        return asdict(self)



def summarize(episodes: list[dict]) -> dict:
    """The report figures of one scenario from its episode dicts (``EpisodeRecord.to_dict()``)."""
    distance_km = sum(e['distance_m'] for e in episodes) / M_PER_KM
    stack_km = sum(e['stack_distance_m'] for e in episodes) / M_PER_KM
    duration_s = sum(e['duration_s'] for e in episodes)
    takeovers = [t for e in episodes for t in e['takeovers']]
    reasons = Counter(reason for t in takeovers for reason in t['reasons'])
    collisions = sum(e['collisions'] for e in episodes)
    return {
        'episodes': len(episodes),
        'distance_km': round(distance_km, 4),
        'stack_distance_km': round(stack_km, 4),
        'duration_s': round(duration_s, 2),
        'takeovers': {'count': len(takeovers), 'reasons': dict(sorted(reasons.items()))},
        'km_per_takeover': None if not takeovers else round(stack_km / len(takeovers), 4),
        'collisions': collisions,
        'collisions_per_km': None if distance_km <= 0 else round(collisions / distance_km, 4),
        'mean_speed_mps': None if duration_s <= 0 else round(distance_km * M_PER_KM / duration_s, 3),
        'deadline_misses': sum(e['deadline_misses'] for e in episodes),
        'end_reasons': dict(sorted(Counter(e['end_reason'] for e in episodes).items())),
    }
