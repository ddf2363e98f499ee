"""The numbers every package shares, defined once: time units, node housekeeping periods, exit codes.

Plain values, no imports: the command line's parsers and the critic (which imports neither torch nor the
planner) use them as well as the nodes.
"""

NS_PER_S = 1_000_000_000

# every node publishes its counters and timings on /diagnostics this often
DIAGNOSTICS_PERIOD_S = 1.0
# a repeated warning (a dropped message, a missed deadline) is logged at most this often per cause
WARN_THROTTLE_S = 5.0

# process exit codes of the nodes and the command line (docs/cli.md)
EXIT_OK = 0
EXIT_FAILURE = 1   # a runtime failure: a node died, nothing came out
EXIT_USAGE = 2     # bad usage, configuration, checkpoint or input file
