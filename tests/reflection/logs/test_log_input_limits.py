"""Input the database cannot hold is refused with a 400 naming the field, on SQLite and PostgreSQL.

Each of these used to pass validation and then fail in the database (a 500): NUL characters
(PostgreSQL text and jsonb refuse them), integers past the column's range, dates before year 1
once converted to UTC.
"""
from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from reflection.models import ExecutionLog

pytestmark = pytest.mark.django_db

GOOD = {"success": False, "execution_time_ms": 120}


@pytest.mark.parametrize(
    "fields, field, where",
    [
        ({"error_message": "boom\u0000"}, "error_message", ""),
        ({"error_type": "Timeout\u0000Error"}, "error_type", ""),
        ({"model": "\u0000"}, "model", ""),
        ({"context": {"step": "sql\u0000"}}, "context", "context.step"),
        ({"context": {"steps": [{"ok": 1}, {"n\u0000te": "x"}]}}, "context", "context.steps[1] (a key)"),
        ({"case_version": 10**12}, "case_version", ""),
        ({"case_version": 2**63}, "case_version", ""),
        ({"created_at": "0001-01-01T00:00:00+01:00"}, "created_at", ""),
        ({"created_at": "1999-12-31T23:59:59Z"}, "created_at", ""),
    ],
    ids=["nul-message", "nul-type", "nul-model", "nul-context-value", "nul-context-key",
         "version-1e12", "version-2**63", "year-1", "before-2000"],
)
def test_it_refuses_what_the_database_cannot_store(api, fields, field, where):
    response = api.post("/api/logs/", [GOOD, {**GOOD, **fields}], format="json")

    assert response.status_code == 400, response.content
    body = response.json()
    assert "nothing was stored" in body["detail"]
    assert list(body["errors"]["1"]) == [field]
    assert where in body["errors"]["1"][field]
    assert ExecutionLog.objects.count() == 0


def test_it_still_takes_the_largest_version_and_a_backslash_u_text(api):
    # The NUL check reads orjson's bytes: an escaped backslash before "u0000" is not a NUL.
    response = api.post("/api/logs/", {**GOOD, "case_version": 2**31 - 1, "context": {"path": "C:\\u0000"},
                                       "created_at": "2000-01-01T00:00:00Z"}, format="json")
    assert response.status_code == 201, response.content
    assert ExecutionLog.objects.get().context == {"path": "C:\\u0000"}


def test_import_logs_names_the_line_with_a_nul_and_imports_the_others(tmp_path):
    path = tmp_path / "logs.jsonl"
    lines = [{**GOOD, "error_message": "first"}, {**GOOD, "error_message": "bad\u0000"}, {**GOOD, "context": {"k": "v"}}]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError, match="1 bad line"):
        call_command("import_logs", str(path), "--no-progress", stdout=out, stderr=err)

    assert "line 2: error_message: Must not contain the NUL character" in err.getvalue()
    assert "Imported 2 log(s)" in out.getvalue() and "1 bad line(s)" in out.getvalue()
    assert ExecutionLog.objects.count() == 2
