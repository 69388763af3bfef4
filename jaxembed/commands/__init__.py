"""Subcommands of the `jaxembed` command line (see `jaxembed/cli.py`)."""
