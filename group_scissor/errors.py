"""The errors a user can cause (bad names, files, settings); the CLI reports these without a
traceback. Anything else is a bug and keeps its traceback."""

from group_scissor.checkpoint import CheckpointError
from group_scissor.data import DataError
from group_scissor.train import TrainingDiverged
from models.registry import UnknownModelError


class UsageError(ValueError):
    """Inconsistent options (e.g. a model that does not fit the data set)."""


USER_ERRORS = (CheckpointError, DataError, TrainingDiverged, UnknownModelError, UsageError,
               ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError)
