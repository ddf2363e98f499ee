"""The takeover state machine: WAITING -> NOMINAL <-> WARNING -> TAKEOVER_REQUESTED.

* WAITING, latching nothing, until the owner starts monitoring (the critic
  core does once every input has been heard and a plan is in, or the
  start-up time is over).
* A failed critical check requests a takeover at once, from any update (a
  plan, a cloud or the timer), so the reaction does not wait for the timer.
* Failed warnings move to WARNING; when they persist, failing in
  ``escalate_count`` timer cycles within ``escalate_window_s``, they request
  a takeover. Counting timer cycles (not messages) makes the escalation time
  independent of how many inputs arrive.
* WARNING returns to NOMINAL only after ``nominal_hold_s`` without failures,
  so a flickering input does not flicker the output.
* TAKEOVER_REQUESTED is latched: it clears on ``reset()`` once every check
  passes, or by itself after ``auto_clear_after_s`` of passing checks when
  that is > 0. While latched, a check that starts failing anew (not failing
  for ``nominal_hold_s`` before) is added to the reasons and published.
"""

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from critic_monitor.checks import CRITICAL, CheckResult
from stack_common.constants import NS_PER_S


class TakeoverState(str, Enum):
    WAITING = 'WAITING'
    NOMINAL = 'NOMINAL'
    WARNING = 'WARNING'
    TAKEOVER_REQUESTED = 'TAKEOVER_REQUESTED'


@dataclass
class Transition:
    stamp_ns: int
    previous: TakeoverState
    state: TakeoverState
    reasons: list[CheckResult] = field(default_factory=list)

    @property
    def requests_takeover(self) -> bool:
        """A new request (not an update of a latched one)."""
        return self.state == TakeoverState.TAKEOVER_REQUESTED != self.previous

    def describe(self) -> str:
        reasons = '; '.join(f'{r.check}: {r.describe()}' for r in self.reasons)
        return f'{self.previous.value} -> {self.state.value}' + (f' ({reasons})' if reasons else '')

    def describe_change(self, before: list[CheckResult]) -> str:
        """What changed since the reasons ``before`` (the last logged): new reasons, cleared ones.

        A log line per transition stays short however long a takeover stays latched; a reason that
        fails anew while latched shows as ``again``.
        """
        known, now = {r.check for r in before}, {r.check for r in self.reasons}
        new = [r for r in self.reasons if r.check not in known]
        cleared = [r.check for r in before if r.check not in now]
        parts = [f'new: {r.check}: {r.describe()}' for r in new] + (
            [f'cleared: {", ".join(cleared)}'] if cleared else [])
        if not parts and self.reasons:
            parts = [f'again: {r.check}: {r.describe()}' for r in self.reasons if r.check in known]
        return f'{self.previous.value} -> {self.state.value}' + (f' ({"; ".join(parts)})' if parts else '')


class TakeoverStateMachine:
    def __init__(self, cfg: dict, start_ns: int):
        self.escalate_count = cfg['escalate_count']
        self.escalate_window_ns = int(cfg['escalate_window_s'] * NS_PER_S)
        self.nominal_hold_ns = int(cfg['nominal_hold_s'] * NS_PER_S)
        self.auto_clear_ns = int(cfg['auto_clear_after_s'] * NS_PER_S)
        self.restart(start_ns)

    def restart(self, now_ns: int) -> None:
        """Start over as at launch (also after time jumped back: bag loop, simulator reset)."""
        self.state = TakeoverState.WAITING
        self.reasons: list[CheckResult] = []
        self.monitoring = False
        self._warnings: deque[int] = deque()
        self._last_failure_ns = now_ns
        self._failed_at: dict[str, int] = {}   # check -> time it was last seen failing

    @property
    def takeover_active(self) -> bool:
        return self.state == TakeoverState.TAKEOVER_REQUESTED

    def start_monitoring(self) -> None:
        """Start-up is over: the next update leaves WAITING and judges the results."""
        self.monitoring = True

    def update(self, now_ns: int, results: list[CheckResult], tick: bool = False) -> list[Transition]:
        """Feed the latest result of every check; ``tick``: this is a timer cycle. Returns the transitions."""
        if self.state == TakeoverState.WAITING:
            if not self.monitoring:
                return []
            return [self._go(now_ns, TakeoverState.NOMINAL, [])] + self.update(now_ns, results, tick)
        failures = [r for r in results if not r.ok]
        # Critical reasons first: they are why a request was made.
        failures.sort(key=lambda r: r.severity != CRITICAL)
        anew = [f for f in failures if now_ns - self._failed_at.get(f.check, -2**62) > self.nominal_hold_ns
                or f.check not in {r.check for r in self.reasons}]
        for failure in failures:
            self._failed_at[failure.check] = now_ns
        if failures:
            self._last_failure_ns = now_ns
        if self.state == TakeoverState.TAKEOVER_REQUESTED:
            return self._update_latched(now_ns, failures, anew)
        if any(f.severity == CRITICAL for f in failures):
            return [self._go(now_ns, TakeoverState.TAKEOVER_REQUESTED, failures)]
        if failures:
            if tick:
                self._warnings.append(now_ns)
            while self._warnings and self._warnings[0] <= now_ns - self.escalate_window_ns:
                self._warnings.popleft()
            if len(self._warnings) >= self.escalate_count:
                return [self._go(now_ns, TakeoverState.TAKEOVER_REQUESTED, failures)]
            if self.state == TakeoverState.NOMINAL:
                return [self._go(now_ns, TakeoverState.WARNING, failures)]
            return []
        if self.state == TakeoverState.WARNING and now_ns - self._last_failure_ns >= self.nominal_hold_ns:
            self._warnings.clear()
            return [self._go(now_ns, TakeoverState.NOMINAL, [])]
        return []

    def _update_latched(self, now_ns: int, failures: list[CheckResult], anew: list[CheckResult]) -> list[Transition]:
        if not failures and 0 < self.auto_clear_ns <= now_ns - self._last_failure_ns:
            self._warnings.clear()
            return [self._go(now_ns, TakeoverState.NOMINAL, [])]
        if anew:  # a further reason while latched: publish it too, with its current value
            return self.request(now_ns, anew)
        return []

    def reset(self, now_ns: int, results: list[CheckResult]) -> tuple[bool, str, list[Transition]]:
        """Operator reset of a latched request; refused while a check still fails."""
        failures = [r for r in results if not r.ok]
        if self.state != TakeoverState.TAKEOVER_REQUESTED:
            return True, f'nothing to reset (state {self.state.value})', []
        if failures:
            return False, 'still failing: ' + ', '.join(f.check for f in failures), []
        self._warnings.clear()
        return True, 'takeover request cleared', [self._go(now_ns, TakeoverState.NOMINAL, [])]

    def request(self, now_ns: int, reasons: list[CheckResult]) -> list[Transition]:
        """Request a takeover for ``reasons`` from any state (added to the reasons of a latched request).

        The reasons count as failing now, as a check's failure does: auto-clear waits its period from here, and
        the same check reported failing next is not a new reason.
        """
        for reason in reasons:
            self._failed_at[reason.check] = now_ns
        self._last_failure_ns = now_ns
        if self.state != TakeoverState.TAKEOVER_REQUESTED:
            return [self._go(now_ns, TakeoverState.TAKEOVER_REQUESTED, reasons)]
        fresh = {r.check for r in reasons}
        self.reasons = [r for r in self.reasons if r.check not in fresh] + list(reasons)
        return [Transition(now_ns, self.state, self.state, list(self.reasons))]

    def _go(self, now_ns: int, state: TakeoverState, reasons: list[CheckResult]) -> Transition:
        transition = Transition(now_ns, self.state, state, list(reasons))
        self.state, self.reasons = state, list(reasons)
        return transition
