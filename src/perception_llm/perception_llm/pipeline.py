"""The perception core: decoded sensor data in, fused token sets out.

No ROS here: the node, offline evaluation and training feed it the same way.
Cameras arrive as RGB arrays of any size, lidars as points in their own
frame, odometry as :class:`EgoState`. The core prepares each message on
arrival (resize; points to ``base_link``, self-returns removed, cropped),
synchronises the sensors, and turns a synced set into

- :class:`FrameInputs`: the numpy inputs of the encoders (what training
  caches), by :meth:`PerceptionCore.preprocess`, then
- a :class:`~stack_common.tokens.TokenSet` of the real tokens, by
  :meth:`PerceptionCore.encode`, with the missing sensors reported.

Time going back (a bag loop, a simulator reset) clears queues and history.
Bad timing never raises out of the ``add_*``/``poll`` calls for configured
sensors; what is dropped is counted (:meth:`PerceptionCore.counters`).
"""

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from perception_llm.calibration import CameraModel, select_points, transform_points
from perception_llm.camera_encoder import ground_anchors, patch_anchors, prepare_image
from perception_llm.ego import EGO_FEATURES, EgoHistory
from perception_llm.fusion import EncoderConfig, SensorEncoders
from perception_llm.lidar_encoder import BEV_CHANNELS
from perception_llm.sensors import camera_specs, lidar_specs
from perception_llm.sync import ApproximateTimeSync, SyncedSet
from stack_common.camera_info import Intrinsics
from stack_common.config import ConfigError
from stack_common.constants import NS_PER_S
from stack_common.odometry import EgoState
from stack_common.tokens import TokenSet

ODOMETRY = 'odometry'
TIME_JUMP_NS = NS_PER_S  # stamps this far behind the newest one mean time was reset
IDENTITY = np.eye(4)


@dataclass
class FusedFrame:
    tokens: TokenSet
    missing: list[str] = field(default_factory=list)
    tokenize_ms: float = 0.0                                    # all stages of this frame together
    stages_ms: dict[str, float] = field(default_factory=dict)
    no_intrinsics: list[str] = field(default_factory=list)     # cameras in the set whose tokens have no position


class _StageClock:
    """Wall time per named stage, for the per-stage numbers of diagnostics and the benchmark."""

    def __init__(self):
        self.stages_ms: dict[str, float] = {}
        self._last = time.perf_counter()

    def add(self, stage: str, ms: float) -> None:
        self.stages_ms[stage] = ms

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages_ms[stage] = (now - self._last) * 1e3
        self._last = now


@dataclass
class CameraFrame:
    """A camera message prepared on arrival, waiting for its set."""

    image: np.ndarray                # (3, H, W) uint8 at the encoder's input size
    image_size: tuple[int, int]      # (width, height) as received: the intrinsics' pixels
    prepare_ms: float


@dataclass
class LidarSweep:
    """A lidar message prepared on arrival: in ``base_link``, inside the BEV box, without self-returns."""

    points_base: np.ndarray          # (N, 3) float32
    intensity: np.ndarray | None     # (N,) float32, 0..1
    prepare_ms: float
    radial_velocity: np.ndarray | None = None   # (N,) float32 m/s, away from the lidar positive


@dataclass
class FrameInputs:
    """The encoders' inputs for one synced set: numpy only, cacheable."""

    stamp_ns: int
    images: np.ndarray               # (C, 3, H, W) uint8, zeros for missing cameras
    camera_present: np.ndarray       # (C,) bool
    camera_anchors: np.ndarray       # (C, P, 3) float32 base_link, NaN without a position
    bev: np.ndarray                  # (BEV_CHANNELS, rows, cols) float32, all lidars together
    lidar_present: bool
    ego: np.ndarray                  # (EGO_FEATURES,) float32
    ego_present: bool
    missing: list[str]
    stages_ms: dict[str, float] = field(default_factory=dict)   # time per preprocessing stage
    no_intrinsics: list[str] = field(default_factory=list)     # cameras present without intrinsics (yet)

    def batch(self) -> dict[str, torch.Tensor]:
        """Keyword arguments of :meth:`SensorEncoders.fuse` for this one frame."""
        return {'images': torch.from_numpy(self.images)[None],
                'camera_present': torch.from_numpy(self.camera_present)[None],
                'bev': torch.from_numpy(self.bev)[None],
                'lidar_present': torch.tensor([self.lidar_present]),
                'ego': torch.from_numpy(self.ego)[None],
                'ego_present': torch.tensor([self.ego_present]),
                'camera_anchors': torch.from_numpy(self.camera_anchors)[None]}


class PerceptionCore:
    def __init__(self, config: dict, encoders: SensorEncoders | None = None,
                 warn: Callable[[str], None] | None = None):
        """``warn`` gets the text of each flagged input (the node logs it, throttled); it is counted either way."""
        self.config = config
        self.warn = warn or (lambda text: None)
        self.encoder_config = EncoderConfig.from_node_config(config)
        self.encoders = (encoders or SensorEncoders.seeded(self.encoder_config)).eval()
        self.camera_specs = camera_specs(config)
        self.lidar_specs = lidar_specs(config)
        if len(self.camera_specs) > self.encoder_config.max_cameras:
            raise ConfigError(f'perception_node: {len(self.camera_specs)} cameras configured, the encoders take '
                              f'at most {self.encoder_config.max_cameras}')
        self.cameras = [spec.name for spec in self.camera_specs]
        self.lidars = [spec.name for spec in self.lidar_specs]
        self._camera = {spec.name: spec for spec in self.camera_specs}
        self._lidar = {spec.name: spec for spec in self.lidar_specs}
        # The camera models in use: from the config's intrinsics, replaced by each camera_info that differs.
        self.camera_models: dict[str, CameraModel | None] = {spec.name: spec.model for spec in self.camera_specs}
        self._intrinsics: dict[str, Intrinsics] = {}
        self.bev_grid = self.encoder_config.bev_grid
        self.vehicle_box_m = tuple(config['vehicle_box_m']) if config['vehicle_box_m'] else None
        sync = config['sync']
        self.sync = ApproximateTimeSync(
            [spec.key for spec in self.camera_specs] + [spec.key for spec in self.lidar_specs],
            slop_ns=round(sync['slop_s'] * NS_PER_S), max_wait_ns=round(sync['max_wait_s'] * NS_PER_S),
            queue_size=sync['queue_size'], time_jump_ns=TIME_JUMP_NS)
        self.ego = EgoHistory(max_age_ns=round(config['odometry_max_age_s'] * NS_PER_S), time_jump_ns=TIME_JUMP_NS)
        self.received: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.flagged: Counter[str] = Counter()    # used, but with something wrong ('<sensor>/<reason>')
        self.time_resets = 0
        self.published = 0
        self._newest_ns: int | None = None
        self._ground_anchors: dict[tuple[str, tuple[int, int]], np.ndarray] = {}

    # -- input -----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget queued data and history (time jumped back: bag loop, simulator reset)."""
        self.sync.reset()
        self.ego.reset()
        self._newest_ns = None

    def add_camera(self, name: str, stamp_ns: int, rgb: np.ndarray, now_ns: int,
                   frame_id: str | None = None, image_size: tuple[int, int] | None = None) -> list[SyncedSet]:
        """Queue an ``(H, W, 3) uint8`` RGB image in ``frame_id`` (None: the configured frame); returns the sets
        that are now ready. ``image_size``: (width, height) as received when ``rgb`` was resized on decoding
        (:func:`~perception_llm.camera_encoder.camera_rgb`); None: ``rgb``'s own."""
        spec = self._sensor(self._camera, 'camera', name)
        self.received[spec.key] += 1
        self._note_stamp(stamp_ns)
        self._frame(spec, frame_id)
        intrinsics = self._intrinsics.get(name)
        image_size = image_size or (rgb.shape[1], rgb.shape[0])
        if intrinsics is not None and any(intrinsics.size) and intrinsics.size != image_size:
            self._flag(spec.key, 'intrinsics_size', f'{spec.key}: camera_info is for {intrinsics.size[0]}x'
                       f'{intrinsics.size[1]} images, this one is {image_size[0]}x{image_size[1]}: its K is used as it '
                       f'is; name the camera_info published with this image')
        start = time.perf_counter()
        image = prepare_image(rgb, self.encoder_config.input_width, self.encoder_config.input_height)
        frame = CameraFrame(image, image_size, (time.perf_counter() - start) * 1e3)
        return self.sync.add(spec.key, stamp_ns, frame, now_ns)

    def add_lidar(self, name: str, stamp_ns: int, points: np.ndarray, intensity: np.ndarray | None,
                  now_ns: int, frame_id: str | None = None,
                  radial_velocity: np.ndarray | None = None) -> list[SyncedSet]:
        """Queue ``(N, 3)`` points (non-finite ones are ignored), their raw intensity and, from lidars that
        measure it, their radial velocity (m/s, away positive), in ``frame_id`` (the header's; None: the lidar's
        configured frame), placed in ``base_link`` by the frame policy."""
        spec = self._sensor(self._lidar, 'lidar', name)
        self.received[spec.key] += 1
        self._note_stamp(stamp_ns)
        start = time.perf_counter()
        transform = spec.base_from_sensor if self._frame(spec, frame_id) else IDENTITY
        points_base = transform_points(transform, np.asarray(points).reshape(-1, 3))
        keep = self.bev_grid.crop(points_base)
        if self.vehicle_box_m is not None:
            x0, x1, y0, y1 = self.vehicle_box_m
            x, y = points_base[:, 0], points_base[:, 1]
            keep &= ~((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))
        scaled = None
        if intensity is not None:
            scaled = np.asarray(intensity, np.float32).reshape(-1)[keep] * np.float32(1.0 / spec.max_intensity)
        velocity = None if radial_velocity is None else np.asarray(radial_velocity, np.float32).reshape(-1)[keep]
        sweep = LidarSweep(select_points(points_base, keep), scaled, (time.perf_counter() - start) * 1e3, velocity)
        return self.sync.add(spec.key, stamp_ns, sweep, now_ns)

    def set_intrinsics(self, name: str, intrinsics: Intrinsics) -> bool:
        """Use ``intrinsics`` (from a camera_info) for camera ``name`` from the next frame on; True when they
        changed. :class:`ValueError` when they cannot make a camera model (the current model stays)."""
        spec = self._sensor(self._camera, 'camera', name)
        if self._intrinsics.get(name) == intrinsics:
            return False
        self.camera_models[name] = CameraModel(intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy,
                                               intrinsics.distortion, spec.base_from_sensor)
        self._intrinsics[name] = intrinsics
        self._ground_anchors = {key: anchors for key, anchors in self._ground_anchors.items() if key[0] != name}
        return True

    def add_odometry(self, state: EgoState) -> None:
        self.received[ODOMETRY] += 1
        self._note_stamp(state.stamp_ns)
        reason = self.ego.add(state)
        if reason:
            self.dropped[f'{ODOMETRY}/{reason}'] += 1

    def poll(self, now_ns: int) -> list[SyncedSet]:
        """Sets that became due because a sensor stayed silent (call it periodically)."""
        return self.sync.poll(now_ns)

    def _frame(self, spec, frame_id: str | None) -> bool:
        """The frame policy for one message of ``spec``: whether its extrinsic applies (flagged when unexpected)."""
        if frame_id is None:
            return True
        choice = spec.frames.resolve(frame_id)
        if choice.warning:
            self._flag(spec.key, 'frame_mismatch', choice.warning)
        return choice.extrinsic

    def _flag(self, sensor: str, reason: str, text: str) -> None:
        self.flagged[f'{sensor}/{reason}'] += 1
        self.warn(text)

    def counters(self) -> dict[str, int]:
        """Health counters: ``received/<sensor>``, ``dropped|flagged/<sensor>/<reason>``, sets published."""
        values = {f'received/{k}': v for k, v in sorted(self.received.items())}
        values |= {f'dropped/{k}': v for k, v in sorted((self.dropped + self.sync.dropped).items())}
        values |= {f'flagged/{k}': v for k, v in sorted(self.flagged.items())}
        return values | {'synced_sets': self.sync.synced, 'partial_sets': self.sync.partial,
                         'published': self.published, 'time_resets': self.time_resets + self.sync.resets}

    # -- output ----------------------------------------------------------------------------------

    def tokenize(self, synced: SyncedSet) -> FusedFrame:
        """The token set of a synced set; ``tokenize_ms`` covers its members' preparation on arrival too."""
        inputs = self.preprocess(synced)
        start = time.perf_counter()
        tokens = self.encode(inputs)
        stages_ms = inputs.stages_ms | {'encoders': (time.perf_counter() - start) * 1e3}
        self.published += 1
        return FusedFrame(tokens, inputs.missing, sum(stages_ms.values()), stages_ms, inputs.no_intrinsics)

    def preprocess(self, synced: SyncedSet) -> FrameInputs:
        """The encoders' inputs of a synced set (all numpy)."""
        cfg, members = self.encoder_config, synced.members
        clock = _StageClock()
        sweeps = [members[spec.key][1] for spec in self.lidar_specs if spec.key in members]
        frames = {spec.index: members[spec.key][1] for spec in self.camera_specs if spec.key in members}
        clock.add('camera_resize', sum(frame.prepare_ms for frame in frames.values()))
        clock.add('lidar_to_base_link', sum(sweep.prepare_ms for sweep in sweeps))
        points = (sweeps[0].points_base if len(sweeps) == 1  # columns stay contiguous (see transform_points)
                  else np.concatenate([s.points_base.T for s in sweeps] or [np.zeros((3, 0), np.float32)], axis=1).T)
        intensity = velocity = None
        if sweeps and all(s.intensity is not None for s in sweeps):
            intensity = np.concatenate([s.intensity for s in sweeps])
        if sweeps and all(s.radial_velocity is not None for s in sweeps):
            velocity = np.concatenate([s.radial_velocity for s in sweeps])
        bev = (self.bev_grid.features(points, intensity, velocity) if sweeps
               else np.zeros((BEV_CHANNELS, *self.bev_grid.shape), np.float32))
        clock.lap('bev_grid')
        images = np.zeros((len(self.camera_specs), 3, cfg.input_height, cfg.input_width), np.uint8)
        anchors = np.full((len(self.camera_specs), cfg.camera_tokens, 3), np.nan, np.float32)
        for spec in self.camera_specs:
            frame: CameraFrame | None = frames.get(spec.index)
            if frame is None:
                continue
            images[spec.index] = frame.image
            model = self.camera_models[spec.name]
            if model is not None:
                fallback = self._ground(spec.name, model, frame.image_size)
                anchors[spec.index] = (patch_anchors(model, frame.image_size, cfg.camera_grid, points, fallback)
                                       if sweeps else fallback)
        clock.lap('camera_anchors')
        ego = self.ego.features(synced.stamp_ns)
        return FrameInputs(
            stamp_ns=synced.stamp_ns, images=images, camera_present=np.isin(np.arange(len(images)), list(frames)),
            camera_anchors=anchors, bev=bev, lidar_present=bool(sweeps),
            ego=ego if ego is not None else np.zeros(EGO_FEATURES, np.float32), ego_present=ego is not None,
            missing=list(synced.missing) + ([ODOMETRY] if ego is None else []), stages_ms=clock.stages_ms,
            no_intrinsics=[spec.key for spec in self.camera_specs
                           if spec.index in frames and self.camera_models[spec.name] is None])

    @torch.inference_mode()
    def encode(self, inputs: FrameInputs) -> TokenSet:
        """The real tokens of one frame (masked slots left out: the planner pads)."""
        fused = self.encoders.fuse(**inputs.batch())
        mask = fused.mask[0]
        return TokenSet(
            stamp_ns=inputs.stamp_ns,
            anchors=fused.anchors[0][mask].numpy(),
            modality=fused.modality[mask].numpy(),
            source=fused.source[mask].numpy(),
            embedding=fused.embedding[0][mask].float().numpy())

    # -- internals -------------------------------------------------------------------------------

    @staticmethod
    def _sensor(specs: dict, kind: str, name: str):
        if name not in specs:
            raise KeyError(f'{kind} {name!r} is not configured; {kind}s: {sorted(specs)}')
        return specs[name]

    def _note_stamp(self, stamp_ns: int) -> None:
        if self._newest_ns is not None and stamp_ns < self._newest_ns - TIME_JUMP_NS:
            self.time_resets += 1
            self.reset()
        self._newest_ns = stamp_ns if self._newest_ns is None else max(self._newest_ns, stamp_ns)

    def _ground(self, name: str, model: CameraModel, image_size: tuple[int, int]) -> np.ndarray:
        key = (name, image_size)
        if key not in self._ground_anchors:
            reach = max(abs(v) for v in (*self.bev_grid.x_range_m, *self.bev_grid.y_range_m))
            self._ground_anchors[key] = ground_anchors(model, image_size, self.encoder_config.camera_grid, reach)
        return self._ground_anchors[key]
