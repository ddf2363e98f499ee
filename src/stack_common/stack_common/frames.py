"""The frame policy: how a sensor message reaches ``base_link``, decided by its ``header.frame_id``.

One rule for every consumer of a cloud or an image (perception, the critic,
``avstack eval`` and training, which share perception's core):

* the header names the configured base frame (``base_link``): the data is
  already there and is used as it is (Autoware's concatenated cloud, most
  driver stacks after a transform), whatever extrinsic is configured;
* it names the sensor's configured frame: the configured extrinsic
  (sensor -> base) applies;
* it names any other frame (a typo, an empty frame, a driver's default
  name): the configured extrinsic applies, as the most likely meaning, and
  the consumer warns, throttled, naming both frames.

A camera has no "as it is": pixels have no position in ``base_link`` without
the camera's pose, so for images (``base_frame=None``) the base frame is just
another unexpected frame.
"""

from dataclasses import dataclass

BASE_FRAME = 'base_link'


def default_sensor_frame(kind: str, name: str) -> str:
    """The frame a sensor is assumed to publish in when its config names none."""
    return f'{name}_optical_frame' if kind == 'camera' else f'{name}_link'


@dataclass(frozen=True)
class FrameChoice:
    extrinsic: bool           # apply the configured extrinsic (False: the data is in the base frame already)
    warning: str | None = None  # set when the header named neither frame


@dataclass(frozen=True)
class FramePolicy:
    sensor: str                    # what the warning calls the sensor, e.g. 'lidar/top'
    sensor_frame: str              # the frame the configured extrinsic maps to the base frame
    base_frame: str | None = BASE_FRAME   # data in this frame is used as it is; None: never (images)

    def resolve(self, frame_id: str) -> FrameChoice:
        if self.base_frame is not None and frame_id == self.base_frame:
            return FrameChoice(extrinsic=False)
        if frame_id == self.sensor_frame:
            return FrameChoice(extrinsic=True)
        expected = repr(self.sensor_frame) + (f' or the base frame {self.base_frame!r}' if self.base_frame else '')
        return FrameChoice(extrinsic=True, warning=(
            f'{self.sensor}: header.frame_id {frame_id!r} is not the configured {expected}: using the configured '
            f'extrinsic ({self.sensor_frame} -> base); set the sensor\'s frame_id to what its driver publishes'))
