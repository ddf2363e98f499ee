"""Start the stack's nodes as processes without ``ros2 launch`` (for pip-only machines and tests).

Each node is ``python -m <module> --ros-args --params-file <config> ...`` in
its own process group, with its output prefixed by its name, the large-data
DDS transport in its environment, SIGINT/SIGTERM forwarded, and everything
stopped when the launcher stops. A node that dies is respawned when
configured, otherwise the whole stack stops with a non-zero exit code.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from stack_common.config import ConfigError, load_node_config, read_params_file, WILDCARD
from stack_common.transport import configure_dds_transport


@dataclass(frozen=True)
class NodeSpec:
    name: str       # node name = section in the config file
    package: str    # owns the node's schema
    module: str     # python -m <module>


CRITIC_NODE = NodeSpec('critic_node', 'critic_monitor', 'critic_monitor.critic_node')
STACK_NODES = (
    NodeSpec('perception_node', 'perception_llm', 'perception_llm.perception_node'),
    NodeSpec('planner_node', 'planner', 'planner.planner_node'),
    CRITIC_NODE,
)
# Each node is one process doing its own work; BLAS/OpenMP thread pools inside every
# one of them would oversubscribe small machines (torch threads are a node parameter).
SINGLE_THREADED_MATH = {'OMP_NUM_THREADS': '1', 'OPENBLAS_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
STOP_TIMEOUT_S = 5.0
RESPAWN_DELAY_S = 1.0


def check_config(path: Path, nodes=STACK_NODES) -> None:
    """Pre-flight: every node's section must satisfy its schema; sections must name known nodes."""
    document = read_params_file(path)
    known = {WILDCARD} | {n.name for n in nodes} | {'/' + n.name for n in nodes}
    unknown = sorted(set(document) - known)
    if unknown:
        raise ConfigError(f'{path}: unknown node section(s) {unknown}; known: {sorted(n.name for n in nodes)}')
    for node in nodes:
        load_node_config(node.package, node.name, path)


@dataclass
class NodeProcess:
    spec: NodeSpec
    process: subprocess.Popen
    respawns: int = 0
    readers: list[threading.Thread] = field(default_factory=list)


class Launcher:
    def __init__(self, config: Path, nodes=STACK_NODES, use_sim_time: bool = False, respawn: bool = False,
                 remaps: tuple[str, ...] = (), extra_env: dict | None = None, output: TextIO | None = sys.stdout):
        self.config, self.nodes = Path(config), tuple(nodes)
        self.use_sim_time, self.respawn, self.remaps = use_sim_time, respawn, remaps
        self.env = configure_dds_transport(
            {**SINGLE_THREADED_MATH, **os.environ, 'PYTHONUNBUFFERED': '1', **(extra_env or {})})
        self.output = output
        self.running: dict[str, NodeProcess] = {}
        self._lock = threading.Lock()
        self._stopping = False

    def command(self, spec: NodeSpec) -> list[str]:
        command = [sys.executable, '-m', spec.module, '--ros-args', '--params-file', str(self.config)]
        if self.use_sim_time:
            command += ['-p', 'use_sim_time:=true']
        for remap in self.remaps:
            command += ['-r', remap]
        return command

    def start(self) -> 'Launcher':
        for spec in self.nodes:
            self._spawn(spec)
        return self

    def _spawn(self, spec: NodeSpec, respawns: int = 0) -> None:
        process = subprocess.Popen(self.command(spec), env=self.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                   text=True, bufsize=1)
        entry = NodeProcess(spec, process, respawns)
        reader = threading.Thread(target=self._relay, args=(spec.name, process), daemon=True)
        reader.start()
        entry.readers.append(reader)
        with self._lock:
            self.running[spec.name] = entry

    def _relay(self, name: str, process: subprocess.Popen) -> None:
        for line in process.stdout:
            if self.output is not None:
                self.output.write(f'[{name}] {line}')
                self.output.flush()

    def pid(self, name: str) -> int:
        return self.running[name].process.pid

    def restart(self, name: str) -> None:
        """Start node ``name`` again (after it died or was killed), as a respawn would."""
        entry = self.running[name]
        if entry.process.poll() is None:
            raise RuntimeError(f'{name} is still running')
        self._spawn(entry.spec, entry.respawns + 1)

    def watch(self, poll_s: float = 0.1, until: threading.Event | None = None) -> int:
        """Supervise until ``until`` is set or a node dies without respawn; returns the exit code."""
        while not (until and until.is_set()) and not self._stopping:
            for name, entry in list(self.running.items()):
                code = entry.process.poll()
                if code is None:
                    continue
                if self.respawn:
                    self._log(f'{name} exited with {code}; respawning in {RESPAWN_DELAY_S:.0f} s')
                    time.sleep(RESPAWN_DELAY_S)
                    self._spawn(entry.spec, entry.respawns + 1)
                    continue
                self._log(f'{name} exited with {code}; stopping the stack')
                self.stop()
                return code if code else 1
            if until is not None:
                until.wait(poll_s)
            else:
                time.sleep(poll_s)
        return 0

    def stop(self) -> None:
        """SIGINT every node, then SIGTERM / SIGKILL what is still running after the timeout."""
        self._stopping = True
        entries = list(self.running.values())
        for sig, timeout in ((signal.SIGINT, STOP_TIMEOUT_S), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            alive = [e for e in entries if e.process.poll() is None]
            for entry in alive:
                try:
                    os.killpg(entry.process.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + timeout
            for entry in alive:
                try:
                    entry.process.wait(max(deadline - time.monotonic(), 0.0))
                except subprocess.TimeoutExpired:
                    pass
        for entry in entries:
            for reader in entry.readers:
                reader.join(timeout=1.0)

    def _log(self, text: str) -> None:
        if self.output is not None:
            self.output.write(f'[avstack] {text}\n')
            self.output.flush()

    def __enter__(self) -> 'Launcher':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
