"""Closed-loop simulation runs: the bridge and the stack as processes, their report and video."""
