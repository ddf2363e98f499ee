"""Where the stack's shared files are: the top-level ``config/`` and ``launch/``.

In a colcon install they are in the ``avstack`` package's share directory; in
the project's venv (editable install) they are in the source tree.
"""

import os
import sys
from pathlib import Path

PACKAGE = 'avstack'


def share_directory() -> Path:
    # The source tree first: in an editable install it is what users edit.
    candidates = [Path(__file__).resolve().parents[4]]
    candidates += [Path(prefix) / 'share' / PACKAGE
                   for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if prefix]
    candidates.append(Path(sys.prefix) / 'share' / PACKAGE)
    for candidate in candidates:
        if (candidate / 'config' / 'stack.yaml').is_file():
            return candidate
    raise FileNotFoundError(f'cannot find the avstack config directory (looked in {", ".join(map(str, candidates))})')


def default_config() -> Path:
    return share_directory() / 'config' / 'stack.yaml'


def find_config(path: Path) -> Path:
    """A parameter file named on the command line: as given when it exists, else in the installed share
    directory (``config/remaps/autoware.yaml`` works from any directory); as given when neither has it."""
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    installed = share_directory() / path
    return installed if installed.exists() else path
