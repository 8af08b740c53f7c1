"""One version for reuse: the repository's pyproject.toml (`[project] version`) is the library's; the component
provider reports it (model_serving_provider.VERSION reads it), provider/pyproject.toml repeats it, and the changelog
has a section for it."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import model_serving_provider as msp

from tests.harness import ROOT

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
SEMVER = re.compile(r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?")


def test_the_version_is_semver() -> None:
    assert SEMVER.fullmatch(VERSION), VERSION


def test_the_provider_reports_the_library_version() -> None:
    assert msp.VERSION == VERSION
    assert msp.library_version() == VERSION


def test_the_provider_distribution_has_the_library_version() -> None:
    provider = tomllib.loads((ROOT / "provider" / "pyproject.toml").read_text())["project"]
    assert provider["version"] == VERSION, "set provider/pyproject.toml's version to pyproject.toml's"
    assert "model-serving-components" in provider["dependencies"]


def test_the_provider_run_as_the_plugin_reports_it_too() -> None:
    """As the CLI runs it: `python provider/`, provider/ first on sys.path, from another directory."""
    code = "import model_serving_provider as m; print(m.VERSION)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": f"{ROOT / 'provider'}:{ROOT}", "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.strip() == VERSION


def test_the_changelog_has_the_version_and_an_unreleased_section() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert re.search(rf"^## \[{re.escape(VERSION)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.MULTILINE), VERSION
