"""tidyctx: pure, composable transforms over Anthropic Messages API requests."""

from tidyctx.request import ValidationError, normalize, validate

__all__ = ["ValidationError", "normalize", "validate"]
__version__ = "0.1.0.dev0"
