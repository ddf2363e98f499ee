"""Helpers of the tests that run the whole stack: a liveness-only config, a stack seen NOMINAL, the reset service."""

import time

import yaml
from std_srvs.srv import Trigger

from avstack.observer import StackObserver
from stack_common.config import merge_documents, read_params_file

from conftest import STACK_CONFIG

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


LIVENESS_CHECKS = ('validity', 'staleness', 'watchdogs', 'sensor_loss')
# Sensor stamp -> plan at the critic takes 257 ms at p99 on this 2-core machine unloaded (docs/architecture.md),
# more while other jobs share it: the default 0.3 s staleness limit would request takeovers that these tests,
# about processes and watchdogs, are not about (test_critic_checks.py holds the staleness check itself).
LOADED_MACHINE_STALENESS_S = 1.0
# On a machine loaded beyond its cores a plan or sensor gap can pass a watchdog's timeout now and then: a real
# takeover, but not the fault a test injects. Such a request clears by itself once every check has passed
# this long (the stack's auto-clear policy; no reset), so the test can still start from a NOMINAL stack.
LOADED_MACHINE_AUTO_CLEAR_S = 2.0
NEVER_HEARD = 'message received yet'   # a watchdog's reason for an input start-up never heard


def liveness_only(tmp_path, state_machine: dict | None = None, **critic_params):
    """The shipped config with only the liveness checks on (every other check of its critic section off), plans
    stale only after ``LOADED_MACHINE_STALENESS_S``, a request clearing after ``LOADED_MACHINE_AUTO_CLEAR_S`` of
    passing checks (unless ``state_machine`` says otherwise) and ``critic_params`` set; the watchdogs keep the
    shipped timeouts. The start-up grace only lets a loaded machine load the model before missing plans
    count."""
    checks = read_params_file(STACK_CONFIG)['critic_node']['ros__parameters']['checks']
    plan_checks = {name: {'enabled': False} if 'enabled' in section else {k: {'enabled': False} for k in section}
                   for name, section in checks.items() if name not in LIVENESS_CHECKS}
    plan_checks['staleness'] = {'max_age_s': LOADED_MACHINE_STALENESS_S}
    state_machine = {'startup_grace_s': STARTUP_TIMEOUT_S, 'auto_clear_after_s': LOADED_MACHINE_AUTO_CLEAR_S,
                     **(state_machine or {})}
    overlay = {'critic_node': {'ros__parameters': {'checks': plan_checks, 'state_machine': state_machine,
                                                   **critic_params}}}
    config = tmp_path / 'liveness_only.yaml'
    config.write_text(yaml.safe_dump(merge_documents(read_params_file(STACK_CONFIG), overlay)))
    return config


def wait_until_nominal(observer: StackObserver, count: int = 10) -> None:
    """Plans arrive, start-up (in whatever order the nodes and sensors came up) requested nothing for an input
    it had not heard yet, and the critic stays NOMINAL over ``count`` plans without a takeover: faults are
    injected into a nominal stack. A takeover for a slow plan or a gap past a watchdog (a loaded machine) must
    clear by itself first (liveness_only's auto-clear): no reset is called."""
    assert observer.wait_for(lambda o: len(o.trajectories) >= count, STARTUP_TIMEOUT_S), 'no trajectories: nodes.log'
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        assert not [r for t in observer.takeovers for r in t.reasons if NEVER_HEARD in r.message], \
            f'start-up requested a takeover for an input it had not heard yet: {takeover_reasons(observer)}'
        assert observer.wait_for(lambda o: o.critic_state == 'NOMINAL' and not o.takeover_active,
                                 deadline - time.monotonic()), \
            f'the critic is {observer.critic_state}, never NOMINAL: {takeover_reasons(observer)}; nodes.log'
        seen, requests = len(observer.trajectories), len(observer.takeovers)
        observer.wait_for(lambda o: len(o.trajectories) >= seen + count or len(o.takeovers) > requests, 10.0)
        if len(observer.takeovers) == requests and observer.critic_state == 'NOMINAL' \
                and len(observer.trajectories) >= seen + count:
            return


def takeover_reasons(observer: StackObserver) -> list[list[tuple[str, str]]]:
    return [[(r.check, r.message) for r in t.reasons] for t in observer.takeovers]
