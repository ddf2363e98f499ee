"""Stamps: ``builtin_interfaces/Time`` <-> integer nanoseconds.

The cores work with integer nanoseconds so a stamp survives the whole chain
sensor -> tokens -> trajectory unchanged (float seconds would round it).
"""

from builtin_interfaces.msg import Time

from stack_common.constants import NS_PER_S


def stamp_to_ns(stamp: Time) -> int:
    return stamp.sec * NS_PER_S + stamp.nanosec


def ns_to_stamp(stamp_ns: int) -> Time:
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def ns_to_s(stamp_ns: int) -> float:
    return stamp_ns / NS_PER_S
