"""Fused tokens: the perception -> planner contract, carried as a ``PointCloud2``.

One point per token with fields ``x, y, z`` (float32 anchor in ``base_link``,
NaN when the token has no position), ``modality`` (uint8, :class:`Modality`),
``source`` (uint8, index of the sensor within its modality) and ``embedding``
(float32, one PointField with ``count = D``; the ego token's first channels
are the scaled ego state, ``EGO_STATE_SCALE``). ``header.stamp`` is the stamp of
the synced sensor set and propagates unchanged to the trajectory. Only real
tokens travel; the planner pads to its static input shape.
"""

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from sensor_msgs.msg import PointCloud2

from stack_common.boundary import ConversionError
from stack_common.pointcloud import array_to_cloud, cloud_to_array
from stack_common.timeutil import stamp_to_ns

FRAME_ID = 'base_link'
EMBEDDING_OFFSET = 16  # x, y, z (12 bytes), modality, source, 2 bytes padding
# The ego token's first EGO_STATE_FEATURES embedding channels are the ego state itself, scaled to about unit
# size but not normalised: speed / 10 m/s, yaw rate / 1 rad/s, longitudinal acceleration / 3 m/s^2 (value =
# channel * EGO_STATE_SCALE). The planner reads them directly; the other channels are learned.
EGO_STATE_FEATURES = 3
EGO_STATE_SCALE = (10.0, 1.0, 3.0)


class Modality(IntEnum):
    EGO = 0
    CAMERA = 1
    LIDAR = 2


class TokenDecodeError(ConversionError):
    """A message on the tokens topic that does not follow the contract; ``reason`` is a counter name."""


def token_dtype(dim: int) -> np.dtype:
    return np.dtype({
        'names': ['x', 'y', 'z', 'modality', 'source', 'embedding'],
        'formats': ['<f4', '<f4', '<f4', 'u1', 'u1', ('<f4', (dim,))],
        'offsets': [0, 4, 8, 12, 13, EMBEDDING_OFFSET],
        'itemsize': EMBEDDING_OFFSET + 4 * dim,
    })


@dataclass
class TokenSet:
    """The tokens of one synced sensor set."""

    stamp_ns: int
    anchors: np.ndarray    # (N, 3) float32, base_link, NaN where a token has no position
    modality: np.ndarray   # (N,) uint8
    source: np.ndarray     # (N,) uint8
    embedding: np.ndarray  # (N, D) float32

    def __len__(self) -> int:
        return len(self.modality)

    @property
    def dim(self) -> int:
        return self.embedding.shape[1]

    def count(self, modality: Modality) -> int:
        return int(np.count_nonzero(self.modality == modality))


def tokens_to_cloud(tokens: TokenSet) -> PointCloud2:
    points = np.zeros(len(tokens), token_dtype(tokens.dim))
    points['x'], points['y'], points['z'] = tokens.anchors.T
    points['modality'] = tokens.modality
    points['source'] = tokens.source
    points['embedding'] = tokens.embedding
    return array_to_cloud(points, tokens.stamp_ns, FRAME_ID)


def cloud_to_tokens(msg: PointCloud2) -> TokenSet:
    points = cloud_to_array(msg)
    names = points.dtype.names or ()
    missing = {'x', 'y', 'z', 'modality', 'source', 'embedding'} - set(names)
    if missing:
        raise TokenDecodeError('missing_field', f'tokens cloud lacks fields {sorted(missing)}')
    multiple = [name for name in ('x', 'y', 'z', 'modality', 'source') if points.dtype[name].shape]
    if multiple:
        raise TokenDecodeError('bad_field', f'tokens cloud fields {multiple} have count > 1, expected 1')
    embedding = points['embedding']
    if embedding.ndim == 1:
        embedding = embedding[:, None]
    return TokenSet(
        stamp_ns=stamp_to_ns(msg.header.stamp),
        anchors=np.stack([points['x'], points['y'], points['z']], axis=1).astype(np.float32),
        modality=points['modality'].astype(np.uint8),
        source=points['source'].astype(np.uint8),
        embedding=np.ascontiguousarray(embedding, dtype=np.float32),
    )
