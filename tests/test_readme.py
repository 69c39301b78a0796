"""The README stays true: its two commands, its configuration table and its event catalogue."""

from __future__ import annotations

import re
from pathlib import Path

from backoffice.platform.settings import Settings
from backoffice.tenants.events.catalogue import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _commands() -> list[str]:
    section = README.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_the_two_commands_run_the_platform_and_the_tests():
    run, test = _commands()
    assert run.startswith("python3 -m venv .venv") and run.endswith("backoffice demo")
    assert test.startswith("python3 -m venv .venv") and "pytest" in test


def test_ci_runs_the_readmes_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text()
    assert _commands()[1] in ci.splitlines()


def test_every_setting_is_in_the_configuration_table():
    for name in Settings.model_fields:
        assert f"`BACKOFFICE_{name.upper()}`" in README, name


def test_every_event_type_is_in_the_catalogue():
    table = README.split("## Event catalogue", 1)[1].split("\n## ", 1)[0]
    for event_type in CATALOGUE:
        assert f"| `{event_type}` |" in table, event_type


def test_every_folder_the_architecture_names_exists():
    section = README.split("## Architecture", 1)[1].split("### Tenant isolation", 1)[0]
    for top, rest in re.findall(r"\| `(\w+)/` \| (.+?) \|\n", section):
        assert (ROOT / top).is_dir(), top
        for sub in re.findall(r"`([a-z_]+/)`", rest):
            assert (ROOT / top / sub).is_dir(), f"{top}/{sub}"
        for module in re.findall(r"`([a-z_]+\.py)`", rest):
            assert list((ROOT / top).rglob(module)), f"{top}/{module}"
