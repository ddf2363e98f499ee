"""The critic core: inputs with their receipt times in, check results and transitions out.

The node calls ``on_*`` from its subscriptions and ``tick`` from its own
timer, with the node clock's time (sim time included). Plan checks run the
moment a plan arrives, and the collision check runs again when a cloud
arrives (against the latest plan), so a bad plan or a new obstacle requests a
takeover without waiting for the timer; watchdogs run on the timer, so a
silent input is noticed without any message at all.

Start-up in any order: the core stays WAITING, latching nothing, until every
watched input has been heard once, a first plan is in and every check has
passed for ``nominal_hold_s`` (a stack still warming up, its first plans late
or stale, is not yet running: the same hold that brings WARNING back to
NOMINAL); each watchdog counts from its input's first message.
``startup_timeout_s`` after the first plan (``startup_grace_s`` after the
start when no plan comes) the wait ends regardless: an input never heard
then fails its watchdog, naming it, as does any check still failing.

Frames: a cloud in the base frame is used as it is, one in the lidar's frame
gets the critic's own extrinsic, any other frame the extrinsic and a warning
(:mod:`stack_common.frames`).

Time: ROS time 0 means "no clock yet" (sim time before the first /clock) and
is ignored. Time that jumps back by more than a second (bag loop, simulator
reset) restarts the core as at launch (a latched request is withdrawn with a
transition to WAITING at the next update); the takeover statistics keep their
totals but do not count the jump.
"""

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from critic_monitor.checks import (
    CRITICAL, CheckResult, SelfDoubt, check_kinematics, check_silence, check_stopping, check_start_deviation,
    check_staleness, check_trajectory_shift, check_validity, collision_result, failed, plan_is_usable, passed,
)
from critic_monitor.collision import (
    CollisionResult, Footprint, LidarFilter, Sweep, along_axis_velocity, first_contact, first_moving_contact,
    sweep_poses)
from critic_monitor.geometry import PlanPath, Pose2D, PoseHistory
from critic_monitor.state_machine import TakeoverState, TakeoverStateMachine, Transition
from critic_monitor.statistics import TakeoverStatistics
from stack_common import topics
from stack_common.assessment import Assessment
from stack_common.config import ConfigError
from stack_common.frames import FramePolicy, default_sensor_frame
from stack_common.odometry import EgoState
from stack_common.constants import NS_PER_S
from stack_common.trajectory import Trajectory

TIME_JUMP_NS = NS_PER_S
# Checks that judge a plan: each reports "no plan yet" until the first one arrives.
PLAN_CHECKS = ('validity', 'staleness', 'interval', 'curvature', 'lateral_acceleration', 'longitudinal_acceleration',
               'longitudinal_deceleration', 'lateral_jerk', 'relative_heading', 'trajectory_shift',
               'start_deviation', 'stopping', 'collision')


@dataclass
class Cloud:
    stamp_ns: int
    points_xy: np.ndarray                 # obstacle points in base_link at stamp_ns
    beam_xy: np.ndarray | None = None     # unit direction of each point's beam from its lidar, base_link axes
    radial_mps: np.ndarray | None = None  # each point's velocity along its beam relative to the lidar


@dataclass
class CheckedPlan:
    trajectory: Trajectory
    path: PlanPath
    sweep: Sweep
    receipt_ns: int


def lidar_topics(config: dict) -> dict[str, str]:
    """Lidar name -> topic (an empty topic means the standard one)."""
    return {name: config['lidar'][name]['topic'] or topics.lidar_topic(name) for name in config['lidars']}


class CriticCore:
    def __init__(self, config: dict, start_ns: int, warn: Callable[[str], None] | None = None):
        """``config`` is the validated node config; its topic lists say what each watchdog watches. ``warn`` gets
        the text of each input used despite a problem (a cloud in an unexpected frame); the node logs it."""
        self.config = config
        self.warn = warn or (lambda text: None)
        self.checks = config['checks']
        missing = [name for name in config['lidars'] if name not in config['lidar']]
        if missing:
            raise ConfigError(f'critic_node: lidar(s) {missing} have no lidar.<name> section with their extrinsics')
        self.lidar_topics = lidar_topics(config)
        self.watched = {'trajectory': [topics.TRAJECTORY], 'camera': list(config['camera_topics']),
                        'lidar': list(self.lidar_topics.values()), 'odometry': [config['odometry_topic']]}
        collision = self.checks['collision']
        self.body = Footprint.from_config(config['vehicle'])
        self.footprint = Footprint.from_config(config['vehicle'], collision['margin_m'])
        self.frames = {name: FramePolicy(f'lidar/{name}', config['lidar'][name].get('frame_id')
                                         or default_sensor_frame('lidar', name), config['base_frame_id'])
                       for name in config['lidars']}
        # Per lidar: its points through the critic's own extrinsic, and as they are (clouds in the base frame).
        self.lidar_filters = {
            name: {extrinsic: LidarFilter(config['lidar'][name]['translation_m'] if extrinsic else (0.0, 0.0, 0.0),
                                          config['lidar'][name]['rotation_rpy_rad'] if extrinsic else (0.0, 0.0, 0.0),
                                          collision['min_height_m'], collision['max_height_m'],
                                          collision['max_range_m'], self.body)
                   for extrinsic in (True, False)}
            for name in config['lidars']}
        self.startup_timeout_ns = int(config['state_machine']['startup_timeout_s'] * NS_PER_S)
        self.startup_grace_ns = int(config['state_machine']['startup_grace_s'] * NS_PER_S)
        self.machine = TakeoverStateMachine(config['state_machine'], start_ns)
        self.statistics = TakeoverStatistics()
        self.history = PoseHistory()
        self.self_doubt = SelfDoubt(self.checks['self_doubt'])
        self.restarts = 0
        self.stopped = False
        self.pose_jumps = 0
        self._started = False
        self.restart(start_ns)

    # --- time ---------------------------------------------------------------------------------

    def restart(self, now_ns: int) -> None:
        """Forget everything seen (at start, and when time jumps back)."""
        previous = self.machine.state
        self.machine.restart(now_ns)
        # Published with the next update: a latched request from before the jump is withdrawn.
        self._pending = [] if previous == TakeoverState.WAITING else [
            Transition(now_ns, previous, TakeoverState.WAITING)]
        self.start_ns = now_ns
        self.first_plan_ns: int | None = None
        self._clean_since_ns: int | None = None   # start-up: since when nothing is awaited and every check passes
        self.last_seen: dict[tuple[str, str], int] = {}   # (watchdog, topic) -> receipt time
        self.event_results: dict[str, CheckResult] = {}   # plan, cloud and assessment checks
        self.sensor_loss: list[str] = []
        self.clouds: dict[str, Cloud] = {}
        self.plan: CheckedPlan | None = None            # the latest plan, None when it was unusable
        self.reference_plan: CheckedPlan | None = None  # the latest usable plan, for the shift check
        self.contact: CollisionResult | None = None
        self.history.clear()
        self.self_doubt.reset()
        self.statistics.break_track()
        self._last_now = now_ns
        self._started = now_ns > 0

    def _clock(self, now_ns: int) -> bool:
        """Advance the core's clock; False while there is no time yet (sim time before /clock) and once stopped."""
        if now_ns <= 0 or self.stopped:
            return False
        if not self._started or now_ns < self._last_now - TIME_JUMP_NS:
            self.restarts += self._started
            self.restart(now_ns)
        self._last_now = max(self._last_now, now_ns)
        return True

    # --- inputs -------------------------------------------------------------------------------

    def on_trajectory(self, trajectory: Trajectory, receipt_ns: int) -> list[Transition]:
        if not self._clock(receipt_ns):
            return []
        self.last_seen[('trajectory', topics.TRAJECTORY)] = receipt_ns
        if self.first_plan_ns is None:
            self.first_plan_ns = receipt_ns
        checks = self.checks
        age_s = (receipt_ns - trajectory.stamp_ns) / NS_PER_S
        results = {}
        if checks['validity']['enabled']:
            results['validity'] = check_validity(trajectory, checks['validity'])
        if checks['staleness']['enabled']:
            results['staleness'] = check_staleness(age_s, checks['staleness'])
        if plan_is_usable(trajectory):
            path = PlanPath.from_trajectory(trajectory)
            plan = CheckedPlan(trajectory, path, sweep_poses(path, checks['collision']['resample_interval_m']),
                               receipt_ns)
            if checks['collision']['enabled']:
                results['collision'] = self._collision(plan, receipt_ns)
            for result in check_kinematics(path, checks['kinematics']):
                results[result.check] = result
            results.update(self._consistency(plan, receipt_ns, age_s))
            if checks['stopping']['enabled']:
                ego = self.history.latest
                speed = ego.speed if ego is not None else path.speed_at_time(age_s)
                results['stopping'] = check_stopping(path, speed, age_s, checks['stopping'])
            self.plan = self.reference_plan = plan
        else:
            for check in PLAN_CHECKS:
                if check not in results and self._enabled(check):
                    results[check] = passed(check, self._severity(check), 'skipped: the plan is unusable')
            self.plan, self.contact = None, None
        self.event_results.update(results)
        return self._update(receipt_ns)

    def on_lidar(self, name: str, xyz: np.ndarray, stamp_ns: int, receipt_ns: int,
                 frame_id: str | None = None, radial_velocity: np.ndarray | None = None) -> list[Transition]:
        """A cloud of lidar ``name``: ``(N, 3)`` float32 points in ``frame_id`` (its header's; None: the lidar's
        configured frame), placed in ``base_link`` by the frame policy, and their radial velocities (m/s, away
        positive) from a lidar that measures them."""
        if not self._clock(receipt_ns):
            return []
        self.last_seen[('lidar', self.lidar_topics[name])] = receipt_ns
        extrinsic = True
        if frame_id is not None:
            choice = self.frames[name].resolve(frame_id)
            if choice.warning:
                self.warn(choice.warning)
            extrinsic = choice.extrinsic
        self.clouds[name] = Cloud(stamp_ns, *self.lidar_filters[name][extrinsic](xyz, radial_velocity))
        if self.plan is None or not self.checks['collision']['enabled']:
            return []
        self.event_results['collision'] = self._collision(self.plan, receipt_ns)
        return self._update(receipt_ns)

    def on_odometry(self, state: EgoState, receipt_ns: int) -> bool:
        """False when the state is unusable (non-finite): it then counts as no odometry at all."""
        if not all(math.isfinite(v) for v in (state.x, state.y, state.yaw, state.speed, state.yaw_rate)):
            return False
        if not self._clock(receipt_ns):
            return True
        self.last_seen[('odometry', self.config['odometry_topic'])] = receipt_ns
        if self.history.jumps(state):
            self._forget_plans()
        self.history.add(state)
        self.statistics.on_odometry(state)
        return True

    def _forget_plans(self) -> None:
        """The ego jumped (relocalised, a new simulator episode): plans and clouds from before describe
        another place, and neither the next plan's shift nor a collision may be judged against them."""
        self.pose_jumps += 1
        self.plan = self.reference_plan = self.contact = None
        self.clouds.clear()
        self.history.clear()
        for check in PLAN_CHECKS:
            self.event_results.pop(check, None)

    def on_assessment(self, assessment: Assessment, receipt_ns: int) -> list[Transition]:
        if not self._clock(receipt_ns) or not self.checks['self_doubt']['enabled']:
            return []
        self.event_results['self_doubt'] = self.self_doubt.update(assessment)
        return self._update(receipt_ns)

    def on_input(self, watchdog: str, topic: str, receipt_ns: int) -> None:
        """A message arrived on ``topic``, watched by ``watchdog`` (cameras: only their arrival matters)."""
        if self._clock(receipt_ns):
            self.last_seen[(watchdog, topic)] = receipt_ns

    def on_sensor_loss(self, missing: list[str], receipt_ns: int) -> list[Transition]:
        if not self._clock(receipt_ns):
            return []
        self.sensor_loss = list(missing)
        return self._update(receipt_ns)

    def tick(self, now_ns: int) -> list[Transition]:
        if not self._clock(now_ns):
            return []
        return self._update(now_ns, tick=True)

    def reset(self, now_ns: int) -> tuple[bool, str, list[Transition]]:
        if not self._clock(now_ns):
            return False, 'the critic has stopped' if self.stopped else 'no clock yet', []
        return self.machine.reset(now_ns, self.results(now_ns))

    def stop(self, now_ns: int) -> list[Transition]:
        """The critic is stopping: its last word is a takeover request naming that (not counted as a takeover).
        Nothing changes the state after it: inputs, ticks and resets are ignored."""
        self.stopped = True
        return self.machine.request(now_ns, [failed('critic_stopped', CRITICAL,
                                                    'the critic stopped: nothing watches the stack any more')])

    # --- start-up -----------------------------------------------------------------------------

    def waiting_for(self) -> list[str]:
        """What start-up still waits for: the plans until the first one, and every watched topic not heard yet."""
        missing = [] if self.first_plan_ns is not None else [topics.TRAJECTORY]
        for name, topic_list in self.watched.items():
            if self.checks['watchdogs'][name]['enabled']:
                missing += [t for t in topic_list if (name, t) not in self.last_seen and t not in missing]
        return missing

    def startup_failures(self, now_ns: int) -> list[str]:
        """The checks failing now: start-up waits for them to pass too."""
        return [result.check for result in self.results(now_ns) if not result.ok]

    def _start_up(self, now_ns: int) -> None:
        """End WAITING once nothing has been awaited and every check has passed for ``nominal_hold_s``, or when
        the start-up time is over (what is missing or failing then requests a takeover)."""
        if self.machine.monitoring:
            return
        if self.waiting_for() or self.startup_failures(now_ns):
            self._clean_since_ns = None
        elif self._clean_since_ns is None:
            self._clean_since_ns = now_ns
        if self.first_plan_ns is not None:
            over = now_ns - self.first_plan_ns >= self.startup_timeout_ns
        else:
            over = now_ns - self.start_ns >= self.startup_grace_ns
        if over or (self._clean_since_ns is not None
                    and now_ns - self._clean_since_ns >= self.machine.nominal_hold_ns):
            self.machine.start_monitoring()

    # --- checks -------------------------------------------------------------------------------

    def _update(self, now_ns: int, tick: bool = False) -> list[Transition]:
        self._start_up(now_ns)
        transitions, self._pending = self._pending + self.machine.update(now_ns, self.results(now_ns), tick), []
        for transition in transitions:
            if transition.requests_takeover:
                self.statistics.record_takeover(now_ns, [r.check for r in transition.reasons])
        return transitions

    def _enabled(self, check: str) -> bool:
        return self._section(check)['enabled']

    def _severity(self, check: str) -> str:
        return self._section(check)['severity']

    def _section(self, check: str) -> dict:
        for group in ('kinematics', 'consistency'):
            if check in self.checks[group]:
                return self.checks[group][check]
        return self.checks[check]

    def _collision(self, plan: CheckedPlan, now_ns: int) -> CheckResult:
        """The footprint swept along ``plan`` against every lidar's latest cloud, moved to the plan's stamp."""
        cfg = self.checks['collision']
        age_s = (now_ns - plan.trajectory.stamp_ns) / NS_PER_S
        if not self.clouds:
            self.contact = None
            return collision_result(None, age_s, cfg)
        static, moving, velocities, unaligned = [], [], [], []
        ego = self.history.latest
        for name, cloud in self.clouds.items():
            motion = self.history.motion(plan.trajectory.stamp_ns, cloud.stamp_ns)
            if motion is None:
                # Without odometry the cloud is used as it is: a small error beats no check.
                unaligned.append(name)
                motion = Pose2D()
            points = cloud.points_xy if motion.is_identity else motion.apply(cloud.points_xy)
            if cloud.radial_mps is None or ego is None:
                static.append(points)
                continue
            # the ego's own motion is in every measured radial velocity: take it out to see what moves
            world_radial = cloud.radial_mps + np.float32(ego.speed) * cloud.beam_xy[:, 0]
            is_moving = np.abs(world_radial) > cfg['moving_speed_mps']
            static.append(points[~is_moving])
            velocity = along_axis_velocity(cloud.beam_xy[is_moving], world_radial[is_moving])
            velocity = velocity if motion.yaw == 0.0 else Pose2D(yaw=motion.yaw).apply(velocity)  # the plan's axes
            # where each moving point is at the plan's stamp
            since_s = np.float32((plan.trajectory.stamp_ns - cloud.stamp_ns) / NS_PER_S)
            moving.append(points[is_moving] + velocity * since_s)
            velocities.append(velocity)
        contact = first_contact(plan.sweep, self.footprint, np.concatenate(static) if len(static) > 1 else static[0])
        if moving:
            near = first_moving_contact(plan.sweep, self.footprint, np.concatenate(moving), np.concatenate(velocities),
                                        age_s + cfg['moving_horizon_s'])
            if near.contact and (not contact.contact or near.time_s < contact.time_s):
                contact = near
        self.contact = contact
        note = f' (not time-aligned: no odometry for {", ".join(unaligned)})' if unaligned else ''
        return collision_result(self.contact, age_s, cfg, note)

    def _consistency(self, plan: CheckedPlan, now_ns: int, age_s: float) -> dict[str, CheckResult]:
        checks, results = self.checks['consistency'], {}
        stamp_ns = plan.trajectory.stamp_ns
        shift = checks['trajectory_shift']
        if shift['enabled']:
            previous = self.reference_plan
            if previous is None:
                results['trajectory_shift'] = passed('trajectory_shift', shift['severity'], 'first plan')
            else:
                motion = self.history.motion(stamp_ns, previous.trajectory.stamp_ns)
                if motion is None:
                    results['trajectory_shift'] = passed('trajectory_shift', shift['severity'],
                                                         'skipped: no odometry to align the plans')
                else:
                    offset_s = (stamp_ns - previous.trajectory.stamp_ns) / NS_PER_S
                    results['trajectory_shift'] = check_trajectory_shift(previous.path, plan.path, motion, offset_s,
                                                                         age_s, shift)
        start = checks['start_deviation']
        if start['enabled']:
            # Without odometry the ego is where the plan's frame says it was: at the origin.
            ego = self.history.motion(stamp_ns, now_ns) or Pose2D()
            results['start_deviation'] = check_start_deviation(plan.trajectory, ego, age_s, start)
        return results

    def _silence(self, watchdog: str, topic_list: list[str], now_ns: int) -> tuple[float | None, str, bool]:
        """The longest silence among the watchdog's topics since each one's last message, that topic, and
        whether every topic spoke; None for a topic never heard once start-up is over."""
        worst, worst_topic, all_seen = 0.0, '', True
        for topic in topic_list:
            seen = self.last_seen.get((watchdog, topic))
            if seen is None:
                if self.machine.monitoring:
                    return None, topic, False
                all_seen, worst_topic = False, worst_topic or topic
                continue
            silence = (now_ns - seen) / NS_PER_S
            if silence >= worst:
                worst, worst_topic = silence, topic
        return worst, worst_topic, all_seen

    def results(self, now_ns: int) -> list[CheckResult]:
        """The latest result of every enabled check that has one."""
        results = list(self.event_results.values())
        for name, topic_list in self.watched.items():
            cfg = self.checks['watchdogs'][name]
            if cfg['enabled'] and topic_list:
                silence, topic, seen = self._silence(name, topic_list, now_ns)
                results.append(check_silence(name, silence, cfg, topic, seen))
        loss = self.checks['sensor_loss']
        if loss['enabled']:
            results.append(CheckResult('sensor_loss', not self.sensor_loss, loss['severity'],
                                       f'perception reports missing: {", ".join(self.sensor_loss)}'
                                       if self.sensor_loss else 'no sensor reported missing',
                                       float(len(self.sensor_loss)), 0.0))
        return results

    def pending_checks(self) -> list[str]:
        """Enabled plan and self-doubt checks that have no result yet (no plan or assessment so far)."""
        names = [c for c in PLAN_CHECKS + ('self_doubt',) if self._enabled(c)]
        return [name for name in names if name not in self.event_results]

    @property
    def state(self) -> TakeoverState:
        return self.machine.state
