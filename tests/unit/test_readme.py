"""The README's first screen stays true: every `make` target it shows exists, every page it links exists, and it
stays short (the details live in docs/)."""

from __future__ import annotations

import re

from tests.harness import ROOT

README = (ROOT / "README.md").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()


def _targets() -> set[str]:
    targets: set[str] = set()
    for line in MAKEFILE.splitlines():
        match = re.match(r"^([A-Za-z][\w .-]*?)\s*:(?!=)", line)
        if match:
            targets.update(match.group(1).split())
    return targets


def test_every_make_target_the_readme_shows_exists() -> None:
    shown = set(re.findall(r"\bmake ([a-z][\w-]*)", README))
    assert {"up", "test", "down", "render", "preview", "docs", "cluster-down"} <= shown
    assert shown <= _targets(), shown - _targets()


def test_every_linked_page_exists() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    assert links
    for link in links:
        assert (ROOT / link).is_file(), link


def test_the_readme_fits_about_a_screen() -> None:
    assert len(README.splitlines()) <= 60
