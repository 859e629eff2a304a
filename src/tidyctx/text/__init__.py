"""Text engines behind the transforms: cutting, hints and JSON projection.

The public part is JSON projection for tool authors (``project``, ``projected``); the rest is
internal and used by ``trim``, ``compact`` and ``slice_code``.
"""

from tidyctx.text._project import ProjectionWarning, project, projected

__all__ = ["ProjectionWarning", "project", "projected"]
