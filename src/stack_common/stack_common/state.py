"""Where the stack's processes keep what they write when nobody said where: the per-user state directory.

``$XDG_STATE_HOME/avstack`` (``~/.local/state/avstack`` when XDG_STATE_HOME is not set), never the working
directory: a node started from a source checkout must not write into it. A relative path in a parameter
(the critic's ``statistics_path``) is relative to it.
"""

import os
from pathlib import Path

# The critic's statistics in a run's own output directory (avstack up -o, sim, demo)
STATISTICS_FILE = 'takeover_statistics.json'


def state_directory() -> Path:
    return Path(os.environ.get('XDG_STATE_HOME') or Path.home() / '.local' / 'state') / 'avstack'


def state_path(value: str | Path) -> Path:
    """``value`` with ``~`` expanded; a relative one under :func:`state_directory`."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else state_directory() / path
