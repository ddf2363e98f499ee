"""Node health on ``/diagnostics``: counters and timings as ``DiagnosticStatus`` values."""

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from stack_common.timeutil import ns_to_stamp

OK, WARN, ERROR, STALE = (DiagnosticStatus.OK, DiagnosticStatus.WARN,
                          DiagnosticStatus.ERROR, DiagnosticStatus.STALE)


def make_status(name: str, level: int, message: str, values: dict, hardware_id: str = '') -> DiagnosticStatus:
    return DiagnosticStatus(
        level=level, name=name, message=message, hardware_id=hardware_id,
        values=[KeyValue(key=str(k), value=f'{v:.6g}' if isinstance(v, float) else str(v))
                for k, v in values.items()])


def diagnostic_array(stamp_ns: int, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    msg = DiagnosticArray(status=statuses)
    msg.header.stamp = ns_to_stamp(stamp_ns)
    return msg
