"""Video errors: one class per failure a user can act on, each message one line naming the file.

``VideoError`` is the base class (a ``ValueError``), so a pipeline can quarantine any bad video with
one ``except VideoError as e: quarantine(path, str(e))``.
"""

from __future__ import annotations

import os


class VideoError(ValueError):
    """Base class: a video file cannot be used. ``str(e)`` is one line: ``<path>: <problem>``."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = " ".join(str(problem).split())  # keep the message on one line
        super().__init__(f"{self.path}: {self.problem}")


class VideoNotFoundError(VideoError, FileNotFoundError):
    """The path does not exist (or is not a regular file)."""


class EmptyVideoError(VideoError):
    """The file is zero bytes long."""


class CorruptVideoError(VideoError):
    """The container cannot be parsed, is truncated, or yields no decodable frame."""


class NoVideoStreamError(VideoError):
    """The container parses but holds no video stream (e.g. audio only)."""


class UnsupportedCodecError(VideoError):
    """The video stream's codec has no decoder in this PyAV/FFmpeg build."""
