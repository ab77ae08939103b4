"""Tokenising for BM25: the same function indexes cases and documents and parses queries.

The analyser is chosen per text. Text with Hangul goes through kiwipiepy's morphological
analysis, keeping content morphemes (nouns, verb and adjective stems, roots, foreign words and
numbers) and dropping particles and endings, so that "매출이", "매출을" and "매출은" all index and
query as "매출", and spacing variants ("월간매출", "월간 매출") split alike. Other text keeps the
word tokeniser (`\\w+`, lower-cased, English stop words dropped). Changing either changes the
postings: re-index with `manage.py reindex_search_terms`.
"""
from __future__ import annotations

import re
import threading
from collections import Counter
from functools import lru_cache
from typing import Any

_TOKEN = re.compile(r"\w+", re.UNICODE)
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
MAX_TERM_LENGTH = 64

STOPWORDS = frozenset(
    """a an and are as at be by for from has have how i in is it its of on or that the
    this to was what when where which who why will with you your we our do does did not
    can could should would into than then them they these those there""".split()
)

# Kiwi (Sejong) tags of content morphemes; irregular stems carry a suffix ("VA-I").
# NNG/NNP common and proper nouns, NR numerals, XR roots, VV/VA verb and adjective stems,
# SL foreign words (English inside Korean text), SN numbers, SH Chinese characters.
CONTENT_TAGS = frozenset({"NNG", "NNP", "NR", "XR", "VV", "VA", "SL", "SN", "SH"})
# Light verbs and copular stems that every sentence has ("하다", "되다", "있다", "없다", "같다").
KOREAN_STOP_STEMS = frozenset({"하", "되", "있", "없", "같", "이", "아니", "보이", "주", "그렇", "어떻"})

_load_lock = threading.Lock()


@lru_cache(maxsize=1)
def _kiwi() -> Any:
    # Loaded once per process (~2 s, the model ships in the kiwipiepy-model wheel), and only by
    # a process that meets Korean text.
    from kiwipiepy import Kiwi  # type: ignore[import-untyped]

    return Kiwi()


def _korean_analyser() -> Any:
    with _load_lock:
        return _kiwi()


def has_hangul(text: str) -> bool:
    return _HANGUL.search(text) is not None


def _keep(token: str) -> bool:
    return not (token in STOPWORDS or (len(token) == 1 and token.isascii()))


def _word_tokens(text: str) -> list[str]:
    return [token[:MAX_TERM_LENGTH] for token in _TOKEN.findall(text.lower()) if _keep(token)]


def _korean_tokens(text: str) -> list[str]:
    tokens = []
    for morpheme in _korean_analyser().tokenize(text):
        tag = morpheme.tag.split("-", 1)[0]
        if tag not in CONTENT_TAGS:
            continue
        if tag in ("SL", "SN"):
            # Foreign words and numbers inside Korean text index as the word tokeniser would.
            tokens.extend(_word_tokens(morpheme.form))
        elif not (tag in ("VV", "VA") and morpheme.form in KOREAN_STOP_STEMS):
            tokens.append(morpheme.form.lower()[:MAX_TERM_LENGTH])
    return tokens


def tokenize(text: str) -> list[str]:
    """BM25 terms of `text`: Korean morphemes for text with Hangul, lower-cased words otherwise."""
    return _korean_tokens(text) if has_hangul(text) else _word_tokens(text)


def term_frequencies(text: str) -> Counter[str]:
    return Counter(tokenize(text))
