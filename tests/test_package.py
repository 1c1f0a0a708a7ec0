"""One installed package: a user's own ``data``, ``models`` or ``twin`` folders do not shadow factory_twin's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

API = (
    "from factory_twin import twin; "
    "f = twin.load_facility('campus-100mw'); "
    "import data, models, twin as mine; "
    "print(f.n_racks, data.MINE, models.MINE, mine.MINE)"
)


@pytest.fixture
def user_project(tmp_path: Path) -> Path:
    """An analysis folder with packages named like factory_twin's subpackages (as most have a ``data/``)."""
    for name in ("data", "models", "twin", "optimization", "dashboard"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"MINE = {name!r}\n")
    return tmp_path


def test_python_api_works_beside_user_packages(user_project, child_env):
    out = subprocess.run(
        [sys.executable, "-c", API], cwd=user_project, env=child_env, capture_output=True, text=True, check=True
    )
    from factory_twin import twin

    n_racks = twin.load_facility("campus-100mw").n_racks
    assert out.stdout.split() == [str(n_racks), "data", "models", "twin"]


def test_cli_works_beside_user_packages(user_project, child_env):
    out = subprocess.run(
        [sys.executable, "-m", "factory_twin", "validate", "campus-100mw"],
        cwd=user_project,
        env=child_env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "campus-100mw: valid" in out.stdout


def test_subpackages_import_from_one_place():
    import factory_twin
    from factory_twin import dashboard, data, models, optimization, twin

    root = Path(factory_twin.__file__).resolve().parents[1]
    for pkg in (models, twin, optimization, dashboard, data):
        assert pkg.__name__.startswith("factory_twin.")
        here = Path(pkg.__file__).resolve()
        assert here.parent.name == pkg.__name__.rsplit(".", 1)[1]
        assert root in here.parents  # the checkout's folders, or factory_twin/<name> in site-packages


def test_every_subpackage_is_in_the_wheel():
    """pyproject lists each package (setuptools installs only those): a folder left out is missing from a
    ``pip install .`` outside the checkout, though every test here passes (the checkout's folders import)."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    tool = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    found = set()
    for name, folder in tool["package-dir"].items():
        for init in (root / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(root / folder).parts
            found.add(".".join((name, *rel)))
    assert found == listed
