"""The docs site (mkdocs.yml, docs/): every page is in the nav, `make test` builds it with --strict, and the
Performance page's table (scripts/docs_hooks.py) shows every figure of bench/results.json against its goal.
`make docs` itself checks links and anchors."""

from __future__ import annotations

import importlib.util
import json
import re
from types import ModuleType

import pytest
import yaml

from tests.harness import ROOT

MAKEFILE = (ROOT / "Makefile").read_text()


def _nav_pages(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [p for item in nav for p in _nav_pages(item)]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_pages(value)]
    return []


def test_every_page_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = _nav_pages(config["nav"])
    assert sorted(pages) == sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert {"config.md", "policy.md", "troubleshooting.md", "performance.md"} <= set(pages)


def test_make_test_builds_the_docs_strictly() -> None:
    test = re.search(r"^test:(.*)$", MAKEFILE, re.MULTILINE)
    assert test and "docs" in test.group(1).split()
    docs = re.search(r"^docs:.*\n((?:\t.*\n)+)", MAKEFILE, re.MULTILINE)
    assert docs and "mkdocs build --strict" in docs.group(1)
    assert "site/" in (ROOT / ".gitignore").read_text().splitlines()


@pytest.fixture(scope="module")
def hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_performance_table_shows_every_figure_against_its_goal(hooks: ModuleType) -> None:
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    table = hooks.figures_table(results)
    rows = {line.split("|")[1].strip().strip("`"): line for line in table.splitlines()[2:]}
    assert set(rows) == set(results) - hooks.NOT_FIGURES
    for key in results["goals"]:
        assert ("**missed**" in rows[key]) == (key in results["missed"]), rows[key]
    page = (ROOT / "docs" / "performance.md").read_text()
    assert hooks.FIGURES in page and hooks.MACHINE in page
    rendered = hooks.on_page_markdown(page)
    assert hooks.FIGURES not in rendered and "`overhead_ratio`" in rendered


def test_a_new_figure_is_listed_before_anyone_describes_it(hooks: ModuleType) -> None:
    table = hooks.figures_table({"goals": {"new_ratio": 2}, "missed": ["new_ratio"], "new_ratio": 2.5})
    assert "| `new_ratio` |  | 2.5 | ≤ 2 | **missed** |" in table
