"""The README stays a front page, and every relative link in it and in docs/ leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

REPO = Path(__file__).resolve().parents[2]
README_MAX_BYTES = 16 * 1024
# Pages and the HMI screenshot that other work streams add (docs/hmi.md and the screenshot come
# with the browser test, security.md and testing.md with their owners, the own-model guide with
# its test). A link to one of these may point nowhere only while it is missing; once the file
# lands it is checked like any other. Empty this set when all of them are in.
_WRITTEN_ELSEWHERE: frozenset[str] = frozenset()  # pages another change is still writing
_OUTSIDE_DESIGN = "DESIGN" + ".md"  # spelled in two parts so this file does not name it
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_DIARY = re.compile(
    r"\b((first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|this|last|next) session|we tried|lent (H100|H200|GPU|machine))\b",
    re.IGNORECASE,
)


def _pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def _relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    links = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        links.append(unquote(target.split("#", 1)[0]))
    return links


def test_readme_is_at_most_16_kb() -> None:
    assert (REPO / "README.md").stat().st_size <= README_MAX_BYTES


def test_every_relative_link_resolves_to_a_file_in_the_repository() -> None:
    broken = []
    for page in _pages():
        for target in _relative_links(page):
            resolved = (page.parent / target).resolve()
            if not resolved.is_relative_to(REPO):
                broken.append(f"{page.relative_to(REPO)}: {target} (outside the repository)")
            elif not resolved.exists() and resolved.relative_to(REPO).as_posix() not in _WRITTEN_ELSEWHERE:
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken, broken


def test_the_link_check_sees_links(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("[a](docs/x.md#part) ![b](img.png) [c](https://example.org) [d](#here)\n```\n[e](skip.md)\n```\n")
    assert _relative_links(page) == ["docs/x.md", "img.png"]


def test_no_page_points_outside_the_repository_or_keeps_a_diary() -> None:
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        assert _OUTSIDE_DESIGN not in text, page
        assert "../shared" not in text, page
        assert not _DIARY.search(text), (page, _DIARY.search(text))


def test_no_source_file_refers_to_the_design_file_outside_the_repository() -> None:
    folders = ("line", "camera", "inference", "plc", "tools", "deploy", "configs", "recipes")
    sources = [p for d in folders for p in (REPO / d).rglob("*") if p.suffix in {".py", ".sh", ".md", ".yaml", ".cu"}]
    offenders = [str(p.relative_to(REPO)) for p in sources if _OUTSIDE_DESIGN in p.read_text(encoding="utf-8", errors="replace")]
    assert not offenders, offenders
