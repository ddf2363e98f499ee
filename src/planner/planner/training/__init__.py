"""Training the driving model from rosbag2 logs: labels, cached datasets, the train loop (DDP-capable)."""
