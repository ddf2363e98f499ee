"""The closed-loop report's figures and the suite's verdicts: per-scenario summaries, deltas, seesaw, gate."""

import pytest

from avstack.sim.report import Tolerance, build_report, compare, comparison_table
from avstack.commands.sim_suite import gate_exit_code
from sim_bridge.metrics import EpisodeRecord, summarize


def episode(scenario='highway-v0', distance_m=1000.0, stack_m=None, takeovers=0, collisions=0, duration_s=50.0,
            reasons=('critic:validity',)) -> dict:
    record = EpisodeRecord(scenario, 0, 0, 'model', 1_000_000_000)
    record.distance_m, record.duration_s = distance_m, duration_s
    record.stack_distance_m = distance_m if stack_m is None else stack_m
    record.takeovers = [{'stamp_ns': 0, 'x_m': 0.0, 'y_m': 0.0, 'reasons': list(reasons)} for _ in range(takeovers)]
    record.collisions = collisions
    record.end_reason = 'collision' if collisions else 'time_limit'
    return record.to_dict()


def test_summary_counts_km_per_takeover_over_the_distance_the_stack_drove():
    summary = summarize([episode(distance_m=1500.0, stack_m=1000.0, takeovers=2),
                         episode(distance_m=500.0, stack_m=500.0, takeovers=1, collisions=1)])
    assert summary['distance_km'] == 2.0 and summary['stack_distance_km'] == 1.5
    assert summary['takeovers'] == {'count': 3, 'reasons': {'critic:validity': 3}}
    assert summary['km_per_takeover'] == 0.5
    assert summary['collisions'] == 1 and summary['collisions_per_km'] == 0.5
    assert summary['mean_speed_mps'] == 20.0
    assert summary['end_reasons'] == {'collision': 1, 'time_limit': 1}


def test_no_takeover_means_no_km_per_takeover_and_no_distance_no_rate():
    assert summarize([episode(takeovers=0)])['km_per_takeover'] is None
    empty = summarize([episode(distance_m=0.0, duration_s=0.0)])
    assert empty['collisions_per_km'] is None and empty['mean_speed_mps'] is None


def test_report_has_one_summary_per_scenario_and_drops_the_traces():
    report = build_report([episode('highway-v0'), episode('merge-v0', takeovers=1)], {'driver': 'model'})
    assert list(report['scenarios']) == ['highway-v0', 'merge-v0']
    assert report['total']['takeovers']['count'] == 1
    assert not any(key.startswith('trace_') for key in report['episodes'][0])


def scenarios(**per_family) -> dict:
    return {name: summarize([episode(name, **kwargs)]) for name, kwargs in per_family.items()}


def test_a_family_worse_while_another_improved_is_a_seesaw_and_fails_the_gate():
    reference = scenarios(highway={'takeovers': 2}, roundabout={'takeovers': 2})
    current = scenarios(highway={'takeovers': 0}, roundabout={'takeovers': 5})
    comparison = compare(current, reference)
    assert comparison['families']['highway']['verdict'] == 'improved'
    assert comparison['families']['roundabout']['verdict'] == 'regressed'
    assert comparison['families']['roundabout']['deltas']['takeovers_per_km'] == pytest.approx(3.0)
    assert comparison['seesaw'] is True
    assert gate_exit_code(comparison, gate=True) == 1
    assert gate_exit_code(comparison, gate=False) == 0
    assert 'SEESAW' in comparison_table(comparison, 'current', 'baseline')


def test_changes_within_the_tolerance_are_the_same():
    reference = scenarios(highway={'takeovers': 4}, merge={'collisions': 1})
    current = scenarios(highway={'takeovers': 5}, merge={'collisions': 1})
    comparison = compare(current, reference, Tolerance(relative=0.3, per_km=0.5))
    assert [f['verdict'] for f in comparison['families'].values()] == ['same', 'same']
    assert not comparison['seesaw'] and gate_exit_code(comparison, gate=True) == 0


def test_a_regression_alone_fails_the_gate_without_being_a_seesaw():
    comparison = compare(scenarios(highway={'collisions': 3}), scenarios(highway={'collisions': 0}))
    assert comparison['regressed'] == ['highway'] and not comparison['seesaw']
    assert gate_exit_code(comparison, gate=True) == 1


def test_standing_still_is_a_regression_even_without_events():
    comparison = compare(scenarios(highway={'distance_m': 50.0}), scenarios(highway={'distance_m': 1000.0}))
    assert comparison['families']['highway']['regressed'] == ['distance_km']
