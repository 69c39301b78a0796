"""The one import package, ``backoffice``, is assembled from the top-level folders by pyproject.toml.

A folder missing from the explicit package list imports fine in the editable install and is silently
left out of a wheel, so the image would fail at start-up; and a root ``platform/__init__.py`` would
shadow the standard library's ``platform`` whenever the repository root is on ``sys.path``.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL = ("platform", "tenants", "connectors", "web", "migrations")


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _python_dirs(top: str) -> set[Path]:
    return {path.parent for path in (ROOT / top).rglob("*.py") if "__pycache__" not in path.parts}


def test_every_folder_with_python_files_is_a_listed_package():
    config = _setuptools()
    folder_of = {name: ROOT / folder for name, folder in config["package-dir"].items()}
    assert {folder.name for folder in folder_of.values()} == set(TOP_LEVEL)
    listed = set(config["packages"])

    expected = {
        ".".join([name, *directory.relative_to(folder).parts])
        for name, folder in folder_of.items()
        for directory in _python_dirs(folder.name)
    }
    missing = sorted(name for name in expected if name not in listed)
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_every_listed_package_exists():
    """A stale entry (a folder renamed or removed) breaks every build of the wheel."""
    config = _setuptools()
    for package in config["packages"]:
        parts = package.split(".")
        for depth in range(len(parts), 1, -1):
            prefix = ".".join(parts[:depth])
            if prefix in config["package-dir"]:
                folder = ROOT / config["package-dir"][prefix] / Path(*parts[depth:])
                break
        else:
            raise AssertionError(f"{package} is under no package-dir mapping")
        assert folder.is_dir(), f"{package} is listed but {folder.relative_to(ROOT)} does not exist"


def test_platform_folder_is_a_namespace_portion_not_a_top_level_package():
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_repo_root_on_sys_path_still_imports_the_standard_librarys_platform():
    # `python -c` puts the current directory first on sys.path: exactly the situation to survive.
    code = (
        "import platform, backoffice.platform.settings as s\n"
        "print(platform.__file__)\n"
        "print(platform.python_version())\n"
        "print(s.__file__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    stdlib_platform, version, settings_file = result.stdout.split("\n")[:3]
    assert Path(stdlib_platform).parent == Path(sysconfig.get_paths()["stdlib"])
    assert version.count(".") == 2
    assert Path(settings_file) == ROOT / "platform" / "settings.py"
