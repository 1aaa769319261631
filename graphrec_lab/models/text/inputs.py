"""Validation of the texts handed to the encoder: every entry must become a valid UTF-8 ``str``.

The missing-text policy (drop, placeholder, ...) belongs to the data layer; here a ``None`` or a
non-text entry is an error naming its index, so it never surfaces as an obscure tokenizer failure.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, Literal

from graphrec_lab.models.text.errors import TextEncoderError

log = logging.getLogger(__name__)

TextErrors = Literal["strict", "replace"]
TEXT_ERRORS = ("strict", "replace")
_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_LISTED = 10  # indices named in an error message


def _indices(idx: list[int]) -> str:
    shown = ", ".join(map(str, idx[:_MAX_LISTED]))
    return f"{shown}{', ...' if len(idx) > _MAX_LISTED else ''} ({len(idx)} in all)"


def validate_texts(texts: Sequence[Any], errors: TextErrors = "strict") -> tuple[list[str], int]:
    """Check and normalise a batch of texts.

    Args:
        texts: a sequence of ``str`` (or UTF-8 ``bytes``); a bare ``str``/``bytes`` is rejected
            because iterating it would encode characters.
        errors: ``"strict"``: undecodable bytes or strings with lone surrogates (not encodable as
            UTF-8) raise; ``"replace"``: the bad code units become U+FFFD and are counted.

    Returns:
        (texts as a list of valid-UTF-8 ``str``, number of texts that had replacements).

    Raises:
        TextEncoderError: a bare string, ``None``/non-text entries, or (strict) invalid UTF-8,
            each naming the offending indices.
    """
    if errors not in TEXT_ERRORS:
        raise TextEncoderError(f"text_errors={errors!r}: expected one of {TEXT_ERRORS}")
    if isinstance(texts, (str, bytes)):
        raise TextEncoderError("texts must be a sequence of strings, got a single string; wrap it in a list")
    try:
        items = list(texts)
    except TypeError as exc:
        raise TextEncoderError(f"texts must be a sequence of strings, got {type(texts).__name__}") from exc

    missing = [i for i, t in enumerate(items) if t is None]
    if missing:
        raise TextEncoderError(f"texts contain None at indices {_indices(missing)}; apply a missing-text policy upstream")
    wrong = [i for i, t in enumerate(items) if not isinstance(t, (str, bytes))]
    if wrong:
        kinds = sorted({type(items[i]).__name__ for i in wrong})
        raise TextEncoderError(f"texts must be str, got {'/'.join(kinds)} at indices {_indices(wrong)}")

    out: list[str] = []
    bad: list[int] = []
    for i, t in enumerate(items):
        if isinstance(t, bytes):
            try:
                t = t.decode("utf-8")
            except UnicodeDecodeError:
                bad.append(i)
                t = t.decode("utf-8", errors="replace")
        else:
            try:
                t.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates, e.g. from a surrogateescape'd read
                bad.append(i)
                t = _SURROGATE.sub("\ufffd", t)
        out.append(t)
    if bad and errors == "strict":
        raise TextEncoderError(
            f"texts at indices {_indices(bad)} are not valid UTF-8 (undecodable bytes or lone surrogates); "
            f"fix the source encoding or pass text_errors='replace'"
        )
    if bad:
        log.warning("replaced invalid UTF-8 with U+FFFD in %d text(s), indices %s", len(bad), _indices(bad))
    return out, len(bad)
