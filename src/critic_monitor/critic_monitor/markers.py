"""``visualization_msgs/MarkerArray`` of the collision check: the swept footprint and the first contact.

Drawn in the plan's frame at the plan's stamp: one LINE_LIST of footprint
outlines (green when clear, red up to the first contact) and a sphere at the
first offending point, deleted when there is none.
"""

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from critic_monitor.collision import CollisionResult, Footprint, Sweep
from stack_common.timeutil import ns_to_stamp

NAMESPACE_FOOTPRINT = 'critic/footprint'
NAMESPACE_CONTACT = 'critic/first_contact'
# Outlines drawn: enough to see the swept area, few enough for RViz at 10 Hz.
MAX_OUTLINES = 40
CLEAR, HIT = ColorRGBA(r=0.1, g=0.8, b=0.2, a=0.8), ColorRGBA(r=0.95, g=0.1, b=0.1, a=0.9)
LIFETIME = Duration(sec=1)


def collision_markers(stamp_ns: int, frame_id: str, sweep: Sweep, footprint: Footprint,
                      contact: CollisionResult | None) -> MarkerArray:
    hit = contact is not None and contact.contact
    last = contact.pose_index if hit else len(sweep) - 1
    outline = Marker(ns=NAMESPACE_FOOTPRINT, id=0, type=Marker.LINE_LIST, action=Marker.ADD, lifetime=LIFETIME)
    outline.header.stamp, outline.header.frame_id = ns_to_stamp(stamp_ns), frame_id
    outline.pose.orientation.w = 1.0
    outline.scale.x = 0.05
    outline.color = HIT if hit else CLEAR
    corners = sweep.footprints(footprint)[:last + 1]
    chosen = np.unique(np.linspace(0, len(corners) - 1, min(len(corners), MAX_OUTLINES)).round().astype(int))
    for box in corners[chosen]:
        for a, b in zip(box, np.roll(box, -1, axis=0), strict=True):
            outline.points += [Point(x=float(a[0]), y=float(a[1])), Point(x=float(b[0]), y=float(b[1]))]
    point = Marker(ns=NAMESPACE_CONTACT, id=0, type=Marker.SPHERE, lifetime=LIFETIME)
    point.header = outline.header
    if hit:
        point.action = Marker.ADD
        point.pose.position.x, point.pose.position.y = float(contact.point_xy[0]), float(contact.point_xy[1])
        point.pose.position.z = 0.5
        point.pose.orientation.w = 1.0
        point.scale.x = point.scale.y = point.scale.z = 0.6
        point.color = HIT
    else:
        point.action = Marker.DELETE
    return MarkerArray(markers=[outline, point])
