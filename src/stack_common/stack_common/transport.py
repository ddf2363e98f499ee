"""DDS transport settings that make sensor-sized messages arrive.

With Fast DDS's default transports, best-effort messages of a few MB (camera
images, lidar clouds) are mostly lost: UDP fragments drop, and the default
512 KB shared-memory segments overflow. The stack's processes load
``fastdds_profile.xml`` instead: shared memory with 64 MB segments (a message
goes in one piece between processes of a host) and UDPv4 for discovery and
other hosts. Fast DDS reads the variable when a participant is created, so
every process of the stack sets it before ``rclpy.init``, and the launchers
pass it to children. A user's own drivers must set it too.

(Fast DDS's LARGE_DATA builtin transports deliver the data as well, over TCP;
here a TCP connection between two participants now and then never came up,
and a node then received nothing from another for minutes: 2 runs of 22 of
`avstack sim` never got a first plan, against 0 of 16 with this profile.)
"""

import os
from pathlib import Path
from typing import MutableMapping

PROFILE_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'
PROFILE_FILE = Path(__file__).resolve().parent / 'fastdds_profile.xml'


def configure_dds_transport(env: MutableMapping[str, str] = os.environ) -> MutableMapping[str, str]:
    """Load the stack's transport profile unless the user chose a profile file explicitly."""
    env.setdefault(PROFILE_VARIABLE, str(PROFILE_FILE))
    return env
