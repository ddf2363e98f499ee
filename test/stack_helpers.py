"""Helpers of the tests that run the whole stack: a liveness-only config, and a stack brought to NOMINAL."""

import time

import yaml
from std_srvs.srv import Trigger

from avstack.observer import StackObserver
from stack_common.config import merge_documents, read_params_file

from conftest import STACK_CONFIG

STARTUP_TIMEOUT_S = 90.0


def reset(observer: StackObserver) -> Trigger.Response:
    client = observer.create_client(Trigger, '/critic_node/reset')
    assert client.wait_for_service(timeout_sec=10.0)
    future = client.call_async(Trigger.Request())
    deadline = time.monotonic() + 10.0
    while not future.done() and time.monotonic() < deadline:
        observer.wait_for(lambda o: future.done(), 0.5)
    return future.result()


LIVENESS_CHECKS = ('validity', 'staleness', 'watchdogs', 'sensor_loss')


def liveness_only(tmp_path, state_machine: dict | None = None):
    """The shipped config with only the liveness checks on (every other check of its critic section off).
    The start-up grace ends at the first plan, so a long one only lets a loaded machine load the model before
    missing plans count."""
    checks = read_params_file(STACK_CONFIG)['critic_node']['ros__parameters']['checks']
    plan_checks = {name: {'enabled': False} if 'enabled' in section else {k: {'enabled': False} for k in section}
                   for name, section in checks.items() if name not in LIVENESS_CHECKS}
    state_machine = {'startup_grace_s': STARTUP_TIMEOUT_S, **(state_machine or {})}
    overlay = {'critic_node': {'ros__parameters': {'checks': plan_checks, 'state_machine': state_machine}}}
    config = tmp_path / 'liveness_only.yaml'
    config.write_text(yaml.safe_dump(merge_documents(read_params_file(STACK_CONFIG), overlay)))
    return config


def wait_until_nominal(observer: StackObserver, count: int = 10) -> None:
    """Plans arrive and the critic stays NOMINAL over ``count`` of them. A request latched while a loaded
    machine was starting the nodes (a late first plan) is reset: faults are injected into a nominal stack."""
    assert observer.wait_for(lambda o: len(o.trajectories) >= count, STARTUP_TIMEOUT_S), 'no trajectories: nodes.log'
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        assert time.monotonic() < deadline, f'the critic is {observer.critic_state}, never NOMINAL: nodes.log'
        if observer.critic_state == 'TAKEOVER_REQUESTED':
            reset(observer)
        if not observer.wait_for(lambda o: o.critic_state == 'NOMINAL', 2.0):
            continue
        seen = len(observer.trajectories)
        observer.wait_for(lambda o: len(o.trajectories) >= seen + count or o.critic_state != 'NOMINAL', 10.0)
        if observer.critic_state == 'NOMINAL' and len(observer.trajectories) >= seen + count:
            return
