"""The stack's command line (``avstack``): up, demo, and the tools that run the stack on logs and in simulation."""
