"""Subcommands of the `liqfast` CLI, one module each (see liqfast.cli)."""
