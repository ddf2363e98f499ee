"""DDS transport settings that make sensor-sized messages arrive.

With Fast DDS's default transports, best-effort messages of a few MB (camera
images, lidar clouds) are mostly lost: UDP fragments drop. The LARGE_DATA
builtin transport (TCP for user data, shared memory on the same host, UDP only
for discovery) delivers them. Fast DDS reads the variable when a participant is
created, so every process of the stack sets it before ``rclpy.init``, and the
launchers pass it to children. A user's own drivers must set it too.
"""

import os
from typing import MutableMapping

TRANSPORT_VARIABLE = 'FASTDDS_BUILTIN_TRANSPORTS'
TRANSPORT_VALUE = 'LARGE_DATA'


def configure_dds_transport(env: MutableMapping[str, str] = os.environ) -> MutableMapping[str, str]:
    """Select the large-data transport unless the user chose one explicitly."""
    env.setdefault(TRANSPORT_VARIABLE, TRANSPORT_VALUE)
    return env
