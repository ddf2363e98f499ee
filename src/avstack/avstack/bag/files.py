"""What a rosbag2 directory holds on disk, and clearing an earlier bag out of one (``--force``).

No heavy import here: the command line's parsers use it.
"""

from pathlib import Path

BAG_FILES = ('metadata.yaml', '*.mcap', '*.db3')   # what a rosbag2 directory holds


def replace_bag(path: Path) -> None:
    """Remove the rosbag2 files an earlier run left in ``path`` (with --force), so a new bag can go there."""
    for pattern in BAG_FILES:
        for entry in Path(path).glob(pattern):
            entry.unlink()
