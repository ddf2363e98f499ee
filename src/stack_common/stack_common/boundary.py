"""A node's boundary: one error type for messages that break a contract, one guard for every callback.

Every conversion in ``stack_common`` (clouds, images, tokens, assessments,
takeover requests) raises a subclass of :class:`ConversionError` whose
``reason`` names a counter. Every node wraps its subscription callbacks with
:meth:`BoundaryGuard.guard`: a conversion error is counted as
``dropped/<input>/<reason>`` and warned (throttled per input and reason), any
other exception is counted as ``internal_error`` and logged with its traceback,
and the node keeps running. The counts go on ``/diagnostics``
(:meth:`BoundaryGuard.values`).
"""

import time
import traceback
from collections import Counter
from typing import Callable

from stack_common.constants import WARN_THROTTLE_S

INTERNAL_ERROR = 'internal_error'


class ConversionError(ValueError):
    """A message that does not follow its contract; ``reason`` is a counter name."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class BoundaryGuard:
    """Counts, warns about and survives what a node's callbacks raise.

    ``counts`` is the counter the drops land in (``<input>/<reason>`` keys); a
    node whose core already keeps such a counter passes it in.
    """

    def __init__(self, node, counts: Counter | None = None, throttle_s: float = WARN_THROTTLE_S,
                 clock: Callable[[], float] = time.monotonic):
        self.node = node
        self.counts: Counter[str] = Counter() if counts is None else counts
        self.throttle_s = throttle_s
        self.clock = clock
        self._warned: dict[str, tuple[float, int]] = {}   # key -> (when last logged, count then)

    def guard(self, source: str, callback: Callable) -> Callable:
        """``callback`` with every exception counted under ``source`` instead of ending the node."""
        def guarded(*args):
            try:
                return callback(*args)
            except ConversionError as error:
                self.drop(source, error.reason, str(error))
            except Exception as error:  # noqa: BLE001 - one bad message must never stop a node
                if not self.node.context.ok():
                    raise   # shutting down: run_node ends the process cleanly
                self.drop(source, INTERNAL_ERROR, f'{type(error).__name__}: {error}\n{traceback.format_exc()}',
                          error=True)
        return guarded

    def drop(self, source: str, reason: str, detail: str, error: bool = False) -> None:
        """Count a dropped message and log it, at most once per ``throttle_s`` per source and reason."""
        key = f'{source}/{reason}'
        self.counts[key] += 1
        now = self.clock()
        last = self._warned.get(key)
        if last is not None and now - last[0] < self.throttle_s:
            return
        skipped = self.counts[key] - 1 - (last[1] if last is not None else 0)
        self._warned[key] = (now, self.counts[key])
        suffix = f' ({skipped} more since the last warning)' if skipped > 0 else ''
        text = f'{source}: dropped a message ({reason}): {detail}{suffix}'
        # Two call sites: rclpy's logger refuses one call site with two severities.
        if error:
            self.node.get_logger().error(text)
        else:
            self.node.get_logger().warning(text)

    def values(self) -> dict[str, int]:
        """The counts as ``/diagnostics`` values: ``dropped/<input>/<reason>``."""
        return {f'dropped/{key}': count for key, count in sorted(self.counts.items())}
