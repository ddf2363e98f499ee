"""The ``main()`` every node of the stack shares: transport, init, spin, clean exit.

A configuration or checkpoint error at start-up ends the process with exit
code 2 and one line naming the problem, not a traceback.

A node with last words (the critic) handles SIGINT and SIGTERM itself: rclpy's
own handlers shut the context down at once, so nothing could be published
after them. Here the signal ends the spin, the node's ``stop()`` runs with
the context alive (it publishes and returns how long to keep serving, e.g.
for late joiners of transient-local topics), the node spins that much
longer (a second signal cuts it short), and only then does it shut down.
"""

import signal
import sys
import threading
import time
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from stack_common.checkpoint import CheckpointError
from stack_common.config import ConfigError
from stack_common.memory import reuse_large_allocations
from stack_common.transport import configure_dds_transport

EXIT_CONFIG_ERROR = 2
SPIN_PERIOD_S = 0.05   # how often a node with last words looks for a stop signal


def run_node(make_node: Callable[[], Node], args=None, last_words: bool = False) -> int:
    """Spin ``make_node()`` until Ctrl-C; ``last_words``: the node's ``stop()`` runs before shutdown."""
    configure_dds_transport()
    reuse_large_allocations()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO if last_words else None)
    stopping = threading.Event()
    if last_words:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stopping.set())
    node = None
    try:
        node = make_node()
        if last_words:
            _spin_with_last_words(node, stopping)
        else:
            rclpy.spin(node)
    except (ConfigError, CheckpointError) as error:
        print(f'[FATAL] {error}', file=sys.stderr, flush=True)
        return EXIT_CONFIG_ERROR
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # Ctrl-C shut the context down under a callback (rclpy may then fail to take a message): a clean stop.
    finally:
        if node is not None:
            close = getattr(node, 'close', None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _spin_with_last_words(node: Node, stopping: threading.Event) -> None:
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    while not stopping.is_set():
        executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    stopping.clear()
    linger_until = time.monotonic() + node.stop()
    while not stopping.is_set() and time.monotonic() < linger_until:
        executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    executor.remove_node(node)
