"""The planner's self-assessment (critic and analyst roles) as ``diagnostic_msgs/DiagnosticArray``.

One status named ``planner/assessment`` whose values are the chosen mode, its
plan score, confidence and per-term predictions, the scene tags
(``tag/<name>``, probabilities) and the novelty score. ``header.stamp`` equals
the trajectory's.
"""

from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from stack_common.boundary import ConversionError
from stack_common.timeutil import ns_to_stamp, stamp_to_ns

STATUS_NAME = 'planner/assessment'
_SCALARS = ('plan_score', 'confidence', 'collision_risk', 'progress', 'comfort', 'novelty')


@dataclass
class Assessment:
    stamp_ns: int
    chosen_mode: int
    plan_score: float
    confidence: float
    collision_risk: float = 0.0
    progress: float = 0.0
    comfort: float = 0.0
    novelty: float = 0.0
    tags: dict[str, float] = field(default_factory=dict)


def assessment_to_msg(assessment: Assessment, low_score: float = 0.0) -> DiagnosticArray:
    values = [KeyValue(key='chosen_mode', value=str(assessment.chosen_mode))]
    values += [KeyValue(key=name, value=f'{getattr(assessment, name):.6g}') for name in _SCALARS]
    values += [KeyValue(key=f'tag/{name}', value=f'{p:.6g}') for name, p in sorted(assessment.tags.items())]
    top_tags = [name for name, p in assessment.tags.items() if p >= 0.5]
    status = DiagnosticStatus(
        level=DiagnosticStatus.WARN if assessment.plan_score < low_score else DiagnosticStatus.OK,
        name=STATUS_NAME, hardware_id='planner',
        message=f'mode {assessment.chosen_mode} score {assessment.plan_score:.2f}'
                + (f' tags {",".join(sorted(top_tags))}' if top_tags else ''),
        values=values)
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = ns_to_stamp(assessment.stamp_ns)
    return msg


class AssessmentDecodeError(ConversionError):
    """An assessment message without the status or values of the contract; ``reason`` is a counter name."""


def msg_to_assessment(msg: DiagnosticArray) -> Assessment:
    status = next((s for s in msg.status if s.name == STATUS_NAME), None)
    if status is None:
        raise AssessmentDecodeError('no_status', f'no {STATUS_NAME!r} status in the message')
    values = {kv.key: kv.value for kv in status.values}
    missing = [name for name in ('chosen_mode',) + _SCALARS if name not in values]
    if missing:
        raise AssessmentDecodeError('missing_value', f'assessment lacks {", ".join(missing)}')
    try:
        return Assessment(
            stamp_ns=stamp_to_ns(msg.header.stamp),
            chosen_mode=int(values['chosen_mode']),
            tags={key[4:]: float(value) for key, value in values.items() if key.startswith('tag/')},
            **{name: float(values[name]) for name in _SCALARS},
        )
    except ValueError as error:
        raise AssessmentDecodeError('bad_value', f'assessment value is not a number: {error}') from None
