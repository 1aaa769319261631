"""The documentation describes the product, and its links resolve.

Two checks over the repository's own text:

* no Markdown file (README.md, docs/, experiments/, benchmarks/) and no docstring or comment under
  graphrec_lab/ narrates the history of the work: working periods ("session 6", "this session"),
  the development machine ("this VM"), tracker numbers ("issue 8", "#3"), commit hashes cited in
  prose, or paths into the team's shared folder. Such facts belong in git and in result records;
  a doc states what the product does and what was measured, with command, hardware and date.
* every relative link in README.md and docs/*.md points at a file that exists (and, for a link
  into a Markdown file with a fragment, at a heading that exists), and every repository path they
  name (a module, a script in a command) exists.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

MARKDOWN_ROOTS = ("docs", "experiments", "benchmarks")
SKIP_PARTS = {"outputs", ".venv", "node_modules", ".git", ".cache", "__pycache__"}

# A hex string that looks like a commit: 7-40 hex digits with at least one digit and one letter.
_HASH = r"(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b"

# Narration of how the work went, with the reason each pattern is safe for product text.
HISTORY_PATTERNS: dict[str, re.Pattern[str]] = {
    # "session 6", "Session 8": a working period; product sessions (HTTP, W&B) are never numbered.
    "numbered session": re.compile(r"\b[Ss]ession[\s-]*\d"),
    # "this session", "in session", "the same session": a working period named as such.
    "this session": re.compile(
        r"\b(?:this|that|previous|next|last|earlier|later|same) (?:working )?session\b", re.I
    ),
    "the machine of the team": re.compile(r"\b(?:this|the) VM\b|\bVM's\b"),
    # "issue 8", "issue #3", "issue-7", "the demonstration": the team's tracker.
    "issue number": re.compile(r"\bissues?[\s-]*#?\d+|\bthe issue's\b", re.I),
    "commit hash in prose": re.compile(
        r"\b(?:commits?|checkout of|at|before|after|since|until) " + _HASH
    ),
    "shared folder path": re.compile(r"\.\./shared\b"),
}
# "#3" in prose (a tracker number); applied outside code, where "#" starts comments and anchors.
HASH_NUMBER = re.compile(r"(?<![\w/&#])#\d+\b")

_FENCE = re.compile(r"^(\s*)(```|~~~)")
_INLINE_CODE = re.compile(r"`[^`\n]*`")


def _markdown_files() -> list[Path]:
    files = [REPO / "README.md"]
    for root in MARKDOWN_ROOTS:
        files += sorted((REPO / root).rglob("*.md")) if (REPO / root).is_dir() else []
    return [f for f in files if f.is_file() and not SKIP_PARTS & set(f.relative_to(REPO).parts)]


def _python_files() -> list[Path]:
    return [f for f in sorted((REPO / "graphrec_lab").rglob("*.py")) if not SKIP_PARTS & set(f.parts)]


def _markdown_lines(text: str) -> list[tuple[int, str, bool]]:
    """``(line number, line, is prose)``: lines inside fenced code blocks are not prose."""
    out, fence = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if match:
            out.append((number, line, False))
            marker = match.group(2)
            fence = None if fence == marker else (fence or marker)
            continue
        out.append((number, line, fence is None))
    return out


def _python_text(path: Path) -> list[tuple[int, str, bool]]:
    """Docstrings and comments of a module as ``(line number, text, is prose)``.

    Comments are prose without their ``#``; docstrings are prose line by line.
    """
    source = path.read_text(encoding="utf-8")
    out: list[tuple[int, str, bool]] = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            out.append((token.start[0], token.string.lstrip("#"), True))
    tree = ast.parse(source, filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                value = body[0].value.value
                if isinstance(value, str):
                    first = body[0].lineno
                    out += [(first + i, line, True) for i, line in enumerate(value.splitlines())]
    return out


def history_hits(lines: list[tuple[int, str, bool]]) -> list[str]:
    """``"<line>: <kind>: <excerpt>"`` for every line that narrates the history of the work."""
    hits = []
    for number, line, prose in lines:
        kinds = [kind for kind, pattern in HISTORY_PATTERNS.items() if pattern.search(line)]
        if prose and HASH_NUMBER.search(_INLINE_CODE.sub("", line)):
            kinds.append("#number")
        hits += [f"{number}: {kind}: {line.strip()[:120]}" for kind in kinds]
    return hits


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Measured in session 6 on the same code.", True),
        ("as this session's runs showed", True),
        ("This VM's speed drifts", True),
        ("Multi-process training (issue 8)", True),
        ("The issue-7 demonstration", True),
        ("see #3 for the discussion", True),
        ("Measured before commit 0b29c6c.", True),
        ("data in ../shared/datasets", True),
        ("an HTTP session is reused for downloads", False),
        ("the Optuna study resumes where it stopped", False),
        ("2-core CPU, 2026-12-04, `python experiments/speed/benchmark_gowalla.py`", False),
        ("the split hash 90dd35bb28920bb7 identifies it", False),
        ("see [data](data.md#cold-start) and the `#2` column", False),
        ("$GRAPHREC_DATA_DIR/gowalla/", False),
    ],
)
def test_history_patterns(text: str, expected: bool) -> None:
    assert bool(history_hits([(1, text, True)])) is expected, history_hits([(1, text, True)])


@pytest.mark.parametrize("path", _markdown_files(), ids=_rel)
def test_markdown_describes_the_product(path: Path) -> None:
    hits = history_hits(_markdown_lines(path.read_text(encoding="utf-8")))
    assert not hits, f"{_rel(path)} narrates the history of the work:\n  " + "\n  ".join(hits)


@pytest.mark.parametrize("path", _python_files(), ids=_rel)
def test_docstrings_and_comments_describe_the_product(path: Path) -> None:
    hits = history_hits(_python_text(path))
    assert not hits, f"{_rel(path)} narrates the history of the work:\n  " + "\n  ".join(hits)


# ---------------------------------------------------------------------------------------------
# Links

_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|__|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for _, line, prose in _markdown_lines(path.read_text(encoding="utf-8")):
        match = _HEADING.match(line) if prose else None
        if match:
            slug = _slug(match.group(2))
            count = seen.get(slug, 0)
            anchors.add(slug if count == 0 else f"{slug}-{count}")
            seen[slug] = count + 1
    return anchors


def _relative_links() -> list[tuple[str, int, str]]:
    """``(file, line, target)`` for every relative link of README.md and docs/*.md."""
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    links = []
    for path in files:
        if not path.is_file():
            continue
        for number, line, prose in _markdown_lines(path.read_text(encoding="utf-8")):
            if not prose:
                continue
            text = _INLINE_CODE.sub("", line)
            targets = _LINK.findall(text) + _REF_LINK.findall(text)
            for target in targets:
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
                    continue
                links.append((_rel(path), number, target))
    return links


def test_readme_and_docs_have_relative_links() -> None:
    # Guards the link check itself: an extraction bug would make the test below vacuous.
    assert any(file == "README.md" and target.startswith("docs/") for file, _, target in _relative_links())


@pytest.mark.parametrize(("file", "line", "target"), _relative_links(), ids=lambda v: str(v))
def test_relative_link_resolves(file: str, line: int, target: str) -> None:
    source = REPO / file
    raw_path, _, fragment = target.partition("#")
    resolved = (source.parent / raw_path).resolve() if raw_path else source
    assert resolved.exists(), f"{file}:{line}: link target {target!r} does not exist ({resolved})"
    if fragment and resolved.suffix == ".md":
        anchors = _anchors(resolved)
        where = raw_path or file
        assert fragment in anchors, f"{file}:{line}: no heading #{fragment} in {where}; has {sorted(anchors)}"


# Repository paths named in the text (`graphrec_lab/...`, `python experiments/.../run.py`): modules and
# scripts move, and a guide that names a vanished file misleads as much as a broken link. A path
# after `=` is an argument value (an output directory), not a claim that the file exists.
_REPO_PATH = re.compile(
    r"(?<![\w./$<=-])(?:graphrec_lab|tests|experiments|benchmarks|notebooks|scripts|docs)/[A-Za-z0-9_./-]*"
)


def _named_paths() -> list[tuple[str, int, str]]:
    """``(file, line, path)`` for every repository path README.md and docs/*.md mention."""
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    named = []
    for path in files:
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for match in _REPO_PATH.finditer(line):
                end = match.end()
                if end < len(line) and line[end] in "<*{":  # a pattern such as experiments/<name>/
                    continue
                named.append((_rel(path), number, match.group(0).rstrip(".,;:")))
    return sorted(set(named))


def test_readme_and_docs_name_repository_paths() -> None:
    assert any(target.startswith("graphrec_lab/") for _, _, target in _named_paths())


@pytest.mark.parametrize(("file", "line", "target"), _named_paths(), ids=lambda v: str(v))
def test_named_repository_path_exists(file: str, line: int, target: str) -> None:
    assert (REPO / target).exists(), f"{file}:{line}: names {target!r}, which is not in the repository"
