"""The whole loop over real DDS: sensors -> perception -> planner -> critic, as separate processes.

The test publishes a 1280x720 bgr8 camera, a ~100k-point lidar (x, y, z,
intensity, ring and padding bytes) and odometry at 10 Hz, checks that the
camera stamps come back as trajectory stamps, then kills the planner with
SIGKILL and measures how fast the critic requests a takeover. The critic runs
its shipped checks and start-up rule (stack_helpers.shipped_critic: the three
checks the shipped model's plans fail on the synthetic road off) and the kill
comes once it is NOMINAL: the takeover must be the planner's silence.
"""

import os
import signal
import time

import pytest

from avstack.runtime.launcher import Launcher
from avstack.runtime.observer import StackObserver
from avstack.runtime.ros import RosRuntime
from avstack.synthetic.sensor_source import SyntheticSensorSource
from stack_common.config import load_node_config

from support import STACK_CONFIG
from stack_helpers import STARTUP_TIMEOUT_S, shipped_critic, wait_until_nominal

WINDOW_FRAMES = 30


@pytest.mark.timeout(240)
def test_sensor_stamps_come_back_as_trajectories_and_a_killed_driving_process_causes_a_takeover(ros_domain, tmp_path):
    watchdog_s = load_node_config('critic_monitor', 'critic_node', STACK_CONFIG)['checks']['watchdogs'][
        'trajectory']['timeout_s']
    with open(tmp_path / 'nodes.log', 'w') as log, RosRuntime(threads=3) as ros, \
            Launcher(shipped_critic(tmp_path), output=log) as launcher:
        observer = ros.add(StackObserver(context=ros.context))
        source = ros.add(SyntheticSensorSource(context=ros.context, encoding='bgr8', replay_frames=20))
        assert source.scene.image_width == 1280 and source.scene.lidar(0.0).size >= 100_000
        assert observer.wait_for(lambda o: o.trajectories, STARTUP_TIMEOUT_S), 'no trajectory: see nodes.log'

        first = len(source.stamps())
        assert observer.wait_for(lambda o: len(source.stamps()) >= first + WINDOW_FRAMES, STARTUP_TIMEOUT_S)
        window = source.stamps()[first:first + WINDOW_FRAMES]
        observer.wait_for(lambda o: set(window) <= o.returned_stamps(), 2.0)
        returned = len(set(window) & observer.returned_stamps())
        # The planner plans the newest token set: one replaced before it got to it is dropped by design. Lost
        # here: 0 of 15, 0 of 15, 0 of 20, 1 of 17, 1 of 25, 2 of 25, 3 of 24, 3 of 25 (at load 10-13 on the
        # 2-core machine, where the test's own source managed 3-5 frames/s instead of 10).
        assert returned >= 0.8 * len(window), f'{returned} of {len(window)} camera stamps came back'

        wait_until_nominal(observer)
        killed_at, killed_ns = time.monotonic(), time.time_ns()
        os.kill(launcher.pid('driving_process'), signal.SIGKILL)   # perception and planner, composed

        def planner_timeout_after_kill(o: StackObserver) -> bool:
            return any(t.monotonic_s >= killed_at and any(r.check == 'trajectory_timeout' for r in t.reasons)
                       for t in o.takeovers)
        assert observer.wait_for(planner_timeout_after_kill, 5.0), 'no takeover naming the planner timeout'
        event = next(t for t in observer.takeovers
                     if t.monotonic_s >= killed_at and any(r.check == 'trajectory_timeout' for r in t.reasons))
        reaction_s = (event.stamp_ns - killed_ns) / 1e9   # the critic's decision, on its clock
        assert reaction_s <= watchdog_s + 0.1, f'takeover {reaction_s * 1e3:.0f} ms after the kill'
        assert observer.wait_for(lambda o: o.takeover_active, 2.0), 'the flag comes on its own topic'
