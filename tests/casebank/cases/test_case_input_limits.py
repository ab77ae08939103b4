"""A case whose text or plan holds a NUL character is refused with a 400 naming the field.

PostgreSQL cannot store the character in text or jsonb; the DRF serializer already refused it
in the title, query and tags, but not in the JSON plan, and the admin, suggestions and commands
reach the service without that serializer.
"""
from __future__ import annotations

import pytest

from casebank.cases import services
from casebank.models import Case, CaseVersion
from core.errors import InvalidInput

pytestmark = pytest.mark.django_db

CASE = {"title": "Revenue", "query": "Monthly revenue", "plan": [{"agent": "data_analysis"}]}


@pytest.mark.parametrize(
    "plan, where",
    [("run the \u0000 report", "plan"), ([{"agent": "sql\u0000"}], "plan[0].agent"),
     ([{"agent": "sql", "a\u0000": 1}], "plan[0] (a key)")],
    ids=["text", "value", "key"],
)
def test_the_api_refuses_a_nul_in_the_plan(api, plan, where):
    response = api.post("/api/cases/", {**CASE, "plan": plan}, format="json")

    assert response.status_code == 400, response.content
    expected = services.NUL_MESSAGE if where == "plan" else f"{services.NUL_MESSAGE} Found in {where}."
    assert response.json()["errors"]["plan"] == [expected]
    assert not Case.objects.exists()


def test_an_edit_with_a_nul_changes_nothing(api, make_case):
    case = make_case()
    response = api.patch(f"/api/cases/{case.pk}/", {"plan": [{"agent": "x", "note": "\u0000"}]}, format="json")

    assert response.status_code == 400
    case.refresh_from_db()
    assert case.version == 1 and CaseVersion.objects.filter(case=case).count() == 1


@pytest.mark.parametrize("field", ["title", "query", "category"])
def test_the_service_refuses_a_nul_in_any_text(field):
    with pytest.raises(InvalidInput) as refused:
        services.case_create(actor="admin", **{**CASE, "category": "analytics", field: CASE.get(field, "a") + "\u0000"})
    assert list(refused.value.errors) == [field]


def test_the_service_refuses_a_nul_in_a_tag():
    with pytest.raises(InvalidInput) as refused:
        services.case_create(actor="admin", **CASE, tags=["ok", "b\u0000d"])
    assert refused.value.errors == {"tags": [f"{services.NUL_MESSAGE} Found in tags[1]."]}
