"""One closed-loop run: bridge + stack as real processes over DDS, recorded, reported.

Owns: the run's parameter file (config/stack.yaml with config/sim.yaml merged over it, then the run's
options, written to ``<out>/params.yaml`` so the run can be repeated), starting the bridge (on wall time:
it is the clock) and, with the model driving, perception, planner and critic (on sim time) with
:class:`~avstack.runtime.launcher.Launcher`, recording the run to ``<out>/run_mcap`` with
:class:`~avstack.bag.recorder.Recorder`, following ``/sim/status`` until every episode is done, and writing
``report.json`` and the plots. Used by ``avstack sim``, ``avstack sim-suite``, ``avstack demo`` and the
``sim`` benchmark.
"""

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

import rclpy.logging
import yaml
from rclpy.logging import LoggingSeverity
from rclpy.node import Node
from std_msgs.msg import String

from avstack.runtime.launcher import CRITIC_NODE, DEFAULT_LAYOUT, LAYOUTS, STACK_NODES, Launcher, NodeSpec, check_config
from avstack.runtime.paths import default_config, share_directory
from avstack.bag.recorder import Recorder
from avstack.runtime.ros import RosRuntime
from avstack.sim.report import build_report, plot_episodes, write_report
from avstack.sim.video import write_videos
from stack_common import topics
from stack_common.config import PARAMS_KEY, read_params_files
from stack_common.qos import STATUS_QOS
from stack_common.state import STATISTICS_FILE

BRIDGE_NODE = NodeSpec('bridge_node', 'sim_bridge', 'sim_bridge.bridge_node')
# What the lead trains on: the sensors, the expert's (or stack's) motion, privileged scene info, and what
# the stack did with it.
RECORDED_TOPICS = [topics.camera_topic('front'), topics.lidar_topic('top'), topics.ODOMETRY, topics.CLOCK,
                   topics.SIM_SCENE_INFO, topics.SIM_STATUS, topics.TRAJECTORY, topics.ASSESSMENT,
                   topics.TAKEOVER_REQUEST, topics.TAKEOVER_ACTIVE, topics.ROUTE_COMMAND, topics.PERCEPTION_STATUS,
                   topics.DIAGNOSTICS, topics.SIM_EXPERT_PLAN]
PLAN_TOPICS = [topics.TRAJECTORY, topics.ASSESSMENT]   # one message per step that the stack plans
# The nodes a run starts beside the bridge, per driver: the whole stack, the critic alone watching the expert's
# plans, or nothing (the expert drives the simulator itself).
DRIVER_NODES = {'model': LAYOUTS[DEFAULT_LAYOUT], 'expert-plans': (CRITIC_NODE,), 'expert': ()}
BAG_NAME = 'run_mcap'
RESULTS_NAME = 'episodes.jsonl'     # the bridge's episode records (the report is built from them)
STOP_POLL_S = 0.5
SIM_ENV = {'SDL_VIDEODRIVER': 'dummy', 'PYGAME_HIDE_SUPPORT_PROMPT': '1'}


class SimRunError(RuntimeError):
    """The run could not finish: a node died or the bridge went silent; the message says which."""


def sim_config() -> Path:
    return share_directory() / 'config' / 'sim.yaml'


PRIVATE_DOMAINS = (100, 200)   # where a run picks its own DDS domain when ROS_DOMAIN_ID is not set


@dataclass
class SimOptions:
    out: Path
    scenarios: list[str] = field(default_factory=lambda: ['highway-v0'])
    episodes: int = 1
    seed: int = 0
    driver: str = 'model'
    realtime: bool = False
    duration_s: float | None = None
    density: float | None = None
    expert_noise_rad: float | None = None  # steering disturbance of the expert (data collection)
    expert_speed_noise_hz: float | None = None  # rate of cruise-speed disturbances of the expert
    lead_brake_hz: float | None = None          # rate of hard-braking events of the car ahead
    relabel: bool = False                # record the expert's plan from every state (/sim/expert_plan)
    checkpoint: Path | None = None
    config: list[Path] | None = None     # the stack's parameter files, laid over each other (default config/stack.yaml)
    sim_config: Path | None = None       # the sim overrides (default config/sim.yaml)
    record: bool = True
    silence_timeout_s: float = 120.0     # no status from the bridge for this long (first step included): failed


def results_path(options: SimOptions) -> Path:
    return options.out / RESULTS_NAME


def read_results(path: Path) -> tuple[list[dict], dict | None]:
    """The episode records and the end-of-run summary the bridge wrote so far."""
    if not path.exists():
        return [], None
    documents = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    done = next((d for d in documents if d['kind'] == 'done'), None)
    return [d for d in documents if d['kind'] == 'episode'], done


def run_parameters(options: SimOptions) -> dict:
    """stack.yaml, sim.yaml merged over it, then the options of this run (a ROS 2 parameter document)."""
    document = read_params_files([*(options.config or [default_config()]), options.sim_config or sim_config()])
    bridge = document.setdefault(BRIDGE_NODE.name, {PARAMS_KEY: {}})[PARAMS_KEY]
    bridge.update(scenarios=list(options.scenarios), episodes=options.episodes, seed=options.seed,
                  driver=options.driver, lockstep=not options.realtime,
                  wait_for_subscribers=1 if options.record else 0,
                  results_path=str(results_path(options).resolve()))
    if options.duration_s is not None:
        bridge['duration_s'] = float(options.duration_s)
    if options.density is not None:
        bridge['density'] = float(options.density)
    if options.expert_noise_rad is not None:
        bridge['expert_steering_noise_rad'] = float(options.expert_noise_rad)
    if options.expert_speed_noise_hz is not None:
        bridge['expert_speed_disturbance_hz'] = float(options.expert_speed_noise_hz)
    if options.lead_brake_hz is not None:
        bridge['lead_brake_hz'] = float(options.lead_brake_hz)
    bridge['relabel'] = bool(options.relabel or bridge.get('relabel', False))
    critic = document.setdefault('critic_node', {PARAMS_KEY: {}})[PARAMS_KEY]
    critic['statistics_path'] = str((options.out / STATISTICS_FILE).resolve())
    if options.checkpoint is not None:
        for node in ('perception_node', 'planner_node'):
            document.setdefault(node, {PARAMS_KEY: {}})[PARAMS_KEY]['checkpoint'] = str(options.checkpoint)
    return document


class SimStatusObserver(Node):
    """Follows ``/sim/status`` for the live status line: the newest step, the end of the run."""

    def __init__(self, **node_kwargs):
        super().__init__('sim_status_observer', **node_kwargs)
        self.changed = threading.Condition()
        self.latest: dict | None = None
        self.finished = False
        self.last_receipt_s = time.monotonic()
        self.create_subscription(String, topics.SIM_STATUS, self.on_status, STATUS_QOS)

    def on_status(self, msg: String) -> None:
        document = json.loads(msg.data)
        with self.changed:
            self.last_receipt_s = time.monotonic()
            if document['kind'] == 'step':
                self.latest = document
            self.finished = self.finished or document['kind'] == 'done'
            self.changed.notify_all()

    def wait_until_done(self, timeout_s: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.finished, timeout_s)


def own_domain() -> int:
    """The DDS domain of this run: ROS_DOMAIN_ID when the user set one, else a private one.

    A run publishes a whole world of sensors: two runs (or a run and a live stack) on one domain would
    drive on each other's cameras and record each other's topics.
    """
    if 'ROS_DOMAIN_ID' not in os.environ:
        os.environ['ROS_DOMAIN_ID'] = str(PRIVATE_DOMAINS[0] + os.getpid() % (PRIVATE_DOMAINS[1] - PRIVATE_DOMAINS[0]))
    return int(os.environ['ROS_DOMAIN_ID'])


@dataclass
class SimResult:
    report: dict
    report_path: Path
    plots: list[Path]
    bag: Path | None
    videos: list[Path] = field(default_factory=list)


class SimRun:
    def __init__(self, options: SimOptions, log: TextIO | None = None):
        self.options = options
        self.log = log

    def prepare(self) -> Path:
        """Write and check ``<out>/params.yaml``; raises ConfigError naming the bad key."""
        out = self.options.out
        out.mkdir(parents=True, exist_ok=True)
        params = out / 'params.yaml'
        params.write_text(yaml.safe_dump(run_parameters(self.options), sort_keys=False))
        check_config(params, (BRIDGE_NODE,) + STACK_NODES)
        return params

    def run(self, on_status: Callable[[dict | None], None] | None = None, poll_s: float = STOP_POLL_S) -> SimResult:
        options = self.options
        params = self.prepare()
        domain_id = own_domain()
        results = results_path(options)
        results.unlink(missing_ok=True)
        bag = options.out / BAG_NAME if options.record else None
        started_s = time.monotonic()
        with RosRuntime(threads=3) as ros:
            observer = ros.add(SimStatusObserver(context=ros.context))
            recorder = Recorder(ros, bag, topics=RECORDED_TOPICS, storage='mcap').start() if bag else None
            if recorder is not None:   # its "recording <topic>" lines would break the status line
                rclpy.logging.set_logger_level(recorder.node.get_logger().name, LoggingSeverity.WARN)
            launchers = []
            try:
                if DRIVER_NODES[options.driver]:
                    launchers.append(Launcher(params, DRIVER_NODES[options.driver], use_sim_time=True,
                                              output=self.log, extra_env=SIM_ENV).start())
                    if recorder is not None and options.driver == 'model':
                        self._wait_for_recording(recorder, launchers, poll_s)
                launchers.append(Launcher(params, (BRIDGE_NODE,), use_sim_time=False, output=self.log,
                                          extra_env=SIM_ENV).start())
                self._follow(observer, results, launchers, on_status, poll_s)
            finally:
                for launcher in launchers:
                    launcher.stop()
                if recorder is not None:
                    recorder.stop()
        episodes, finished = read_results(results)
        run_info = {
            'driver': options.driver, 'lockstep': not options.realtime, 'seed': options.seed,
            'episodes_per_scenario': options.episodes,
            'checkpoint': str(options.checkpoint) if options.checkpoint else 'default',
            'ros_domain_id': domain_id,
            'run': {'steps': finished['steps'], 'bridge_wall_s': finished['wall_s'],
                    'steps_per_s': finished['steps_per_s'], 'plan_wait_p50_ms': finished['plan_wait_p50_ms'],
                    'plan_wait_p95_ms': finished['plan_wait_p95_ms'],
                    'total_wall_s': round(time.monotonic() - started_s, 1)},
            'files': {'params': str(params), 'mcap': str(bag) if bag else None},
        }
        report = build_report(episodes, run_info)
        plots = plot_episodes(episodes, options.out)
        report['files']['plots'] = [str(p) for p in plots]
        videos = []
        if bag is not None:
            camera = yaml.safe_load(params.read_text())[BRIDGE_NODE.name][PARAMS_KEY]['camera']
            videos = write_videos(bag, options.out, camera, camera['topic'])
        report['files']['videos'] = [str(p) for p in videos]
        return SimResult(report, write_report(report, options.out / 'report.json'), plots, bag, videos)

    def _wait_for_recording(self, recorder: Recorder, launchers: list[Launcher], poll_s: float) -> None:
        """Hold the bridge's start until the recorder subscribed to the plans: a plan published before the
        recorder matched the planner is not delivered to it (reliable, volatile), and a step would lack its plan."""
        deadline = time.monotonic() + self.options.silence_timeout_s
        while not recorder.wait_for_topics(PLAN_TOPICS, poll_s):
            _check_running(launchers)
            if time.monotonic() > deadline:
                raise SimRunError(f'no publisher of {", ".join(PLAN_TOPICS)} after '
                                  f'{self.options.silence_timeout_s:.0f} s: see nodes.log')

    def _follow(self, observer: SimStatusObserver, results: Path, launchers: list[Launcher], on_status,
                poll_s: float) -> None:
        while not (observer.wait_until_done(poll_s) or read_results(results)[1] is not None):
            _check_running(launchers)
            silent_s = time.monotonic() - observer.last_receipt_s
            if silent_s > max(self.options.silence_timeout_s, 0.0):
                if observer.latest is None:   # the bridge holds its first step until the stack planned it
                    raise SimRunError(f'no first step after {silent_s:.0f} s: the stack sent no plan for it')
                raise SimRunError(f'no status from bridge_node for {silent_s:.0f} s')
            if on_status is not None:
                on_status(observer.latest)


def _check_running(launchers: list[Launcher]) -> None:
    for launcher in launchers:
        for name, entry in launcher.running.items():
            code = entry.process.poll()
            if code is not None:
                raise SimRunError(f'{name} exited with code {code} before the run finished')
