"""Takeover requests: the critic's verdict as ``diagnostic_msgs/DiagnosticArray``.

While a takeover is requested, the message holds one status per active reason
(level ERROR, name ``critic/<check>``) whose values give the measured value
against its threshold. An empty status list means the request was cleared.
"""

from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from stack_common.boundary import ConversionError
from stack_common.timeutil import ns_to_stamp, stamp_to_ns

STATUS_PREFIX = 'critic/'


@dataclass(frozen=True)
class TakeoverReason:
    check: str
    message: str
    value: float | None = None
    threshold: float | None = None


def takeover_to_msg(stamp_ns: int, state: str, reasons: list[TakeoverReason]) -> DiagnosticArray:
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
    return msg


class TakeoverDecodeError(ConversionError):
    """A takeover request whose values are not numbers; ``reason`` is a counter name."""


def msg_to_takeover(msg: DiagnosticArray) -> tuple[int, list[TakeoverReason]]:
    reasons = []
    for status in msg.status:
        values = {kv.key: kv.value for kv in status.values}
        try:
            reasons.append(TakeoverReason(
                check=status.name.removeprefix(STATUS_PREFIX), message=status.message,
                value=float(values['value']) if 'value' in values else None,
                threshold=float(values['threshold']) if 'threshold' in values else None))
        except ValueError as error:
            raise TakeoverDecodeError('bad_value', f'{status.name}: value is not a number: {error}') from None
    return stamp_to_ns(msg.header.stamp), reasons
