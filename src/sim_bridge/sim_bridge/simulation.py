"""The bridge's core: one simulated car, its sensors, who drives it, and what each episode amounted to.

No ROS here: the node feeds it plans and the takeover state and publishes what it returns; tests and
the benchmark drive it directly. Owns the episode schedule (every scenario of ``scenarios`` for
``episodes`` episodes, env seed ``seed + episode``), sim time (integer ns, starting at 1 s and continuing
across episodes so the stack never sees time go back), the pose history that places each plan where it was
made, the hand-over between the stack's plans (tracked by :class:`TrajectoryController`) and the safety
driver (:class:`SafetyDriver` + the env's IDM/MOBIL), the safety driver's own intervention when the car
leaves the road, and the :class:`EpisodeRecord` of each episode.
"""

import math
from collections import OrderedDict
from dataclasses import asdict, dataclass

import numpy as np

from sim_bridge.camera import TopDownCamera
from sim_bridge.controller import ControllerConfig, Pose2D, TrajectoryController
from sim_bridge.envs import EnvSettings, make_env
from sim_bridge.expert import EXPERT, LeadBraking, SafetyDriver, SpeedDisturbance, SteeringNoise
from sim_bridge.expert_plan import expert_plan
from sim_bridge.lidar import lidar_points
from sim_bridge.metrics import EpisodeRecord
from sim_bridge.scenarios import scenario_id
from sim_bridge.scene_info import TagRules, route_command, scene_info
from stack_common.constants import NS_PER_S
from stack_common.odometry import EgoState
from stack_common.trajectory import Trajectory

START_STAMP_NS = NS_PER_S        # sim time 0 means "no clock yet" to ROS nodes
POSE_HISTORY = 100               # steps of poses kept to place late plans
OFF_ROAD_REASON = 'safety_driver:off_road'
# Driver modes: the stack's model drives; the expert drives everything (data collection); the expert's own plans
# are published as the planner's and tracked by the controller under the critic (the critic's false alarms).
MODEL, EXPERT_DRIVES, EXPERT_PLANS = 'model', 'expert', 'expert-plans'


@dataclass
class SensorFrame:
    stamp_ns: int
    ego: EgoState
    rgb: np.ndarray
    lidar: np.ndarray               # sim_bridge.lidar.POINT_DTYPE, lidar frame
    scene: dict                     # the /sim/scene_info document
    expert_plan: Trajectory | None = None   # the expert's plan from this state (relabel, expert-plans)


@dataclass
class StepResult:
    driver: str
    finished: EpisodeRecord | None   # the record of the episode this step ended, else None


class SimulationCore:
    def __init__(self, config: dict):
        self.config = config
        self.driver_mode = config['driver']
        self.period_ns = NS_PER_S // int(config['policy_hz'])
        self.camera = TopDownCamera(config['camera']['width_px'], config['camera']['height_px'],
                                    config['camera']['pixels_per_m'], tuple(config['camera']['ego_position']))
        self.controller = TrajectoryController(ControllerConfig.from_params(config['controller']))
        self.safety_driver = SafetyDriver(config['hand_back_s'], always_expert=self.driver_mode == EXPERT_DRIVES)
        plan = config['expert_plan']
        self.plan_t_s = plan['dt_s'] * np.arange(1, plan['horizon'] + 1)
        self.plans_expert = config['relabel'] or self.driver_mode == EXPERT_PLANS
        self.tag_rules = TagRules.from_params(config['scene_tags'])
        self.schedule = [(scenario_id(scenario), episode) for scenario in config['scenarios']
                         for episode in range(config['episodes'])]
        self.stamp_ns = START_STAMP_NS
        self.env = None
        self.scenario: str | None = None
        self.route_command = 'follow'
        self.record: EpisodeRecord | None = None
        self.completed: list[EpisodeRecord] = []
        self.plan: Trajectory | None = None
        self.rejected_plans = 0
        self._poses: OrderedDict[int, Pose2D] = OrderedDict()
        self._observation = None

    # ----------------------------------------------------------------------------------------- episodes
    @property
    def done(self) -> bool:
        return self.record is None and not self.schedule

    def start_next_episode(self) -> bool:
        """Reset the env for the next scheduled episode; False when the schedule is done."""
        if not self.schedule:
            self.record = None
            return False
        scenario, episode = self.schedule.pop(0)
        cfg = self.config
        settings = EnvSettings(seed=cfg['seed'], density=cfg['density'], duration_s=cfg['duration_s'],
                               policy_hz=int(cfg['policy_hz']), physics_substeps=cfg['physics_substeps'],
                               lidar_beams=cfg['lidar']['beams'], lidar_range_m=cfg['lidar']['range_m'])
        if self.env is None or self.scenario != scenario:
            if self.env is not None:
                self.env.close()
            self.env = make_env(scenario, settings)
        self.scenario = scenario
        self._observation, _ = self.env.reset(seed=cfg['seed'] + episode)
        self.route_command = route_command(self.env)
        self.safety_driver.reset()
        self.controller.reset()
        self.plan = None
        self._poses.clear()
        self._previous_heading = float(self.vehicle.heading)
        self.record = EpisodeRecord(scenario, cfg['seed'] + episode, episode, self.driver_mode, self.stamp_ns)
        self._remember_pose()
        if self.driver_mode == EXPERT_DRIVES:
            self.vehicle.engage_expert()
            substep_s = 1.0 / (cfg['policy_hz'] * cfg['physics_substeps'])
            if cfg['expert_steering_noise_rad'] > 0:
                self.vehicle.steering_noise = SteeringNoise(cfg['expert_steering_noise_rad'], substep_s,
                                                            cfg['seed'] + episode)
            if cfg['expert_speed_disturbance_hz'] > 0:
                self.vehicle.speed_disturbance = SpeedDisturbance(cfg['expert_speed_disturbance_hz'], substep_s,
                                                                  cfg['seed'] + episode)
        self.lead_braking = None
        if cfg['lead_brake_hz'] > 0:
            self.lead_braking = LeadBraking(cfg['lead_brake_hz'], self.period_ns / NS_PER_S, cfg['seed'] + episode)
        return True

    @property
    def vehicle(self):
        return self.env.vehicle

    def pose(self) -> Pose2D:
        v = self.vehicle
        return Pose2D(float(v.position[0]), float(v.position[1]), float(v.heading))

    def _remember_pose(self) -> None:
        self._poses[self.stamp_ns] = self.pose()
        while len(self._poses) > POSE_HISTORY:
            self._poses.popitem(last=False)

    # ------------------------------------------------------------------------------------------ sensing
    def sense(self) -> SensorFrame:
        """Camera, lidar, odometry and scene info of the current step, all stamped ``stamp_ns``."""
        v = self.vehicle
        heading = float(v.heading)
        yaw_rate = math.remainder(heading - self._previous_heading, 2 * math.pi) * NS_PER_S / self.period_ns
        ego = EgoState(self.stamp_ns, float(v.position[0]), float(v.position[1]), heading, float(v.speed),
                       0.0, yaw_rate)
        lidar = self.config['lidar']
        points = lidar_points(self._observation, heading, lidar['range_m'], tuple(lidar['layer_heights_m']),
                              lidar['mount_height_m'])
        rgb = self.camera.render(self.env.road, v.position, heading)
        scene = scene_info(self.env, self.scenario, self.stamp_ns, self.tag_rules, self.route_command,
                           self.record.seed if self.record is not None else 0)
        plan = None
        if self.plans_expert:
            poses = expert_plan(self.env, self.plan_t_s, self.config['expert_plan']['radius_m'])
            plan = Trajectory(self.stamp_ns, self.config['base_frame_id'], self.plan_t_s.copy(), poses[:, :2],
                              poses[:, 2])
        return SensorFrame(self.stamp_ns, ego, rgb, points, scene, plan)

    def hold(self, delta_ns: int) -> None:
        """Let sim time pass without moving the world (while the stack starts); the episode's clock waits.

        The sensors look again, so a world changed in place between steps (a test arranging cars) is seen.
        """
        self.stamp_ns += delta_ns
        self._observation = self.env.unwrapped.observation_type.observe()
        if self.record is not None:
            self.record.start_stamp_ns += delta_ns
        self._remember_pose()

    # ------------------------------------------------------------------------------------------ control
    def accept_plan(self, trajectory: Trajectory) -> bool:
        """Take a plan made at a stamp of this episode (one from before a reset is dropped)."""
        if trajectory.stamp_ns not in self._poses or len(trajectory) == 0:
            self.rejected_plans += 1
            return False
        if self.plan is None or trajectory.stamp_ns >= self.plan.stamp_ns:
            self.plan = trajectory
        return True

    def has_plan_for(self, stamp_ns: int) -> bool:
        return self.plan is not None and self.plan.stamp_ns >= stamp_ns

    def off_road(self) -> bool:
        margin = self.config['off_road_margin_m']
        if margin <= 0:
            return False
        v = self.vehicle
        lateral = abs(float(v.lane.local_coordinates(v.position)[1]))
        return lateral > v.lane.width_at(0.0) / 2 + margin

    def _stack_action(self) -> np.ndarray:
        pose_now, speed = self.pose(), float(self.vehicle.speed)
        dt_s = self.period_ns / NS_PER_S
        plan = self.plan
        if plan is None or (self.stamp_ns - plan.stamp_ns) / NS_PER_S > self.config['plan_max_age_s']:
            # No usable plan: brake straight to a stop, as a vehicle interface does when plans stop coming.
            steering, acceleration = 0.0, -min(self.controller.config.max_decel_mps2, max(speed, 0.0) / dt_s)
        else:
            command = self.controller.command(plan, self._poses[plan.stamp_ns], pose_now,
                                              (self.stamp_ns - plan.stamp_ns) / NS_PER_S, speed, dt_s)
            steering, acceleration = command.steering_rad, command.acceleration_mps2
        action_type = self.env.action_type
        accel_range, steer_range = action_type.acceleration_range, action_type.steering_range
        return np.array([np.interp(acceleration, accel_range, (-1.0, 1.0)),
                         np.interp(steering, steer_range, (-1.0, 1.0))], dtype=np.float32)

    def step(self, takeover_active: bool = False, takeover_reasons: tuple[str, ...] = (),
             deadline_missed: bool = False) -> StepResult:
        """Advance one period: decide who drives, act, step the simulator, account for it."""
        record = self.record
        v = self.vehicle
        record.deadline_misses += int(deadline_missed)
        off_road = self.driver_mode != EXPERT_DRIVES and self.off_road()
        reasons = list(takeover_reasons) + ([OFF_ROAD_REASON] if off_road else [])
        previous_driver = self.safety_driver.driver
        driver = self.safety_driver.update(self.stamp_ns, takeover_active or off_road, reasons,
                                           float(v.position[0]), float(v.position[1]))
        record.takeovers = [asdict(t) for t in self.safety_driver.takeovers]
        if driver == EXPERT:
            v.engage_expert()
            action = np.zeros(2, dtype=np.float32)   # ignored by the expert
        else:
            if previous_driver == EXPERT:
                v.release_expert()
                self.controller.reset()
            action = self._stack_action()

        if self.lead_braking is not None:
            self.lead_braking.step(self.env.unwrapped.road, v)
        position = v.position.copy()
        self._previous_heading = float(v.heading)
        self._observation, _, terminated, truncated, _ = self.env.step(action)
        v = self.vehicle
        self.stamp_ns += self.period_ns
        self._remember_pose()
        moved_m = float(np.linalg.norm(v.position - position))
        record.add_step((self.stamp_ns - record.start_stamp_ns) / NS_PER_S, float(v.position[0]),
                        float(v.position[1]), float(v.speed), driver, moved_m)
        if v.crashed:
            record.collisions, record.collision_driver, record.end_reason = 1, driver, 'collision'
        elif terminated:
            record.end_reason = 'goal'
        elif truncated:
            record.end_reason = 'time_limit'
        if not (v.crashed or terminated or truncated):
            return StepResult(driver, None)
        self.completed.append(record)
        self.record = None
        return StepResult(driver, record)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
