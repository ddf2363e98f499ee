"""The critic core: inputs with their receipt times in, check results and transitions out.

The node calls ``on_*`` from its subscriptions and ``tick`` from its own
timer, with the node clock's time (sim time included). Trajectory checks run
the moment a plan arrives, so a bad plan requests a takeover without waiting
for the timer; watchdogs run on the timer, so a silent planner is noticed
without any message at all.
"""

from critic_monitor.checks import CheckResult, check_silence, check_staleness, check_validity
from critic_monitor.state_machine import TakeoverStateMachine, Transition
from stack_common.trajectory import Trajectory

NS_PER_S = 1_000_000_000
TIME_JUMP_NS = NS_PER_S


class CriticCore:
    def __init__(self, config: dict, start_ns: int):
        """``config`` is the validated node config; its topic lists say what each watchdog watches."""
        self.config = config
        self.watched = {'trajectory': [''], 'camera': list(config['camera_topics']),
                        'lidar': list(config['lidar_topics']), 'odometry': [config['odometry_topic']]}
        self.checks = config['checks']
        self.machine = TakeoverStateMachine(config['state_machine'], start_ns)
        self.restarts = 0
        self.restart(start_ns)

    def restart(self, now_ns: int) -> None:
        """Forget everything seen (at start, and when time jumps back)."""
        self.machine.restart(now_ns)
        self.start_ns = now_ns
        self.last_seen: dict[tuple[str, str], int] = {}   # (watchdog, topic) -> receipt time
        self.trajectory_results: dict[str, CheckResult] = {}
        self.sensor_loss: list[str] = []
        self.latest_trajectory: Trajectory | None = None
        self._last_now = now_ns

    def _clock(self, now_ns: int) -> None:
        if now_ns < self._last_now - TIME_JUMP_NS:
            self.restarts += 1
            self.restart(now_ns)
        self._last_now = max(self._last_now, now_ns)

    def on_trajectory(self, trajectory: Trajectory, receipt_ns: int) -> list[Transition]:
        self._clock(receipt_ns)
        self.last_seen[('trajectory', '')] = receipt_ns
        self.machine.arm()
        self.latest_trajectory = trajectory
        results = []
        if self.checks['validity']['enabled']:
            results.append(check_validity(trajectory, self.checks['validity']))
        if self.checks['staleness']['enabled']:
            results.append(check_staleness((receipt_ns - trajectory.stamp_ns) / NS_PER_S, self.checks['staleness']))
        self.trajectory_results = {r.check: r for r in results}
        return self.machine.update(receipt_ns, self.results(receipt_ns))

    def on_input(self, watchdog: str, topic: str, receipt_ns: int) -> None:
        """A camera, lidar or odometry message arrived on ``topic``, watched by ``watchdog``."""
        self._clock(receipt_ns)
        self.last_seen[(watchdog, topic)] = receipt_ns

    def on_sensor_loss(self, missing: list[str], receipt_ns: int) -> None:
        self._clock(receipt_ns)
        self.sensor_loss = list(missing)

    def tick(self, now_ns: int) -> list[Transition]:
        self._clock(now_ns)
        return self.machine.update(now_ns, self.results(now_ns))

    def reset(self, now_ns: int) -> tuple[bool, str, list[Transition]]:
        return self.machine.reset(now_ns, self.results(now_ns))

    def _silence_s(self, watchdog: str, topics: list[str], now_ns: int) -> float | None:
        """The longest silence among the watchdog's topics; None once one never spoke past its timeout."""
        since_start = (now_ns - self.start_ns) / NS_PER_S
        silences = []
        for topic in topics:
            seen = self.last_seen.get((watchdog, topic))
            if seen is None and since_start > self.checks['watchdogs'][watchdog]['timeout_s']:
                return None
            silences.append(since_start if seen is None else (now_ns - seen) / NS_PER_S)
        return max(silences)

    def results(self, now_ns: int) -> list[CheckResult]:
        """The latest result of every enabled check."""
        results = list(self.trajectory_results.values())
        for name, topics in self.watched.items():
            cfg = self.checks['watchdogs'][name]
            if cfg['enabled']:
                results.append(check_silence(name, self._silence_s(name, topics, now_ns), cfg))
        loss = self.checks['sensor_loss']
        if loss['enabled']:
            results.append(CheckResult('sensor_loss', not self.sensor_loss, loss['severity'],
                                       f'perception reports missing: {", ".join(self.sensor_loss)}'
                                       if self.sensor_loss else 'ok', float(len(self.sensor_loss)), 0.0))
        return results
