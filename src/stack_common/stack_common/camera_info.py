"""Camera intrinsics <-> ``sensor_msgs/CameraInfo``.

A camera may publish its calibration as a CameraInfo topic instead of (or as
well as) having it in the config. :func:`camera_info_to_intrinsics` gives the
pinhole intrinsics and OpenCV distortion of the image *as published*: K and D
of the message, with binning and the region of interest applied as ROS's
image_geometry does. Supported distortion models: ``plumb_bob`` and
``rational_polynomial`` (OpenCV's k1 k2 p1 p2 [k3 [k4 k5 k6]]), or none.
A message that cannot describe the image (uncalibrated, all-zero K; fisheye
models; skew) raises :class:`CameraInfoError` naming the fix.
"""

import math
from dataclasses import dataclass

from sensor_msgs.msg import CameraInfo

from stack_common.boundary import ConversionError
from stack_common.timeutil import ns_to_stamp

DISTORTION_MODELS = ('plumb_bob', 'rational_polynomial')
DISTORTION_LENGTHS = (0, 4, 5, 8)


class CameraInfoError(ConversionError):
    """A CameraInfo the stack cannot use; ``reason`` is a short key for counters."""


@dataclass(frozen=True)
class Intrinsics:
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, ...] = ()   # OpenCV order; () when none
    size: tuple[int, int] = (0, 0)       # (width, height) of the image they fit; (0, 0) when not stated


def camera_info_to_intrinsics(msg: CameraInfo) -> Intrinsics:
    k = [float(v) for v in msg.k]
    fx, skew, cx, fy, cy = k[0], k[1], k[2], k[4], k[5]
    if not all(math.isfinite(v) for v in k) or not (fx > 0 and fy > 0):
        raise CameraInfoError('uncalibrated', f'camera_info K has no positive focal length (fx={fx:g}, fy={fy:g}): '
                              'the camera is not calibrated; calibrate it or give intrinsics in the config')
    if skew != 0.0:
        raise CameraInfoError('skew', f'camera_info K has skew {skew:g}: the camera model has none; rectify the '
                              'image (image_proc) and name the rectified stream\'s camera_info')
    distortion = tuple(float(v) for v in msg.d)
    if not any(distortion):
        distortion = ()
    elif msg.distortion_model not in DISTORTION_MODELS or len(distortion) not in DISTORTION_LENGTHS:
        raise CameraInfoError('distortion_model', f'camera_info distortion model {msg.distortion_model!r} with '
                              f'{len(distortion)} coefficients is not supported ({" or ".join(DISTORTION_MODELS)}, '
                              f'{", ".join(map(str, DISTORTION_LENGTHS[1:]))} coefficients); rectify the image '
                              '(image_proc) and name the rectified stream\'s camera_info')
    if not all(math.isfinite(v) for v in distortion):
        raise CameraInfoError('distortion_model', 'camera_info D has NaN or inf coefficients')
    bx, by = max(msg.binning_x, 1), max(msg.binning_y, 1)
    roi = msg.roi
    x0, y0 = (roi.x_offset, roi.y_offset) if roi.width else (0, 0)
    width, height = (roi.width, roi.height) if roi.width else (msg.width, msg.height)
    return Intrinsics(fx / bx, fy / by, (cx - x0) / bx, (cy - y0) / by, distortion,
                      (int(width) // bx, int(height) // by))


def intrinsics_to_camera_info(intrinsics: Intrinsics, stamp_ns: int, frame_id: str) -> CameraInfo:
    """A CameraInfo as a driver publishes it (plumb_bob, no binning or region of interest)."""
    msg = CameraInfo()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.width, msg.height = intrinsics.size
    msg.distortion_model = DISTORTION_MODELS[1] if len(intrinsics.distortion) == 8 else DISTORTION_MODELS[0]
    msg.d = list(intrinsics.distortion) + [0.0] * (5 - len(intrinsics.distortion))
    msg.k = [intrinsics.fx, 0.0, intrinsics.cx, 0.0, intrinsics.fy, intrinsics.cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [intrinsics.fx, 0.0, intrinsics.cx, 0.0, 0.0, intrinsics.fy, intrinsics.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg
