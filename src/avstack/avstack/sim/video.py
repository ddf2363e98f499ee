"""A drive a person can watch: the recorded camera of a simulator run with what the stack did drawn on it.

Owns: turning a run's MCAP (``avstack sim`` and ``make demo`` record it) into one MP4 per scenario: the
simulator's top-down camera, the published plan (cyan while the stack drives), the expert's plan when the
run recorded it (``--relabel``, thin white), who drives (a green or orange frame and label), speed and sim
time, and each takeover (a red banner with the critic's reasons for two seconds). Frames play at the
simulator's rate (10 steps per second: real time). The geometry of the overlay is the camera's own
(:class:`sim_bridge.camera.TopDownView`).
Does not own: running the simulation, the report or the plots (avstack.sim.report).
"""

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from avstack.bag.codec import deserialize
from avstack.bag.reader import open_bag
from sim_bridge.camera import TopDownView
from stack_common import topics
from stack_common.constants import NS_PER_S
from stack_common.image import image_msg_to_rgb
from stack_common.takeover import msg_to_takeover
from stack_common.timeutil import stamp_to_ns
from stack_common.trajectory import path_to_trajectory

FPS = 10
BANNER_S = 2.0
MAX_SECONDS_PER_SCENARIO = 180.0   # a long run's video shows its first three minutes per scenario
PLAN_COLOR, EXPERT_COLOR = (0, 220, 255), (255, 255, 255)            # RGB
DRIVER_COLORS = {'stack': (40, 200, 40), 'expert': (255, 150, 0)}


@dataclass
class _Frame:
    stamp_ns: int
    rgb: np.ndarray
    plan: np.ndarray | None = None         # (T, 2) base_link
    expert: np.ndarray | None = None
    status: dict | None = None
    banner: str = ''


def _polyline(image: np.ndarray, xy: np.ndarray, view: TopDownView, color, thickness: int) -> None:
    u, v = view.base_link_to_pixel(np.concatenate([[0.0], xy[:, 0]]), np.concatenate([[0.0], xy[:, 1]]))
    points = np.round(np.stack([u, v], 1)).astype(np.int32)
    cv2.polylines(image, [points], False, color, thickness, cv2.LINE_AA)
    for point in points[1:]:
        cv2.circle(image, tuple(int(c) for c in point), thickness + 1, color, -1, cv2.LINE_AA)


def draw(frame: _Frame, view: TopDownView) -> np.ndarray:
    """The overlay of one frame, RGB."""
    image = frame.rgb.copy()
    status = frame.status or {}
    driver = status.get('driver', 'stack')
    if frame.expert is not None:
        _polyline(image, frame.expert, view, EXPERT_COLOR, 1)
    if frame.plan is not None:
        _polyline(image, frame.plan, view, PLAN_COLOR if driver == 'stack' else (120, 120, 120), 2)
    color = DRIVER_COLORS.get(driver, (200, 200, 200))
    cv2.rectangle(image, (0, 0), (image.shape[1] - 1, image.shape[0] - 1), color, 3)
    text = (f'{status.get("scenario", "")}  t={frame.stamp_ns / NS_PER_S:6.1f} s  '
            f'v={status.get("speed_mps", 0.0):4.1f} m/s  driver: {"stack" if driver == "stack" else "safety driver"}'
            f'  takeovers: {status.get("takeovers", 0)}')
    image[3:26, 3:-3] = (image[3:26, 3:-3] * 0.35).astype(np.uint8)
    cv2.putText(image, text, (8, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    if frame.banner:
        cv2.rectangle(image, (0, image.shape[0] - 26), (image.shape[1], image.shape[0]), (200, 0, 0), -1)
        cv2.putText(image, frame.banner[:90], (8, image.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return image


def write_videos(bag_path: Path, out_dir: Path, camera: dict, camera_topic: str) -> list[Path]:
    """One ``<scenario>.mp4`` per scenario of the run recorded in ``bag_path``; the paths written."""
    view = TopDownView.from_params(camera)
    frames: dict[int, _Frame] = {}
    plans, experts, statuses, takeovers = {}, {}, [], []
    wanted = [camera_topic, topics.TRAJECTORY, topics.SIM_EXPERT_PLAN, topics.SIM_STATUS, topics.TAKEOVER_REQUEST]
    with open_bag(bag_path) as bag:
        for message in bag.messages([t for t in wanted if t in bag.topics]):
            msg = deserialize(message.data, message.type_name)
            if message.topic == camera_topic:
                frames[stamp_to_ns(msg.header.stamp)] = _Frame(stamp_to_ns(msg.header.stamp), image_msg_to_rgb(msg))
            elif message.topic in (topics.TRAJECTORY, topics.SIM_EXPERT_PLAN):
                plan = path_to_trajectory(msg)
                (plans if message.topic == topics.TRAJECTORY else experts)[plan.stamp_ns] = plan.xy
            elif message.topic == topics.SIM_STATUS:
                document = json.loads(msg.data)
                if document.get('kind') == 'step':
                    statuses.append(document)
            else:
                _, reasons = msg_to_takeover(msg)
                if reasons:
                    takeovers.append((stamp_to_ns(msg.header.stamp), ', '.join(r.check for r in reasons)))
    ordered = [frames[k] for k in sorted(frames)]
    status_stamps = np.array([s['stamp_ns'] for s in statuses], np.int64)
    for frame in ordered:
        frame.plan, frame.expert = plans.get(frame.stamp_ns), experts.get(frame.stamp_ns)
        if len(status_stamps):
            # the step the bridge reported after this frame's stamp: who drove it
            i = min(int(np.searchsorted(status_stamps, frame.stamp_ns, side='right')), len(statuses) - 1)
            frame.status = statuses[i]
        recent = [reasons for stamp, reasons in takeovers if 0 <= frame.stamp_ns - stamp <= BANNER_S * NS_PER_S]
        if recent:
            frame.banner = f'TAKEOVER: {recent[-1]}'
    written = []
    for scenario in dict.fromkeys((f.status or {}).get('scenario') for f in ordered):
        chosen = [f for f in ordered if (f.status or {}).get('scenario') == scenario]
        chosen = chosen[:int(MAX_SECONDS_PER_SCENARIO * FPS)]
        if not chosen:
            continue
        path = out_dir / f'{scenario or "run"}.mp4'
        height, width = chosen[0].rgb.shape[:2]
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), FPS, (width, height))
        for frame in chosen:
            writer.write(cv2.cvtColor(draw(frame, view), cv2.COLOR_RGB2BGR))
        writer.release()
        written.append(path)
    return written
