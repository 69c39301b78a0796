"""The audit log as CSV, safe to open in a spreadsheet.

A cell that begins with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, which some spreadsheets
skip before reading a formula) would run as a formula in Excel, LibreOffice or Google Sheets (OWASP "CSV
injection"): such a cell gets a leading apostrophe, which the spreadsheet shows as text. The ``csv`` module
does the quoting.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable

from backoffice.platform.audit.models import AuditEntry

HEADER = ("occurred_at", "tenant_id", "actor_type", "actor_label", "actor_id", "action", "target_type", "target_id",
          "reason", "detail")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _row(entry: AuditEntry) -> list[str]:
    return [safe_cell(value) for value in (
        entry.occurred_at.isoformat(), entry.tenant_id, entry.actor_type, entry.actor_label, entry.actor_id,
        entry.action, entry.target_type, entry.target_id, entry.reason,
        json.dumps(entry.detail or {}, ensure_ascii=False, sort_keys=True))]


def csv_text(entries: Iterable[AuditEntry], *, header: bool) -> str:
    """Lines of CSV for ``entries`` (with the header line first when asked)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(HEADER)
    writer.writerows(_row(entry) for entry in entries)
    return buffer.getvalue()
