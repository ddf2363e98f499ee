"""Takeover statistics: distance and time from odometry, takeovers per reason, km per takeover."""

import math

import numpy as np
import pytest

from critic_monitor.statistics import LatencyWindow, TakeoverStatistics
from stack_common.odometry import EgoState

from critic_drive import S, T0, Drive, with_nan

ODOMETRY_HZ = 20


def figure_eight(duration_s: float, rng: np.random.Generator, noise_m: float = 0.02):
    """Odometry of a lemniscate drive with varying speed and 2 cm position noise; returns (states, true length)."""
    t = np.arange(0.0, duration_s, 1.0 / ODOMETRY_HZ)
    # Speed varies between 0.5 and 1.5 times its mean (about 8 m/s) along the track.
    phase = 2 * np.pi * t / 60.0 + 0.15 * np.sin(2 * np.pi * t / 17.0)
    x, y = 80.0 * np.sin(phase), 40.0 * np.sin(2 * phase)
    fine = np.linspace(0.0, duration_s, 400_000)
    fine_phase = 2 * np.pi * fine / 60.0 + 0.15 * np.sin(2 * np.pi * fine / 17.0)
    true_length = float(np.hypot(np.diff(80.0 * np.sin(fine_phase)), np.diff(40.0 * np.sin(2 * fine_phase))).sum())
    x = x + rng.normal(0.0, noise_m, len(t))
    y = y + rng.normal(0.0, noise_m, len(t))
    yaw = np.arctan2(np.gradient(y), np.gradient(x))
    states = [EgoState(T0 + int(ti * S), float(xi), float(yi), float(h), 10.0)
              for ti, xi, yi, h in zip(t, x, y, yaw, strict=True)]
    return states, true_length


def test_distance_of_a_synthetic_odometry_track_within_one_percent():
    states, true_length = figure_eight(180.0, np.random.default_rng(7))
    statistics = TakeoverStatistics()
    for state in states:
        statistics.on_odometry(state)
    assert true_length > 1000.0
    assert statistics.distance_m == pytest.approx(true_length, rel=0.01)
    assert statistics.driven_s == pytest.approx(180.0 - 1.0 / ODOMETRY_HZ)


def test_gaps_jumps_and_time_going_back_are_not_driven():
    statistics = TakeoverStatistics()
    for i in range(11):                        # 10 m in 1 s
        statistics.on_odometry(EgoState(T0 + i * S // 10, float(i), 0.0, 0.0, 10.0))
    statistics.on_odometry(EgoState(T0 + 5 * S, 50.0, 0.0, 0.0, 10.0))          # 4 s gap
    statistics.on_odometry(EgoState(T0 + 5 * S + S // 10, 5000.0, 0.0, 0.0, 10.0))  # teleport
    statistics.on_odometry(EgoState(T0, 0.0, 0.0, 0.0, 10.0))                    # bag loop
    statistics.on_odometry(EgoState(T0 + S // 10, 1.0, 0.0, 0.0, 10.0))
    assert statistics.distance_m == pytest.approx(11.0)
    assert statistics.dropped_steps == 3


def test_takeovers_per_reason_and_km_per_takeover():
    statistics = TakeoverStatistics()
    assert statistics.km_per_takeover is None
    for i in range(1001):   # 1 km at 10 m/s
        statistics.on_odometry(EgoState(T0 + i * S // 10, float(i), 0.0, 0.0, 10.0))
        if i in (300, 800):
            statistics.record_takeover(T0 + i * S // 10, ['collision'] if i == 300 else ['collision', 'staleness'])
    summary = statistics.summary()
    assert summary['takeovers'] == 2 and summary['km_per_takeover'] == pytest.approx(0.5)
    assert summary['takeovers_per_reason'] == {'collision': 2, 'staleness': 1}
    assert [i['distance_m'] for i in summary['between_takeovers']] == [pytest.approx(300.0), pytest.approx(500.0)]
    assert summary['since_last_takeover_m'] == pytest.approx(200.0)
    assert summary['since_last_takeover_s'] == pytest.approx(20.0)


def test_the_core_counts_its_takeovers_and_the_odometry_it_saw():
    drive = Drive(10.0, config={'state_machine': {'auto_clear_after_s': 0.5}})
    drive.run(2.0, plans_hz=10)
    drive.plan(with_nan(drive.now))
    drive.run(2.0, plans_hz=10)          # auto-clears after 0.5 s of good plans
    drive.plan(with_nan(drive.now))
    summary = drive.core.statistics.summary()
    assert summary['takeovers'] == 2 and summary['takeovers_per_reason'] == {'validity': 2}
    assert summary['driven_s'] == pytest.approx(4.0, abs=0.1)
    assert summary['distance_m'] == pytest.approx(10.0 * summary['driven_s'])
    assert summary['between_takeovers'][1]['time_s'] == pytest.approx(2.0, abs=0.1)


def test_latency_window_percentiles():
    window = LatencyWindow(size=100)
    assert window.summary() == {'count': 0}
    for ms in range(1, 201):
        window.add(float(ms))
    summary = window.summary()
    assert summary['count'] == 200 and summary['max_ms'] == 200.0
    assert summary['p50_ms'] == pytest.approx(150.5) and math.isclose(summary['p99_ms'], 199.01)
