"""``python -m group_scissor`` (and ``torchrun -m group_scissor``) runs the CLI."""

import sys

from group_scissor.cli import main

sys.exit(main())
