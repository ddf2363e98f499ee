"""sim_bridge: simulators on the stack's topics (highway-env first)."""
