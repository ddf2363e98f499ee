"""The stack over logs in one process: the offline stack, eval and its report, mining, the training logs fed to
planner.training, process replay."""
