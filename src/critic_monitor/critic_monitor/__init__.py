"""Independent safety monitor: trajectory checks, watchdogs and the takeover state machine.

This package must never import torch or the planner: it watches the model, it
does not trust it.
"""
