#!/usr/bin/env python3
"""Checks the repository's relative Markdown links: each named file exists, and each
#anchor names a heading of that file (GitHub's slugs).

    python3 scripts/check-links.py

Links to the web (http:, https:, mailto:) are not fetched. Exit 1 with one line per broken
link. Python 3.11 standard library only.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {"target", ".git", "node_modules", "dist"}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def markdown_files() -> list[Path]:
    return sorted(
        path
        for path in ROOT.rglob("*.md")
        if not SKIP.intersection(path.relative_to(ROOT).parts)
    )


def prose(path: Path) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces
    to hyphens."""
    text = re.sub(r"`|\*", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in prose(path):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def main() -> int:
    broken = []
    cache: dict[Path, set[str]] = {}
    for path in markdown_files():
        for number, line in enumerate(prose(path), 1):
            for target in LINK.findall(line):
                if re.match(r"^[a-z]+:", target):
                    continue
                file_part, _, anchor = target.partition("#")
                linked = (path.parent / file_part).resolve() if file_part else path
                where = f"{path.relative_to(ROOT)}: ({target})"
                if not linked.exists():
                    broken.append(f"{where}: no file {file_part}")
                    continue
                if anchor and linked.suffix == ".md":
                    if linked not in cache:
                        cache[linked] = anchors(linked)
                    if anchor not in cache[linked]:
                        broken.append(f"{where}: no heading #{anchor} in {linked.relative_to(ROOT)}")
    for line in broken:
        print(line, file=sys.stderr)
    if not broken:
        print(f"every relative link of {len(markdown_files())} Markdown files resolves")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
