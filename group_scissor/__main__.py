"""``python -m group_scissor`` (and ``torchrun -m group_scissor``) runs the CLI."""

from group_scissor.cli import main

main()
