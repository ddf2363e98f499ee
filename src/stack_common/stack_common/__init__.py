"""Wire contracts of the autonomy stack.

This package owns everything two processes must agree on: topic names, QoS
profiles, message <-> numpy conversions, node configuration schemas and the
checkpoint file format. It holds no node logic.
"""
