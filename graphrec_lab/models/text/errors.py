"""The one error type of the text encoder package."""

from __future__ import annotations


class TextEncoderError(ValueError):
    """A text, model name, setting or cache entry that the text encoder cannot use.

    Subclasses ``ValueError`` so callers that validate inputs generically still catch it.
    """
