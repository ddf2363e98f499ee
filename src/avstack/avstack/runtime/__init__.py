"""Running the stack: the launcher of its processes, an in-process ROS runtime, the observer of its outputs, where
its shared files are."""
