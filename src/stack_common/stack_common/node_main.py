"""The ``main()`` every node of the stack shares: transport, init, spin, clean exit.

A configuration or checkpoint error at start-up ends the process with exit
code 2 and one line naming the problem, not a traceback.
"""

import sys
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from stack_common.checkpoint import CheckpointError
from stack_common.config import ConfigError
from stack_common.memory import reuse_large_allocations
from stack_common.transport import configure_dds_transport

EXIT_CONFIG_ERROR = 2


def run_node(make_node: Callable[[], Node], args=None) -> int:
    configure_dds_transport()
    reuse_large_allocations()
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
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
