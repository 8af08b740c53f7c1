"""The component library as a distribution: `pip wheel --no-deps .` builds model-serving-components, and a
throwaway venv that has the requirements (not this checkout) imports `components` from the installed wheel.

Marked `packaging`: about 10-20 s (pip fetches setuptools into its isolated build environment, from PyPI or
its cache); deselect with `-m "not packaging"`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from tests.harness import ROOT

pytestmark = pytest.mark.packaging

PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build from a copy of what the distribution is made of, so the checkout gets no build/ or egg-info."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "components", source / "components", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([*PIP, "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), "."], cwd=source, check=True)
    (built,) = out.glob("model_serving_components-*.whl")
    return built


def test_the_wheel_holds_the_library_only(wheel: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "model-serving-components"
    assert wheel.name.startswith(f"model_serving_components-{project['version']}-")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"components"}
    assert "components/model_service.py" in names


def test_installs_into_a_throwaway_venv_and_imports_from_outside_the_repo(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # "A venv that has the requirements": this checkout's venv packages, seen through a .pth file rather than
    # installed again from PyPI. The checkout itself is not on the path.
    (site / "requirements.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([*PIP, "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)], check=True)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    script = textwrap.dedent(
        """
        import components
        from components import ModelService, ModelServiceArgs, parse_stack_config
        model = {"name": "m", "modelId": "org/model", "image": {"ref": "r.example/s:1"}}
        stack = parse_stack_config({"models": [model]})
        print(components.__file__)
        print(ModelService.__module__, ModelServiceArgs.__name__, stack.models[0].namespace)
        """
    )
    result = subprocess.run(
        [str(python), "-c", script],
        cwd=outside,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    location, names = result.stdout.splitlines()
    assert Path(location).is_relative_to(site), location
    assert not Path(location).is_relative_to(ROOT)
    assert names == "components.model_service ModelServiceArgs models-m"
