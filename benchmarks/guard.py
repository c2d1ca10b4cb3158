"""How a benchmark ends on a mistake it can name (a missing checkpoint or data set, a run that
diverged): the message and exit 2, as the CLI does, instead of a traceback. Anything else is a
bug and keeps its traceback, so plain ValueError/TypeError are not caught here."""

import sys

from group_scissor.checkpoint import CheckpointError
from group_scissor.data import DataError
from group_scissor.errors import UsageError
from group_scissor.train import TrainingDiverged
from models.registry import UnknownModelError

EXPECTED = (CheckpointError, DataError, TrainingDiverged, UnknownModelError, UsageError,
            FileNotFoundError)


def guarded(main) -> None:
    """Run ``main()``; an expected error prints ``error: ...`` and exits with status 2."""
    try:
        main()
    except EXPECTED as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted; finished epochs are kept (run the same command again to resume).",
              file=sys.stderr)
        raise SystemExit(130) from None
