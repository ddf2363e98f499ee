"""The driving foundation model (driver, critic and analyst roles), its training and the planner node."""
