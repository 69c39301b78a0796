"""``web/`` goes through the domains' doors: it reads through a ``queries.py`` and writes through a service.

The scan reads every module under ``web/`` as source (nothing is imported) and fails, naming file and
line, when a route or page builds SQL itself (``select``, ``insert``, ``update``, ``delete`` or ``text``
from SQLAlchemy), hands the session a row or a raw statement (``session.add``, ``session.delete``,
``session.execute("...")``), or writes an audit entry (``platform/audit/service.record`` or an
``AuditEntry``) instead of leaving that to the service that makes the change, in its transaction.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"
# The composition root (CLI, runtime, demo seeding, the actor list) wires the layers together; it is not a
# route or a page, and its own rules are the import contracts in pyproject.toml.
COMPOSITION_ROOT = WEB / "entry"

SQL_BUILDERS = frozenset({"select", "insert", "update", "delete", "text"})
AUDIT_WRITERS = {"backoffice.platform.audit.service": {"record"}, "backoffice.platform.audit.models": {"AuditEntry"}}
SESSION_WRITES = frozenset({"add", "add_all", "delete", "merge"})
# What a session is called across web/ (a request's, a door's, a transaction's).
SESSION_NAMES = frozenset({"session", "db", "tx", "conn", "connection"})


def _sqlalchemy(module: str | None) -> bool:
    return module is not None and (module == "sqlalchemy" or module.startswith("sqlalchemy."))


def _receiver(node: ast.expr) -> str | None:
    """The name a method is called on: ``session`` in ``session.add(...)``, ``s`` in ``self.s.add``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _is_session(name: str | None) -> bool:
    return name is not None and (name in SESSION_NAMES or name.endswith("_session"))


class _Scan(ast.NodeVisitor):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.found: list[str] = []
        self.builders: dict[str, str] = {}  # local name -> sqlalchemy builder it stands for
        self.sa_modules: set[str] = set()  # local names bound to a sqlalchemy module
        self.audit_names: dict[str, str] = {}  # local name -> audit writer it stands for
        self.audit_modules: dict[str, set[str]] = {}  # local module name -> the writers it holds

    def _say(self, node: ast.AST, what: str) -> None:
        self.found.append(f"{self.path.relative_to(WEB.parent)}:{node.lineno}: {what}")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if _sqlalchemy(alias.name):
                self.sa_modules.add(alias.asname or alias.name.split(".")[0])
            if alias.name in AUDIT_WRITERS and alias.asname:
                self.audit_modules[alias.asname] = AUDIT_WRITERS[alias.name]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        for alias in node.names:
            local = alias.asname or alias.name
            if _sqlalchemy(module) and alias.name in SQL_BUILDERS:
                self.builders[local] = alias.name
            if _sqlalchemy(f"{module}.{alias.name}"):
                self.sa_modules.add(local)
            if alias.name in AUDIT_WRITERS.get(module, ()):
                self.audit_names[local] = alias.name
            if f"{module}.{alias.name}" in AUDIT_WRITERS:
                self.audit_modules[local] = AUDIT_WRITERS[f"{module}.{alias.name}"]

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in self.builders:
                self._say(node, f"builds SQL with sqlalchemy's {self.builders[func.id]}()")
            elif func.id in self.audit_names:
                self._say(node, f"writes an audit entry ({self.audit_names[func.id]})")
        elif isinstance(func, ast.Attribute):
            owner = func.value
            if isinstance(owner, ast.Name) and owner.id in self.sa_modules and func.attr in SQL_BUILDERS:
                self._say(node, f"builds SQL with {owner.id}.{func.attr}()")
            elif isinstance(owner, ast.Name) and func.attr in self.audit_modules.get(owner.id, ()):
                self._say(node, f"writes an audit entry ({owner.id}.{func.attr})")
            elif _is_session(_receiver(owner)):
                if func.attr in SESSION_WRITES:
                    self._say(node, f"writes through the session itself ({_receiver(owner)}.{func.attr})")
                elif func.attr == "execute" and node.args and isinstance(node.args[0], (ast.Constant, ast.JoinedStr)):
                    self._say(node, f"runs raw SQL ({_receiver(owner)}.execute of a string)")
        self.generic_visit(node)


def scan(source: str, path: Path) -> list[str]:
    visitor = _Scan(path)
    visitor.visit(ast.parse(source, filename=str(path)))
    return visitor.found


def test_web_goes_through_the_domains_doors() -> None:
    modules = [path for path in sorted(WEB.rglob("*.py")) if COMPOSITION_ROOT not in path.parents]
    assert len(modules) > 50  # the scan reads the web package, not an empty folder
    found = [line for path in modules for line in scan(path.read_text(), path)]
    assert not found, "web/ reads and writes past the domains' doors:\n" + "\n".join(found)


@pytest.mark.parametrize(("source", "what"), [
    ("from sqlalchemy import select\nselect(1)", "select()"),
    ("from sqlalchemy import update as u\nu(T)", "update()"),
    ("import sqlalchemy as sa\nsa.delete(T)", "sa.delete()"),
    ("from sqlalchemy.dialects.postgresql import insert\ninsert(T)", "insert()"),
    ("from sqlalchemy import text\nx = text('select 1')", "text()"),
    ("async def f(session):\n    session.add(Row())", "session.add"),
    ("async def f(request):\n    request.state.db.delete(row)", "db.delete"),
    ("async def f(db):\n    await db.execute('delete from t')", "db.execute of a string"),
    ("from backoffice.platform.audit.service import record\nrecord(s, actor=a)", "audit entry (record)"),
    ("from backoffice.platform.audit import service as audit\naudit.record(s)", "audit entry (audit.record)"),
    ("from backoffice.platform.audit.models import AuditEntry\nAuditEntry(action='x')", "audit entry (AuditEntry)"),
])
def test_the_scan_names_each_way_past_the_doors(source: str, what: str) -> None:
    found = scan(source, WEB / "example.py")
    assert found and all(line.startswith("web/example.py:") for line in found)
    assert any(what in line for line in found), found


def test_the_scan_lets_the_doors_be_used() -> None:
    source = ("from backoffice.tenants.customers import queries, service\n"
              "from backoffice.platform.audit.service import Actor\n"
              "async def page(session):\n"
              "    rows = (await session.execute(queries.list_customers().limit(10))).scalars()\n"
              "    await service.rename(session, rows, acting=Actor(type='x', label='y'))\n"
              "    data = {}; data.update(a=1)\n")
    assert scan(source, WEB / "example.py") == []
