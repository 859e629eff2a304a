"""Text engines behind the transforms: cutting, hints, compaction and JSON projection.

The public part is JSON projection for tool authors (``project``, ``projected``); the rest is
internal and used by ``trim`` and ``compact``: ``_truncate`` (the entry of cutting, with
``_lines``, ``_rows``, ``_cutting`` and ``_hints``) and ``_compaction``. None of it needs the
``code`` extra.
"""

from tidyctx.text._project import ProjectionWarning, project, projected

__all__ = ["ProjectionWarning", "project", "projected"]
