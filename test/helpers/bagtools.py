"""Helpers shared by the bag tests: small synthetic bags written with rosbags into tmp dirs."""

from pathlib import Path

from avstack.synthetic.scene import SyntheticScene
from avstack.synthetic.bag import SyntheticBagSpec, write_synthetic_bag

# A small rig for format tests (fast to render and to read); eval tests use the full-size scene.
SMALL_SCENE = SyntheticScene(image_width=320, image_height=180, focal_px=200.0, rings=16, azimuths=512)


def small_bag(path: Path, **spec) -> Path:
    return write_synthetic_bag(path, SyntheticBagSpec(**{'duration_s': 1.0, **spec}), SMALL_SCENE)


def storage_file(bag_dir: Path) -> Path:
    return next(p for p in sorted(Path(bag_dir).iterdir()) if p.suffix in ('.mcap', '.db3'))
