"""`avstack up`: output prefixed per node, Ctrl-C stops everything, a dead node stops the stack (exit != 0)
unless --respawn restarts it."""

import os
import signal
import subprocess
import sys
import threading

import psutil
import pytest

NODES = ('perception_node', 'planner_node', 'critic_node')
STARTUP_TIMEOUT_S = 90.0


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
        assert self.wait_for(lambda lines: all(any(l.startswith(f'[{n}]') for l in lines) for n in NODES),
                             STARTUP_TIMEOUT_S), ''.join(self.lines)


def gone(pids: list[int]) -> bool:
    return not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


@pytest.mark.timeout(180)
def test_ctrl_c_stops_every_node_and_exits_0(ros_domain):
    up = Up()
    up.wait_ready()
    children = [c.pid for c in psutil.Process(up.process.pid).children()]
    assert len(children) == 3
    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(30) == 0
    assert gone(children)


@pytest.mark.timeout(180)
def test_a_dead_node_stops_the_stack_with_a_nonzero_exit(ros_domain):
    up = Up()
    up.wait_ready()
    children = [c.pid for c in psutil.Process(up.process.pid).children()]
    os.kill(up.node_pid('planner.planner_node'), signal.SIGKILL)
    assert up.process.wait(30) != 0
    assert up.wait_for(lambda lines: any('planner_node exited' in l for l in lines), 5.0)
    assert gone(children)


@pytest.mark.timeout(180)
def test_with_respawn_a_dead_node_is_started_again(ros_domain):
    up = Up('--respawn')
    up.wait_ready()
    first = up.node_pid('planner.planner_node')
    os.kill(first, signal.SIGKILL)
    assert up.wait_for(lambda lines: any('respawning' in l for l in lines), 10.0)
    # a respawned node logs again through the launcher: wait for its start-up line after the kill
    seen = len(up.lines)
    assert up.wait_for(lambda lines: any(l.startswith('[planner_node]') for l in lines[seen:]), STARTUP_TIMEOUT_S)
    assert up.node_pid('planner.planner_node') != first and up.process.poll() is None
    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(30) == 0
