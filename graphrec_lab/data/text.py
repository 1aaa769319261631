"""Item text: reading text files safely, assembling text from fields, and the missing-text policy.

Readers that know the structure of their item text (UniSRec's ``title. categories. brand.``,
MovieLens' title / genres / year) parse it into named fields and call ``assemble_texts`` with the
configured field list or template, so the text a model sees is a config choice, not hard-coded in a
reader. ``apply_missing_text_policy`` then decides what happens to items that have no text at all:
fail, use an empty string, use a placeholder, or drop the items (and their interactions) before the
split. ``read_text_lines`` reads a file and names the file and line of the first byte that is not
valid in the encoding (or, on request, substitutes U+FFFD and counts the lines where it did).
"""

from __future__ import annotations

import dataclasses
import logging
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from graphrec_lab.data.errors import format_error
from graphrec_lab.data.graph import DataValidationError, RawInteractions

log = logging.getLogger(__name__)

MISSING_TEXT_POLICIES = ("error", "empty", "placeholder", "drop_items")
DECODE_ERRORS = ("error", "replace")


@dataclass
class ItemTextConfig:
    """How item text is built and what happens to items without any (``data.text`` in configs).

    Attributes:
        fields: the reader's named fields to use, in order (``None``: the reader's default).
        template: a ``str.format`` template over field names, e.g. ``"{title} (by {brand})"``; when
            set it replaces ``fields`` + ``separator``. Empty fields format as ``""``.
        separator: joins the non-empty ``fields`` when there is no template.
        missing: policy for items whose text is absent or empty after assembly: ``"error"`` raises
            naming the items, ``"empty"`` uses ``""``, ``"placeholder"`` uses ``placeholder``
            formatted with ``token`` (the raw item id) and ``index`` (the dense id), ``"drop_items"``
            removes the items and all their interactions before filtering and splitting.
        placeholder: the text of ``missing="placeholder"``.
        decode_errors: bytes that are invalid in a text file's encoding: ``"error"`` raises naming
            file and line, ``"replace"`` substitutes U+FFFD and counts the lines affected.
    """

    fields: tuple[str, ...] | None = None
    template: str | None = None
    separator: str = ". "
    missing: str = "empty"
    placeholder: str = "{token}"
    decode_errors: str = "error"

    def __post_init__(self) -> None:
        if self.fields is not None:
            if isinstance(self.fields, str):
                self.fields = (self.fields,)
            self.fields = tuple(str(f) for f in self.fields)
            if not self.fields:
                raise ValueError("data.text.fields is empty; give at least one field or null for the default")
        if self.missing not in MISSING_TEXT_POLICIES:
            raise ValueError(f"data.text.missing={self.missing!r}: expected one of {MISSING_TEXT_POLICIES}")
        if self.decode_errors not in DECODE_ERRORS:
            raise ValueError(f"data.text.decode_errors={self.decode_errors!r}: expected one of {DECODE_ERRORS}")
        try:
            self.placeholder.format(token="x", index=0)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"data.text.placeholder={self.placeholder!r}: only {{token}} and {{index}} are available ({exc})"
            ) from None


def item_text_config(text: Mapping | ItemTextConfig | None, **defaults) -> ItemTextConfig:
    """``data.text`` (a mapping, a config or None) as an ``ItemTextConfig``; ``defaults`` fill the keys
    the mapping leaves out. An unknown key is an error naming ``data.text.<key>``."""
    if isinstance(text, ItemTextConfig):
        return text
    text = {**defaults, **dict(text or {})}
    known = {f.name for f in dataclasses.fields(ItemTextConfig)}
    unknown = sorted(set(text) - known)
    if unknown:
        raise ValueError(f"unknown config key 'data.text.{unknown[0]}'; accepted keys: {', '.join(sorted(known))}")
    if text.get("fields") is not None:
        text["fields"] = tuple(text["fields"]) if not isinstance(text["fields"], str) else (text["fields"],)
    return ItemTextConfig(**text)


# ---------------------------------------------------------------------------------------------- files


def read_text_lines(
    path: str | Path, encoding: str = "utf-8", errors: str = "error", fix: str | None = None
) -> tuple[list[str], int]:
    """The lines of a text file (line breaks removed) and how many of them had undecodable bytes.

    ``errors="error"`` raises ``DataFormatError`` ``"<path>:<line>: ..."`` at the first byte that is not
    valid ``encoding``; ``errors="replace"`` substitutes U+FFFD for such bytes and counts the lines.
    Only ``\\n`` (and ``\\r\\n``) end a line, unlike ``str.splitlines``, which also splits on characters
    such as U+2028 that can occur inside product titles. A leading UTF-8 byte-order mark (which some
    Windows editors write) is dropped. ``fix``: what the error tells the user to do (default: the
    ``data.text.decode_errors`` switch of item-text files).
    """
    if errors not in DECODE_ERRORS:
        raise ValueError(f"errors={errors!r}: expected one of {DECODE_ERRORS}")
    path = Path(path)
    data = path.read_bytes()
    if encoding.replace("_", "-").lower() in ("utf-8", "utf8") and data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode(encoding)
        replaced = 0
    except UnicodeDecodeError as exc:
        if errors == "error":
            line = data.count(b"\n", 0, exc.start) + 1
            col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
            bad = data[exc.start : exc.end].hex(" ")
            raise format_error(
                path, line,
                f"byte(s) {bad} at column {col} are not valid {encoding} ({exc.reason}); "
                + (fix or "fix the file, or set data.text.decode_errors=replace to substitute U+FFFD and count the affected lines"),
            ) from None
        replaced = 0
        pieces = []
        for raw_line in data.split(b"\n"):
            try:
                pieces.append(raw_line.decode(encoding))
            except UnicodeDecodeError:
                pieces.append(raw_line.decode(encoding, errors="replace"))
                replaced += 1
        text = "\n".join(pieces)
        log.warning("%s: %d line(s) had bytes that are not valid %s; replaced by U+FFFD", path, replaced, encoding)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines], replaced


# ------------------------------------------------------------------------------------------ assembly


def template_fields(template: str) -> list[str]:
    """Field names a ``str.format`` template refers to, in order (``"{a} x {b}"`` -> ``["a", "b"]``)."""
    names = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise ValueError(f"data.text.template={template!r}: use named fields such as {{title}}, not positional ones")
        names.append(name.split(".")[0].split("[")[0])
    return names


def check_text_spec(
    available: Sequence[str], fields: Sequence[str] | None, template: str | None, where: str
) -> None:
    """Raise ``ValueError`` naming the config key when ``fields``/``template`` use an unknown field."""
    wanted = list(fields or []) + (template_fields(template) if template else [])
    unknown = [f for f in wanted if f not in available]
    if unknown:
        key = "data.text.template" if template and unknown[0] not in (fields or []) else "data.text.fields"
        raise ValueError(f"{key}: unknown item text field {unknown[0]!r} for {where}; available: {list(available)}")


def assemble_text(
    record: Mapping[str, str] | None,
    fields: Sequence[str],
    template: str | None = None,
    separator: str = ". ",
) -> str | None:
    """One item's text from its named fields; ``None`` when every field used is empty or absent.

    Without a template the non-empty ``fields`` are joined with ``separator``; with one, the template
    is formatted with the fields it names (absent ones as ``""``) and ``fields`` is not used.
    """
    if record is None:
        return None
    if template is None:
        parts = [record.get(f, "").strip() for f in fields]
        parts = [p for p in parts if p]
        return separator.join(parts) if parts else None
    used = template_fields(template)
    if not any(record.get(f, "").strip() for f in used):
        return None
    values = {f: record.get(f, "").strip() for f in used}
    return template.format_map(values).strip() or None


def assemble_texts(
    records: Sequence[Mapping[str, str] | None],
    available: Sequence[str],
    fields: Sequence[str] | None,
    template: str | None,
    separator: str,
    default_fields: Sequence[str],
    where: str,
) -> list[str | None]:
    """``assemble_text`` for every item after checking the spec against ``available`` field names."""
    fields = tuple(fields) if fields is not None else tuple(default_fields)
    check_text_spec(available, fields if template is None else None, template, where)
    return [assemble_text(r, fields, template, separator) for r in records]


# ------------------------------------------------------------------------------------ missing text


def missing_text_mask(item_text: Sequence[str | None] | None, num_items: int) -> torch.Tensor:
    """[num_items] bool: items with no text (``None`` or only whitespace; all of them without a list)."""
    if item_text is None:
        return torch.ones(num_items, dtype=torch.bool)
    return torch.tensor([t is None or not t.strip() for t in item_text], dtype=torch.bool)


def apply_missing_text_policy(raw: RawInteractions, cfg: ItemTextConfig, name: str) -> tuple[RawInteractions, dict]:
    """Apply ``cfg.missing`` to the items of ``raw`` without text; returns the new table and a report.

    The report (stored in ``graph.meta``) holds ``items_without_text`` (the count before the policy),
    ``missing_text_policy`` and, for ``drop_items``, ``dropped_items``/``dropped_interactions``. The
    count is logged as a warning whenever it is not zero. ``item_text`` of the result has no ``None``:
    ``drop_items`` removes the items and renumbers the rest (their order is kept).
    """
    missing = missing_text_mask(raw.item_text, raw.num_items)
    n_missing = int(missing.sum())
    report: dict = {"items_without_text": n_missing, "missing_text_policy": cfg.missing}
    tokens = raw.item_tokens or [str(i) for i in range(raw.num_items)]
    if n_missing:
        first = [tokens[i] for i in missing.nonzero().flatten()[:5].tolist()]
        log.warning(
            "%s: %d of %d items have no text (first: %s); data.text.missing=%s",
            name, n_missing, raw.num_items, ", ".join(first), cfg.missing,
        )
    if n_missing == 0:
        return raw, report
    if cfg.missing == "error":
        first = [tokens[i] for i in missing.nonzero().flatten()[:10].tolist()]
        raise DataValidationError(
            f"{name}: {n_missing} of {raw.num_items} items have no text (first: {', '.join(first)}) and "
            "data.text.missing='error'; choose 'empty', 'placeholder' or 'drop_items'"
        )
    texts = list(raw.item_text) if raw.item_text is not None else [None] * raw.num_items
    if cfg.missing == "empty":
        texts = [t if not m else "" for t, m in zip(texts, missing.tolist())]
    elif cfg.missing == "placeholder":
        texts = [
            t if not m else cfg.placeholder.format(token=tokens[i], index=i)
            for i, (t, m) in enumerate(zip(texts, missing.tolist()))
        ]
    if cfg.missing == "drop_items":
        keep = ~missing[raw.item]
        report["dropped_items"] = n_missing
        report["dropped_interactions"] = int((~keep).sum())
        return _forget_items(raw.select(keep), missing), report
    return _replace_texts(raw, texts), report


def _replace_texts(raw: RawInteractions, texts: list[str | None]) -> RawInteractions:
    return dataclasses.replace(raw, item_text=texts)


def _forget_items(raw: RawInteractions, drop: torch.Tensor) -> RawInteractions:
    """Renumber items without the ``drop`` ones (they have no interactions left): [num_items] bool."""
    keep = (~drop).nonzero().flatten()
    new_id = torch.cumsum((~drop).long(), 0) - 1
    pick = keep.tolist()

    def sub(values):
        return None if values is None else [values[i] for i in pick]

    return RawInteractions(
        user=raw.user,
        item=new_id[raw.item],
        num_users=raw.num_users,
        num_items=len(pick),
        rating=raw.rating,
        timestamp=raw.timestamp,
        split=raw.split,
        user_tokens=raw.user_tokens,
        item_tokens=sub(raw.item_tokens),
        item_text=sub(raw.item_text),
        user_text=raw.user_text,
        item_features=None if raw.item_features is None else raw.item_features[keep],
        user_features=raw.user_features,
        social_edges=raw.social_edges,
        source=raw.source,
    )
