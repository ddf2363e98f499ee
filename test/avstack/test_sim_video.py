"""The drive video: every camera frame of a run, with the published plan, the driver and each takeover drawn."""

import json

import cv2
import numpy as np
from std_msgs.msg import String

from avstack.bag.codec import serialize
from avstack.bag.writer import BagWriter
from avstack.sim.video import write_videos
from stack_common import topics
from stack_common.image import rgb_to_image_msg
from stack_common.takeover import TakeoverReason, takeover_to_msg
from stack_common.trajectory import Trajectory, trajectory_to_path

CAMERA = {'width_px': 320, 'height_px': 160, 'pixels_per_m': 4.0, 'ego_position': [0.25, 0.5],
          'topic': '/sensors/camera/front/image_raw'}
PERIOD_NS = 100_000_000
GREY = 100


def recorded_run(path, frames: int = 50, takeover_at: int = 20):
    """A run's bag: grey camera frames, a straight plan 10 m ahead each, the bridge's step status (the expert
    drives from the takeover on) and one takeover request."""
    with BagWriter(path, 'mcap') as bag:
        bag.add_topic(CAMERA['topic'], 'sensor_msgs/msg/Image')
        bag.add_topic(topics.TRAJECTORY, 'nav_msgs/msg/Path')
        bag.add_topic(topics.SIM_STATUS, 'std_msgs/msg/String')
        bag.add_topic(topics.TAKEOVER_REQUEST, 'diagnostic_msgs/msg/DiagnosticArray')
        for k in range(frames):
            stamp = (k + 1) * PERIOD_NS
            rgb = np.full((CAMERA['height_px'], CAMERA['width_px'], 3), GREY, np.uint8)
            bag.write(CAMERA['topic'], stamp, serialize(rgb_to_image_msg(rgb, stamp, 'cam'), 'sensor_msgs/msg/Image'))
            plan = Trajectory(stamp, 'base_link', np.array([0.5, 1.0]), np.array([[5.0, 0.0], [10.0, 0.0]]),
                              np.zeros(2))
            bag.write(topics.TRAJECTORY, stamp + 1, serialize(trajectory_to_path(plan), 'nav_msgs/msg/Path'))
            status = {'kind': 'step', 'stamp_ns': stamp + PERIOD_NS, 'scenario': 'highway-v0', 'speed_mps': 20.0,
                      'driver': 'expert' if k >= takeover_at else 'stack', 'takeovers': int(k >= takeover_at)}
            bag.write(topics.SIM_STATUS, stamp + 2, serialize(String(data=json.dumps(status)), 'std_msgs/msg/String'))
            if k == takeover_at:
                request = takeover_to_msg(stamp, 'TAKEOVER_REQUESTED', [TakeoverReason('collision', 'box ahead')])
                bag.write(topics.TAKEOVER_REQUEST, stamp + 3,
                          serialize(request, 'diagnostic_msgs/msg/DiagnosticArray'))


def read_frames(path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def test_every_frame_shows_the_plan_the_driver_and_the_takeover(tmp_path):
    recorded_run(tmp_path / 'bag')
    [video] = write_videos(tmp_path / 'bag', tmp_path, CAMERA, CAMERA['topic'])
    assert video == tmp_path / 'highway-v0.mp4'
    frames = read_frames(video)
    assert len(frames) == 50
    # the ego is at (80, 80) px and 4 px/m: the plan's waypoint 10 m ahead at (120, 80), cyan while the stack drives
    waypoint = frames[5][80, 120].astype(int)
    assert waypoint[2] > 180 and waypoint[1] > 150 and waypoint[0] < 90, waypoint
    assert abs(int(frames[5][40, 200, 0]) - GREY) < 20, 'the road beside the plan stays as recorded'
    # the frame border: green while the stack drives, orange once the safety driver has the wheel
    stack_border, expert_border = frames[5][80, 1].astype(int), frames[30][80, 1].astype(int)
    assert stack_border[1] > stack_border[0] + 60 and expert_border[0] > expert_border[2] + 100
    # a red banner at the bottom for two seconds after the takeover request, not before
    banner = [f[-5, 250].astype(int) for f in frames]
    assert banner[15][0] < 150 and banner[25][0] > 150 > banner[25][2] and banner[45][0] < 150
