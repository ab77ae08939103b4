"""The retrieval worker: hybrid BM25 + vector over documents and cases, with no LLM."""
from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from agents.models import Document, DocumentChunk, DocumentTerm
from agents.tools.retrieval import search_passages
from agents.tools.workers import AgentTask, InformationRetrievalAgent

pytestmark = pytest.mark.django_db


def test_it_returns_context_sources_and_confidence_from_documents(knowledge, no_llm):
    output = InformationRetrievalAgent().run(AgentTask(query="How long are customer database backups kept?"))
    assert output.ok
    assert output.data["sources"][0] == {**output.data["sources"][0], "type": "document", "title": "Data retention schedule"}
    assert "35" in output.data["context"]
    assert len(output.data["sources"]) <= 5
    scores = [s["score"] for s in output.data["sources"]]
    assert scores == sorted(scores, reverse=True)
    assert 0 < output.data["confidence"] <= 1


def test_it_finds_cases_as_well_as_documents(knowledge, make_case):
    case = make_case(title="Warehouse throughput", query="Compare orders shipped per hour across warehouses",
                     plan=[{"agent": "data_analysis", "action": "SQL"}])
    passages = search_passages("orders shipped per hour by warehouse")
    assert passages[0].key == ("case", str(case.id))


def test_it_applies_the_vector_threshold_but_lets_bm25_through(knowledge):
    strict = search_passages("escalation PagerDuty", mode="vector", vector_threshold=0.99)
    assert strict == []
    hybrid = search_passages("escalation PagerDuty", mode="hybrid", vector_threshold=0.99)
    assert hybrid and hybrid[0].title == "Incident escalation procedure"
    assert hybrid[0].bm25 is not None


def test_it_reports_an_empty_search_as_a_failure(db):
    output = InformationRetrievalAgent().run(AgentTask(query="anything at all"))
    assert not output.ok and output.error_type == "RetrievalEmpty"


def test_it_loads_documents_idempotently_with_the_command(tmp_path):
    (tmp_path / "a.md").write_text("# Alpha guide\n\nThe alpha widget needs calibration every week.\n")
    (tmp_path / "skip.pdf").write_bytes(b"%PDF")
    out = io.StringIO()
    call_command("load_documents", str(tmp_path), "--no-progress", stdout=out)
    assert "1 document(s) read, 1 new or changed" in out.getvalue()
    call_command("load_documents", str(tmp_path), "--no-progress", stdout=out)
    assert "1 document(s) read, 0 new or changed" in out.getvalue()
    document = Document.objects.get()
    assert document.title == "Alpha guide"
    assert DocumentChunk.objects.filter(document=document, embedding__isnull=False).count() == 1
    assert DocumentTerm.objects.filter(term="calibration").count() == 1
    (tmp_path / "a.md").write_text("# Alpha guide\n\nNow it needs calibration monthly.\n")
    call_command("load_documents", str(tmp_path / "a.md"), "--no-progress", stdout=out)
    assert DocumentTerm.objects.filter(term="monthly").count() == 1 and DocumentTerm.objects.filter(term="week").count() == 0
