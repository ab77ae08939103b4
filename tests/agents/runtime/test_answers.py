"""The pieces of the respond step: sentence matching and the grounding check."""
from __future__ import annotations

from agents.runtime.answers import NO_ANSWER, Source, best_sentences, extractive, sentences
from agents.runtime.evaluation import grounding_problems
from agents.tools.workers import AgentOutput

POLICY = """# Refund policy

Monthly subscriptions can be cancelled at any time; no refund is given for the current month.
Annual subscriptions are refunded pro rata within the first 60 days after purchase or renewal.

- Refunds go back to the original payment method within 10 business days."""


def test_it_splits_markdown_into_sentences_across_line_breaks():
    assert sentences(POLICY) == [
        "Monthly subscriptions can be cancelled at any time; no refund is given for the current month.",
        "Annual subscriptions are refunded pro rata within the first 60 days after purchase or renewal.",
        "Refunds go back to the original payment method within 10 business days.",
    ]


def test_it_picks_the_matching_sentences_and_none_for_nonsense():
    source = Source(n=1, type="document", id="1", title="Refund policy", text=POLICY)
    picked = [s for s, _ in best_sentences("How long until refunds reach the payment method?", [source])]
    assert picked[0].startswith("Refunds go back")
    assert best_sentences("purple elephant banana quantum sandwich", [source]) == []
    assert best_sentences("", [source]) == []


def test_it_builds_an_extractive_answer_with_numbered_citations():
    retrieval = AgentOutput(ok=True, data={"passages": [{"title": "Refund policy", "text": POLICY}],
                                           "sources": [{"type": "document", "id": "7", "title": "Refund policy"}]})
    answer = extractive("refund for annual subscriptions", {"information_retrieval": retrieval})
    assert answer.found and answer.text.endswith("\n\nSources:\n[1] Refund policy")
    assert "Annual subscriptions are refunded pro rata" in answer.text and "[1]" in answer.text
    assert answer.sources == [{"n": 1, "type": "document", "id": "7", "title": "Refund policy"}]
    nothing = extractive("purple elephant", {"information_retrieval": retrieval})
    assert (nothing.text, nothing.found) == (NO_ANSWER, False)


ROWS = [["north", 12345.67], ["south", 9000]]
SOURCES = [{"n": 1, "rows": ROWS, "text": ""}, {"n": 2, "text": "Refunds above 5,000 USD need Finance."}]


def test_it_accepts_a_grounded_answer():
    assert grounding_problems("North leads with 12,345.67 [1]; refunds over 5,000 USD need Finance [2].", SOURCES) == []
    assert grounding_problems("North leads with 12345.7 [1].", SOURCES) == []  # rounded, not invented
    assert grounding_problems("The top 2 regions [1] in 2026.", SOURCES, query="top 2 regions in 2026") == []


def test_it_names_what_is_not_grounded():
    assert grounding_problems("North leads [3].", SOURCES) == ["cites sources that were not given: [3]"]
    assert grounding_problems("North leads.", SOURCES) == ["cites no source"]
    assert grounding_problems("North leads with 99,999 [1].", SOURCES) == ["numbers not in the sources: 99,999"]
    assert grounding_problems("North made 12346.5 [1].", SOURCES) == ["numbers not in the sources: 12346.5"]
