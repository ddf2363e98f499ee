"""Benchmarks run by ``avstack bench`` (``make bench``): each module has ``run(options) -> list[Measurement]``."""

from dataclasses import dataclass


@dataclass
class Measurement:
    name: str
    value: float | None
    unit: str
    note: str = ''
