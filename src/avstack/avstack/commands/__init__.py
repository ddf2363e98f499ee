"""The ``avstack`` subcommands, one module each, as ros2cli's verbs: ``register(subparsers)`` and ``run(args)``.

docs/cli.md is the convention every command follows; :mod:`avstack.commands.options` holds its pieces.
"""
