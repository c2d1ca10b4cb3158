"""How a benchmark ends on a mistake it can name (a missing checkpoint or data set, a run that
diverged): the message and exit 2, as the CLI does, instead of a traceback. Anything else is a
bug and keeps its traceback, so plain ValueError/TypeError are not caught here."""

import contextlib
import sys

from common.errors import UserError

EXPECTED = (UserError, FileNotFoundError)


@contextlib.contextmanager
def flag_errors(parser):
    """Inside: settings are built from the command line, so a ValueError (a config rejecting a
    value) is the user's flag, reported by ``parser.error`` (usage, message, exit 2)."""
    try:
        yield
    except ValueError as e:
        parser.error(str(e))


def guarded(main) -> None:
    """Run ``main()``; an expected error prints ``error: ...`` and exits with status 2."""
    try:
        main()
    except EXPECTED as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted. A training benchmark resumes from its last finished epoch when run "
              "again with the same command.", file=sys.stderr)
        raise SystemExit(130) from None
