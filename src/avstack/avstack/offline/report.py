"""What ``avstack eval`` reports: distance, takeovers, open-loop error, compute time, and its plots.

Pure numpy and matplotlib over what the offline run collected; no ROS.

Open-loop error: each planned trajectory (``base_link`` at its stamp) is
compared with where the logged ego actually went: the odometry pose at
``stamp + t`` expressed in the odometry pose at ``stamp``. ``fde_m`` at a
horizon h is the displacement at ``t = h`` (planned points interpolated),
``ade_m`` the mean displacement over the planned points with ``t <= h``;
both are averaged over every trajectory whose future the log covers.
"""

from dataclasses import dataclass

import numpy as np

from planner.training.frames import continuous_segments

HORIZONS_S = (1.0, 2.0, 3.0)
# Odometry steps longer than this in time or implied speed are gaps or jumps, not driving.
MAX_GAP_S = 1.0
MAX_SPEED_MPS = 100.0
STATE_LEVELS = {'WAITING': 0, 'NOMINAL': 1, 'WARNING': 2, 'TAKEOVER_REQUESTED': 3}


@dataclass
class OdometryTrack:
    """The logged ego poses, sorted by stamp (odometry frame)."""

    t_ns: np.ndarray     # (M,) int64 header stamps
    xy: np.ndarray       # (M, 2)
    yaw: np.ndarray      # (M,)
    speed: np.ndarray    # (M,) m/s, forward
    segment: np.ndarray  # (M,) id of the continuous stretch each sample belongs to (a teleport starts a new one)

    @classmethod
    def from_states(cls, states) -> 'OdometryTrack':
        ordered = sorted(states, key=lambda s: s.stamp_ns)
        t_ns = np.array([s.stamp_ns for s in ordered], np.int64)
        xy = np.array([(s.x, s.y) for s in ordered], np.float64).reshape(-1, 2)
        speed = np.array([s.speed for s in ordered], np.float64)
        return cls(t_ns, xy, np.array([s.yaw for s in ordered], np.float64), speed,
                   continuous_segments(t_ns / 1e9, xy, speed))

    def __len__(self) -> int:
        return len(self.t_ns)

    def pose_at(self, t_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Interpolated ``(xy, yaw, covered)`` at stamps ``t_ns``; ``covered`` is False outside the log or in a gap."""
        t_ns = np.asarray(t_ns, np.int64)
        index = np.clip(np.searchsorted(self.t_ns, t_ns, side='right'), 1, max(len(self) - 1, 1))
        t0, t1 = self.t_ns[index - 1], self.t_ns[index]
        span = np.maximum(t1 - t0, 1)
        w = ((t_ns - t0) / span)[..., None]
        xy = self.xy[index - 1] * (1 - w) + self.xy[index] * w
        dyaw = np.angle(np.exp(1j * (self.yaw[index] - self.yaw[index - 1])))
        yaw = self.yaw[index - 1] + w[..., 0] * dyaw
        covered = (t_ns >= self.t_ns[0]) & (t_ns <= self.t_ns[-1]) & ((t1 - t0) <= MAX_GAP_S * 1e9)
        return xy, yaw, covered

    def segment_at(self, t_ns: np.ndarray) -> np.ndarray:
        """The continuous stretch of the track each stamp falls in (with the sample before it)."""
        return self.segment[np.clip(np.searchsorted(self.t_ns, t_ns, side='right') - 1, 0, len(self) - 1)]

    def speed_at(self, t_ns: int) -> float:
        return float(np.interp(t_ns, self.t_ns, self.speed))

    def distance_m(self) -> float:
        if len(self) < 2:
            return 0.0
        dt_s = np.diff(self.t_ns) / 1e9
        step = np.hypot(*np.diff(self.xy, axis=0).T)
        driving = (dt_s > 0) & (dt_s <= MAX_GAP_S) & (step <= MAX_SPEED_MPS * np.maximum(dt_s, 1e-9))
        return float(step[driving].sum())


@dataclass
class PlannedPath:
    stamp_ns: int
    now_ns: int          # bag time the plan reached the critic
    t_s: np.ndarray      # (T,)
    xy: np.ndarray       # (T, 2) base_link at stamp


def constant_velocity_plans(track: OdometryTrack, plans: list[PlannedPath]) -> list[PlannedPath]:
    """The baseline: at each plan's stamp, straight on at the logged speed, at the plan's own waypoint times."""
    return [PlannedPath(p.stamp_ns, p.now_ns, p.t_s, np.stack([track.speed_at(p.stamp_ns) * p.t_s,
                                                               np.zeros_like(p.t_s)], axis=1))
            for p in plans if len(track)]


def open_loop_errors(track: OdometryTrack, plans: list[PlannedPath], horizons_s=HORIZONS_S) -> dict:
    """``{'ade_m': {'1s': m}, 'fde_m': {...}, 'samples': {...}}``; None where no trajectory had a logged future."""
    labels = [f'{h:g}s' for h in horizons_s]
    ade = {label: [] for label in labels}
    fde = {label: [] for label in labels}
    if len(track) >= 2:
        for plan in plans:
            if len(plan.t_s) == 0:
                continue
            origin_xy, origin_yaw, origin_ok = track.pose_at(np.array([plan.stamp_ns]))
            if not origin_ok[0]:
                continue
            cos, sin = np.cos(origin_yaw[0]), np.sin(origin_yaw[0])
            to_base = np.array([[cos, sin], [-sin, cos]])
            for h, label in zip(horizons_s, labels, strict=True):
                if h > plan.t_s[-1] + 1e-9:
                    continue
                times = np.concatenate([plan.t_s[plan.t_s < h - 1e-9], [h]])
                planned = np.stack([np.interp(times, plan.t_s, plan.xy[:, k]) for k in range(2)], axis=1)
                stamps = plan.stamp_ns + np.round(times * 1e9).astype(np.int64)
                driven_xy, _, ok = track.pose_at(stamps)
                if not ok.all() or (track.segment_at(stamps) != track.segment_at(np.array([plan.stamp_ns]))).any():
                    continue   # the log ends, pauses or jumps (a simulator episode restarts) before the horizon
                driven = (driven_xy - origin_xy[0]) @ to_base.T
                error = np.hypot(*(planned - driven).T)
                ade[label].append(float(error.mean()))
                fde[label].append(float(error[-1]))
    return {'ade_m': {k: _mean(v) for k, v in ade.items()}, 'fde_m': {k: _mean(v) for k, v in fde.items()},
            'samples': {k: len(v) for k, v in fde.items()}}


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def latency_summary(samples_ms: dict[str, list[float]]) -> dict:
    """Per stage ``{p50_ms, p99_ms, mean_ms, count}`` (None values for a stage without samples)."""
    summary = {}
    for stage, samples in samples_ms.items():
        values = np.asarray(samples, np.float64)
        summary[stage] = {
            'p50_ms': round(float(np.percentile(values, 50)), 3) if values.size else None,
            'p99_ms': round(float(np.percentile(values, 99)), 3) if values.size else None,
            'mean_ms': round(float(values.mean()), 3) if values.size else None,
            'count': int(values.size)}
    return summary


# --------------------------------------------------------------------------------------------- plots

def _figure(width: float = 8.0, height: float = 5.0):
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    return plt, plt.figure(figsize=(width, height), dpi=100)


def plot_paths(path, track: OdometryTrack, plans: list[PlannedPath], takeover_times_ns: list[int],
               max_plans: int = 60) -> None:
    """Bird's-eye view in the odometry frame: the driven path, planned paths, takeover locations."""
    plt, fig = _figure(8, 8)
    ax = fig.add_subplot(1, 1, 1)
    if len(track):
        ax.plot(track.xy[:, 0], track.xy[:, 1], color='black', linewidth=2, label='driven (odometry)')
    step = max(1, len(plans) // max_plans)
    labelled = False
    for plan in plans[::step]:
        origin_xy, origin_yaw, ok = track.pose_at(np.array([plan.stamp_ns])) if len(track) >= 2 else (None, None, [0])
        if not ok[0]:
            continue
        cos, sin = np.cos(origin_yaw[0]), np.sin(origin_yaw[0])
        world = plan.xy @ np.array([[cos, sin], [-sin, cos]]) + origin_xy[0]
        ax.plot(world[:, 0], world[:, 1], color='tab:blue', alpha=0.5, linewidth=1,
                label=None if labelled else f'planned (every {step}.)')
        labelled = True
    if takeover_times_ns and len(track) >= 2:
        xy, _, ok = track.pose_at(np.array(takeover_times_ns))
        ax.scatter(xy[ok, 0], xy[ok, 1], color='tab:red', marker='x', s=80, zorder=5, label='takeover requested')
    ax.set_xlabel('x [m] (odometry frame)')
    ax.set_ylabel('y [m]')
    ax.set_aspect('equal', adjustable='datalim')
    ax.grid(True, alpha=0.3)
    ax.legend(loc='best')
    ax.set_title('planned vs. driven path')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_takeover_timeline(path, start_ns: int, end_ns: int, states: list[tuple[int, str]],
                           takeovers: list[dict]) -> None:
    """The critic's state over the run (a step plot) with each takeover request and its reasons."""
    plt, fig = _figure(10, 4)
    ax = fig.add_subplot(1, 1, 1)
    times = [0.0] + [(t - start_ns) / 1e9 for t, _ in states] + [(end_ns - start_ns) / 1e9]
    levels = [0] + [STATE_LEVELS.get(s, 0) for _, s in states]
    levels.append(levels[-1])
    ax.step(times, levels, where='post', color='black')
    for takeover in takeovers:
        ax.axvline(takeover['time_s'], color='tab:red', alpha=0.6)
        ax.annotate(', '.join(r['check'] for r in takeover['reasons'])[:40], (takeover['time_s'], 3.05),
                    rotation=30, fontsize=7, color='tab:red')
    ax.set_yticks(list(STATE_LEVELS.values()), list(STATE_LEVELS))
    ax.set_ylim(-0.3, 3.8)
    ax.set_xlim(0, max(times[-1], 1e-3))
    ax.set_xlabel('bag time [s]')
    ax.set_title(f'critic state and takeover requests ({len(takeovers)})')
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_latency(path, samples_ms: dict[str, list[float]]) -> None:
    """Per-stage compute time histograms (log-spaced bins)."""
    plt, fig = _figure(10, 5)
    ax = fig.add_subplot(1, 1, 1)
    values = [np.asarray(v) for v in samples_ms.values() if len(v)]
    if values:
        low = max(min(float(v.min()) for v in values), 1e-3)
        high = max(float(v.max()) for v in values) * 1.01
        bins = np.geomspace(low, max(high, low * 1.1), 50)
        for stage, samples in samples_ms.items():
            if len(samples):
                ax.hist(samples, bins=bins, alpha=0.5, label=f'{stage} (p50 {np.percentile(samples, 50):.2f} ms)')
        ax.set_xscale('log')
        ax.legend()
    ax.set_xlabel('compute time per call [ms]')
    ax.set_ylabel('count')
    ax.set_title('per-stage compute time')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
