"""Perception front end: sensor decoding, time sync, camera/lidar/ego tokenizers and fusion."""
