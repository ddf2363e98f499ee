"""Helpers of the tests that run the whole stack: the shipped critic config (and what a loaded machine and the
shipped model on the synthetic road change in it), a stack seen NOMINAL, the reset service."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import yaml
from std_srvs.srv import Trigger

from avstack.runtime.observer import StackObserver
from stack_common.config import merge_documents, read_params_file

from support import STACK_CONFIG

STARTUP_TIMEOUT_S = 90.0


def reset(observer: StackObserver) -> Trigger.Response:
    """Call the critic's ~/reset (tests of the reset service and of real faults only)."""
    client = observer.create_client(Trigger, '/critic_node/reset')
    assert client.wait_for_service(timeout_sec=10.0)
    future = client.call_async(Trigger.Request())
    deadline = time.monotonic() + 10.0
    while not future.done() and time.monotonic() < deadline:
        observer.wait_for(lambda o: future.done(), 0.5)
    return future.result()


# Sensor stamp -> plan at the critic takes 257 ms at p99 on this 2-core machine unloaded (docs/architecture.md),
# more while other jobs share it (p99 292-1373 ms measured at load 4-6): the shipped 0.3 s staleness limit would
# request takeovers that these tests are not about (test_critic_checks.py holds the staleness check itself).
LOADED_MACHINE_STALENESS_S = 1.0
# Loading torch and the model on the loaded 2-core machine: the first plan reached the critic 12.5 s after the
# critic started (load 6), past the shipped 10 s startup_grace_s; the grace only lets it load before missing plans
# count. The rest of the start-up rule (WAITING until every input is heard, a first plan and nominal_hold_s of
# passing checks; startup_timeout_s after the first plan) is the shipped one.
LOADED_MACHINE_STARTUP_GRACE_S = STARTUP_TIMEOUT_S
# On a machine loaded beyond its cores a plan or sensor gap can pass a watchdog's timeout now and then: a real
# takeover, but not the fault a test injects. Such a request clears by itself once every check has passed
# this long (the stack's auto-clear policy; no reset), so the test can still start from a NOMINAL stack.
LOADED_MACHINE_AUTO_CLEAR_S = 2.0
# The checks the shipped model's own plans fail on the synthetic road (the scene of SyntheticSensorSource, which
# it was not trained on), measured over 60 s of the stack at 10 Hz with every shipped check on: its plans swerve
# left towards the parked car and the fence (collision: time to contact 0.6-1.5 s, in 48 of 64 one-second
# diagnostics; offline in 33 of 80 plans of an 8 s drive), jump sideways between frames (trajectory_shift: 1.9 m
# lateral against the 0.5 m limit, 44 of 64) and end in a sharp swerve (lateral_jerk: 7.0-7.8 m/s^3 against 5,
# 31 of 64). With them on the critic never leaves WAITING for a nominal stack. Every other plan check stays on with
# its shipped thresholds (staleness: LOADED_MACHINE_STALENESS_S). The model is the lead's (docs/model.md).
MODEL_FAILS_ON_SYNTHETIC_ROAD = {'collision': {'enabled': False},
                                 'consistency': {'trajectory_shift': {'enabled': False}},
                                 'kinematics': {'lateral_jerk': {'enabled': False}}}
NEVER_HEARD = 'message received yet'   # a watchdog's reason for an input start-up never heard


def stack_config(tmp_path, state_machine: dict | None = None, checks: dict | None = None, name: str = 'stack.yaml',
                 planner: dict | None = None, **critic_params) -> Path:
    """config/stack.yaml with the critic's ``state_machine``, ``checks`` and ``critic_params`` and the planner's
    ``planner`` parameters laid over it (nothing else): the shipped critic configuration and start-up rule, save for
    what a test names."""
    overlay = {'critic_node': {'ros__parameters': {'checks': checks or {}, 'state_machine': state_machine or {},
                                                   **critic_params}},
               'planner_node': {'ros__parameters': planner or {}}}
    config = tmp_path / name
    config.write_text(yaml.safe_dump(merge_documents(read_params_file(STACK_CONFIG), overlay)))
    return config


def shipped_critic(tmp_path, state_machine: dict | None = None, checks: dict | None = None,
                   **critic_params) -> Path:
    """The shipped critic configuration for a stack on the synthetic sensors of a loaded machine: every check on
    with its shipped threshold but the three the shipped model's plans fail on that road
    (``MODEL_FAILS_ON_SYNTHETIC_ROAD``) and staleness after ``LOADED_MACHINE_STALENESS_S``; the shipped start-up
    rule with ``LOADED_MACHINE_STARTUP_GRACE_S`` to load the model; a request clearing after
    ``LOADED_MACHINE_AUTO_CLEAR_S`` of passing checks (unless ``state_machine`` says otherwise); ``checks``
    layered over that."""
    checks = merge_documents(MODEL_FAILS_ON_SYNTHETIC_ROAD, {'staleness': {'max_age_s': LOADED_MACHINE_STALENESS_S}},
                             checks or {})
    state_machine = {'startup_grace_s': LOADED_MACHINE_STARTUP_GRACE_S,
                     'auto_clear_after_s': LOADED_MACHINE_AUTO_CLEAR_S, **(state_machine or {})}
    return stack_config(tmp_path, state_machine, checks, 'shipped_critic.yaml', **critic_params)


def wait_until_nominal(observer: StackObserver, count: int = 10, clear_s: float = LOADED_MACHINE_AUTO_CLEAR_S) -> None:
    """Plans arrive, start-up (in whatever order the nodes and sensors came up) requested nothing for an input
    it had not heard yet, and the critic stays NOMINAL over ``count`` plans without a takeover: faults are
    injected into a nominal stack. A takeover for a slow plan or a gap past a watchdog (a loaded machine) must
    clear by itself first (the critic's auto-clear after ``clear_s`` of passing checks): no reset is called, and
    each such takeover gets ``clear_s`` more before the wait gives up."""
    assert observer.wait_for(lambda o: len(o.trajectories) >= count, STARTUP_TIMEOUT_S), 'no trajectories: nodes.log'
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        assert not [r for t in observer.takeovers for r in t.reasons if NEVER_HEARD in r.message], \
            f'start-up requested a takeover for an input it had not heard yet: {takeover_reasons(observer)}'
        assert observer.wait_for(lambda o: o.critic_state == 'NOMINAL' and not o.takeover_active,
                                 deadline - time.monotonic()), \
            f'the critic is {observer.critic_state}, never NOMINAL: {takeover_reasons(observer)}; nodes.log'
        seen, requests = len(observer.trajectories), len(observer.takeovers)
        observer.wait_for(lambda o, seen=seen, requests=requests: len(o.trajectories) >= seen + count
                          or len(o.takeovers) > requests, 10.0)
        if len(observer.takeovers) == requests and observer.critic_state == 'NOMINAL' \
                and len(observer.trajectories) >= seen + count:
            return
        if len(observer.takeovers) > requests:
            deadline = max(deadline, time.monotonic() + clear_s + 10.0)


def takeover_reasons(observer: StackObserver) -> list[list[tuple[str, str]]]:
    return [[(r.check, r.message) for r in t.reasons] for t in observer.takeovers]


PROCESSES = ('driving_process', 'critic_node')   # the composed layout, avstack up's default


class Up:
    """`avstack up` as a child process whose output lines are collected as they come."""

    def __init__(self, *arguments: str):
        self.process = subprocess.Popen([sys.executable, '-m', 'avstack.cli', 'up', *arguments],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=dict(os.environ, PYTHONUNBUFFERED='1'))
        self.lines: list[str] = []
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, predicate, timeout_s: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self.lines), timeout_s)

    def node_pid(self, name: str) -> int:
        return next(c.pid for c in psutil.Process(self.process.pid).children()
                    if any(name in part for part in c.cmdline()))

    def wait_ready(self) -> None:
        # every node has logged through the launcher's prefix once it is up
        assert self.wait_for(lambda lines: all(any(line.startswith(f'[{n}]') for line in lines) for n in PROCESSES),
                             STARTUP_TIMEOUT_S), ''.join(self.lines)

    def log(self) -> str:
        with self.changed:
            return ''.join(self.lines[-40:])

    def stop(self) -> int:
        """Ctrl-C and wait for the exit code; what still runs after a minute is killed."""
        if self.process.poll() is None:
            nodes = psutil.Process(self.process.pid).children(recursive=True)
            self.process.send_signal(signal.SIGINT)
            try:
                return self.process.wait(60)
            except subprocess.TimeoutExpired:
                for process in [*nodes, self.process]:
                    process.kill()
        return self.process.wait(10)
