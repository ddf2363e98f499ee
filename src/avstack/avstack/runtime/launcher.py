"""Start the stack's nodes as processes without ``ros2 launch`` (for pip-only machines and tests).

Two layouts (:data:`LAYOUTS`), as in ``launch/stack.launch.py``: ``composed``,
the default, runs perception_node and planner_node in one driving process
(``planner.driving_process``, token sets handed over in memory) next to
critic_node; ``split`` runs each node in its own process (debugging,
spreading over machines). Each process is ``python -m <module> --ros-args
--params-file <config> ...`` in its own process group, with its output prefixed by its name, the large-data
DDS transport in its environment, SIGINT/SIGTERM forwarded, and everything
stopped when the launcher stops, the monitor (critic_node) last.

The monitor outlives what it monitors, as in ``launch/stack.launch.py``: a
node that dies is respawned when configured; otherwise the others keep
running, so the critic's watchdog requests the takeover and it stands, and
the launcher exits non-zero once it is stopped. When the monitor itself dies
(without respawn), nothing watches the stack any more: the launcher stops
everything and exits non-zero; a vehicle interface sees the critic's heartbeat
fall silent. Without a monitor among the nodes (``--nodes``), a dead node
stops the stack at once.
"""

import contextlib
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
    """One process: a node, or several composed (``composes``: the nodes it runs, each with its config section)."""

    name: str       # node name = section in the config file; a composed process: its own name
    package: str    # owns the node's schema (the executable's package)
    module: str     # python -m <module>
    composes: tuple['NodeSpec', ...] = ()

    def nodes(self) -> tuple['NodeSpec', ...]:
        """The nodes this process runs: the ones it composes, or itself."""
        return self.composes or (self,)


CRITIC_NODE = NodeSpec('critic_node', 'critic_monitor', 'critic_monitor.critic_node')
# Every node of the stack, one process each: the split layout.
STACK_NODES = (
    NodeSpec('perception_node', 'perception_llm', 'perception_llm.perception_node'),
    NodeSpec('planner_node', 'planner', 'planner.planner_node'),
    CRITIC_NODE,
)
DRIVING_PROCESS = NodeSpec('driving_process', 'planner', 'planner.driving_process', composes=STACK_NODES[:2])
LAYOUTS = {'composed': (DRIVING_PROCESS, CRITIC_NODE), 'split': STACK_NODES}
DEFAULT_LAYOUT = 'composed'
# Each node is one process doing its own work; BLAS/OpenMP thread pools inside every
# one of them would oversubscribe small machines (torch threads are a node parameter).
SINGLE_THREADED_MATH = {'OMP_NUM_THREADS': '1', 'OPENBLAS_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
MONITOR = 'critic_node'
STOP_TIMEOUT_S = 5.0
RESPAWN_DELAY_S = 1.0


def check_config(path: Path, nodes=STACK_NODES) -> None:
    """Pre-flight: every node's section must satisfy its schema; sections must name known nodes."""
    document = read_params_file(path)
    nodes = [node for process in nodes for node in process.nodes()]
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
    def __init__(self, config: Path, nodes=LAYOUTS[DEFAULT_LAYOUT], use_sim_time: bool = False, respawn: bool = False,
                 remaps: tuple[str, ...] = (), extra_env: dict | None = None, output: TextIO | None = sys.stdout):
        self.config, self.nodes = Path(config), tuple(nodes)
        self.use_sim_time, self.respawn, self.remaps = use_sim_time, respawn, remaps
        self.env = configure_dds_transport(
            {**SINGLE_THREADED_MATH, **os.environ, 'PYTHONUNBUFFERED': '1', **(extra_env or {})})
        self.output = output
        self.running: dict[str, NodeProcess] = {}
        self.failed: dict[str, int] = {}   # node -> exit code, nodes that died and were not respawned
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
        """Supervise until ``until`` is set, or the monitor (or, without one, any node) dies without respawn;
        returns the exit code: non-zero once a node died without respawn."""
        monitored = MONITOR in self.running
        while not (until and until.is_set()) and not self._stopping:
            for name, entry in list(self.running.items()):
                code = entry.process.poll()
                if code is None or name in self.failed:
                    continue
                if self.respawn:
                    self._log(f'{name} exited with {code}; respawning in {RESPAWN_DELAY_S:.0f} s')
                    time.sleep(RESPAWN_DELAY_S)
                    self._spawn(entry.spec, entry.respawns + 1)
                    continue
                self.failed[name] = code
                if name == MONITOR or not monitored:
                    self._log(f'{name} exited with {code}; '
                              + ('nothing monitors the stack any more: ' if monitored else '') + 'stopping the stack')
                    self.stop()
                    return self.exit_code()
                self._log(f'{name} exited with {code}; {MONITOR} keeps watching (its watchdog requests the '
                          f'takeover); the other nodes keep running; Ctrl-C stops the stack')
            if until is not None:
                until.wait(poll_s)
            else:
                time.sleep(poll_s)
        return self.exit_code()

    def exit_code(self) -> int:
        """0, or the exit code of the first node that died without respawn (1 for a clean exit or a signal)."""
        code = next(iter(self.failed.values()), 0)
        return 0 if not self.failed else (code if code > 0 else 1)

    def stop(self) -> None:
        """SIGINT the nodes, the monitor last, then SIGTERM / SIGKILL what is still running after the timeout."""
        self._stopping = True
        entries = [e for e in self.running.values() if e.spec.name != MONITOR]
        self._signal_until_gone(entries)
        self._signal_until_gone([e for e in self.running.values() if e.spec.name == MONITOR])
        for entry in self.running.values():
            for reader in entry.readers:
                reader.join(timeout=1.0)

    @staticmethod
    def _signal_until_gone(entries: list[NodeProcess]) -> None:
        for sig, timeout in ((signal.SIGINT, STOP_TIMEOUT_S), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            alive = [e for e in entries if e.process.poll() is None]
            for entry in alive:
                try:
                    os.killpg(entry.process.pid, sig)
                    os.killpg(entry.process.pid, signal.SIGCONT)   # a stopped (hung) node must see it too
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + timeout
            for entry in alive:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    entry.process.wait(max(deadline - time.monotonic(), 0.0))

    def _log(self, text: str) -> None:
        if self.output is not None:
            self.output.write(f'[avstack] {text}\n')
            self.output.flush()

    def __enter__(self) -> 'Launcher':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
