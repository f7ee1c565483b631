"""The `whistle` command (`python -m streams.cli` runs it too): `streams.cli.main` parses and
dispatches; `up` runs the embedded broker and a worker; `playbooks` checks and explains the
playbook library."""

from streams.cli.main import main

__all__ = ["main"]
