"""Takeover requests: the critic's verdict as ``diagnostic_msgs/DiagnosticArray``.

While a takeover is requested, the message holds one status per active reason
(level ERROR, name ``critic/<check>``) whose values give the measured value
against its threshold. No ERROR status means no takeover is requested. While
the critic is still starting up, one STALE status ``critic/startup`` names
what it waits for: the topics not heard yet (key ``waiting_for``) and the
checks not passing yet (key ``failing``), each comma-separated.
"""

from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from stack_common.boundary import ConversionError
from stack_common.timeutil import ns_to_stamp, stamp_to_ns

STATUS_PREFIX = 'critic/'
STARTUP_STATUS = STATUS_PREFIX + 'startup'


@dataclass(frozen=True)
class TakeoverReason:
    check: str
    message: str
    value: float | None = None
    threshold: float | None = None


def takeover_to_msg(stamp_ns: int, state: str, reasons: list[TakeoverReason], waiting_for: list[str] = (),
                    failing: list[str] = ()) -> DiagnosticArray:
    msg = DiagnosticArray()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    for reason in reasons:
        values = [KeyValue(key='state', value=state)]
        if reason.value is not None:
            values.append(KeyValue(key='value', value=f'{reason.value:.6g}'))
        if reason.threshold is not None:
            values.append(KeyValue(key='threshold', value=f'{reason.threshold:.6g}'))
        msg.status.append(DiagnosticStatus(level=DiagnosticStatus.ERROR, name=STATUS_PREFIX + reason.check,
                                           hardware_id='critic_monitor', message=reason.message,
                                           values=values))
    if waiting_for or failing:
        parts = ([f'the first message on {", ".join(waiting_for)}'] if waiting_for else []) + (
            [f'{", ".join(failing)} to pass'] if failing else [])
        msg.status.append(DiagnosticStatus(
            level=DiagnosticStatus.STALE, name=STARTUP_STATUS, hardware_id='critic_monitor',
            message='starting up: waiting for ' + '; for '.join(parts),
            values=[KeyValue(key='state', value=state), KeyValue(key='waiting_for', value=','.join(waiting_for)),
                    KeyValue(key='failing', value=','.join(failing))]))
    return msg


class TakeoverDecodeError(ConversionError):
    """A takeover request whose values are not numbers; ``reason`` is a counter name."""


def msg_to_takeover(msg: DiagnosticArray) -> tuple[int, list[TakeoverReason]]:
    """The stamp and the active reasons (ERROR statuses); no reasons: no takeover requested."""
    reasons = []
    for status in msg.status:
        if status.level != DiagnosticStatus.ERROR:
            continue
        values = {kv.key: kv.value for kv in status.values}
        try:
            reasons.append(TakeoverReason(
                check=status.name.removeprefix(STATUS_PREFIX), message=status.message,
                value=float(values['value']) if 'value' in values else None,
                threshold=float(values['threshold']) if 'threshold' in values else None))
        except ValueError as error:
            raise TakeoverDecodeError('bad_value', f'{status.name}: value is not a number: {error}') from None
    return stamp_to_ns(msg.header.stamp), reasons


def msg_waiting_for(msg: DiagnosticArray) -> tuple[list[str], list[str]]:
    """What a starting critic still waits for: topics not heard yet, checks not passing yet (both empty once
    start-up is over)."""
    for status in msg.status:
        if status.name == STARTUP_STATUS:
            values = {kv.key: kv.value for kv in status.values}
            return tuple([v for v in values.get(key, '').split(',') if v] for key in ('waiting_for', 'failing'))
    return [], []
