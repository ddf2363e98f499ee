"""The ``main()`` every node process of the stack shares: transport, init, spin, clean exit.

A process runs one node, or several composed (``planner.driving_process``:
perception and planner), all spun by one executor on the main thread. Once
they are made (imports done, models loaded, publishers and subscriptions
created), everything alive is collected once and frozen out of the garbage
collector (``gc.freeze``): a full collection otherwise walks those start-up
objects and paused a callback of perception or the planner for 28-106 ms.

The executor is rclpy's ``SingleThreadedExecutor`` for every node. The
``EventsExecutor`` of this rclpy (9.1.2, ``rclpy.experimental``) does not
behave here: a 50 Hz timer fired once in a second of wall time and never under
``use_sim_time`` with ``/clock`` at 100 Hz, a ``publish()`` from another thread
(the planner's worker) blocked until the process was killed, and
``rclpy.shutdown()`` from another thread did not end its spin.

A configuration or checkpoint error at start-up ends the process with exit
code 2 and one line naming the problem, not a traceback.

A node with last words (the critic) handles SIGINT and SIGTERM itself: rclpy's
own handlers shut the context down at once, so nothing could be published
after them. Here the signal ends the spin, the node's ``stop()`` runs with
the context alive (it publishes and returns how long to keep serving, e.g.
for late joiners of transient-local topics), the node spins that much
longer (a second signal cuts it short), and only then does it shut down.
"""

import gc
import signal
import sys
import threading
import time
from typing import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from stack_common.checkpoint import CheckpointError
from stack_common.config import ConfigError
from stack_common.constants import EXIT_USAGE
from stack_common.memory import reuse_large_allocations
from stack_common.transport import configure_dds_transport

SPIN_PERIOD_S = 0.05   # how often a node with last words looks for a stop signal


def run_node(make_nodes: Callable[[], Node | Sequence[Node]], args=None, last_words: bool = False) -> int:
    """Spin the node (or nodes) ``make_nodes()`` returns until Ctrl-C; ``last_words``: the node's ``stop()`` runs
    before shutdown. Returns 0, or 2 on a configuration or checkpoint error."""
    configure_dds_transport()
    reuse_large_allocations()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO if last_words else None)
    stopping = threading.Event()
    if last_words:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stopping.set())
    nodes: list[Node] = []
    try:
        made = make_nodes()
        nodes = [made] if isinstance(made, Node) else list(made)
        executor = SingleThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
        freeze_startup_objects()
        if last_words:
            _spin_with_last_words(executor, nodes, stopping)
        else:
            executor.spin()
    except (ConfigError, CheckpointError) as error:
        print(f'[FATAL] {error}', file=sys.stderr, flush=True)
        return EXIT_USAGE
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # Ctrl-C shut the context down under a callback (rclpy may then fail to take a message): a clean stop.
    finally:
        for node in nodes:
            close = getattr(node, 'close', None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def freeze_startup_objects() -> None:
    """Collect once, then keep every object alive now out of all later collections (see the module doc)."""
    gc.collect()
    gc.freeze()


def _spin_with_last_words(executor: SingleThreadedExecutor, nodes: list[Node], stopping: threading.Event) -> None:
    while not stopping.is_set():
        executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    stopping.clear()
    linger_until = time.monotonic() + max(node.stop() for node in nodes)
    while not stopping.is_set() and time.monotonic() < linger_until:
        executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    for node in nodes:
        executor.remove_node(node)
