"""BM25 tokenisation follows the language of the text: Korean by morphemes (issue #18)."""
from __future__ import annotations

import pytest

from casebank.search.selectors import case_search
from casebank.search.text import tokenize


@pytest.mark.parametrize("text", ["매출이", "매출을", "매출은", "매출의", "매출도"])
def test_it_strips_particles_from_korean_nouns(text):
    assert tokenize(text) == ["매출"]


@pytest.mark.parametrize(
    ("a", "b"),
    [("지역별 월간 매출", "지역 별 월간매출"), ("환불 정책", "환불정책"), ("고객 이탈 원인", "고객이탈원인")],
)
def test_it_tokenises_spacing_variants_alike(a, b):
    assert tokenize(a) == tokenize(b)


def test_it_keeps_verb_and_adjective_stems_and_drops_endings():
    assert tokenize("고객들이 왜 이탈했나요?") == ["고객", "이탈"]
    assert "늘" in tokenize("매출이 늘었다") and "늘었다" not in tokenize("매출이 늘었다")


def test_it_keeps_english_words_inside_korean_text_as_the_english_tokeniser_does():
    assert tokenize("Redis 메모리가 가득 찼을 때") [:2] == ["redis", "메모리"]
    assert tokenize("the API 문서") == ["api", "문서"]


def test_it_leaves_english_text_to_the_word_tokeniser():
    assert tokenize("Why did customers churn? Revenue_by-region") == ["customers", "churn", "revenue_by", "region"]


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["매출이 얼마야", "월간매출을 보여줘", "지역 별 매출은?"])
def test_it_finds_a_korean_case_by_bm25_whatever_the_particles(make_case, query):
    case = make_case(title="지역별 월간 매출", query="지난 분기 지역별 월간 매출을 보여줘")
    make_case(title="고객 이탈 원인", query="지난달 고객이 왜 이탈했는지 분석해줘")
    assert [hit.case.id for hit in case_search(query=query, mode="bm25", k=5)] == [case.id]


@pytest.mark.django_db
def test_it_reindexes_postings_written_by_the_old_tokeniser(make_case):
    import io
    from collections import Counter

    from django.core.management import call_command

    from casebank.models import CaseTerm
    from casebank.search.services import case_term_stats_rebuild
    from casebank.search.text import _word_tokens

    case = make_case(title="지역별로 본 매출은", query="지난 분기 매출을 보여줘")
    # As the word tokeniser left them: particles glued to the nouns.
    CaseTerm.objects.filter(case=case).delete()
    old = Counter(_word_tokens(f"{case.title}\n{case.query}"))
    CaseTerm.objects.bulk_create([CaseTerm(case=case, term=term, tf=n, impact=1.0) for term, n in old.items()])
    case_term_stats_rebuild()
    assert case_search(query="매출이", mode="bm25") == []
    call_command("reindex_search_terms", "--no-progress", stdout=io.StringIO())
    assert [hit.case.id for hit in case_search(query="매출이", mode="bm25")] == [case.id]
