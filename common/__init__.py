"""The bottom layer every other package may use: atomic file writes and the user-error type.

Layering (an arrow points at what a package may import):
``group_scissor`` (training, flow, CLI) -> ``netlists`` -> ``mapping`` -> ``models`` -> ``common``.
"""

from common.errors import ConfigError, UserError

__all__ = ["ConfigError", "UserError"]
