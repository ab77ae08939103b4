"""Tokenising for BM25: the same function indexes cases and parses queries."""
from __future__ import annotations

import re
from collections import Counter

_TOKEN = re.compile(r"\w+", re.UNICODE)
MAX_TERM_LENGTH = 64

STOPWORDS = frozenset(
    """a an and are as at be by for from has have how i in is it its of on or that the
    this to was what when where which who why will with you your we our do does did not
    can could should would into than then them they these those there""".split()
)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens without stop words; one-letter ASCII tokens carry no signal."""
    tokens = []
    for token in _TOKEN.findall(text.lower()):
        if token in STOPWORDS or (len(token) == 1 and token.isascii()):
            continue
        tokens.append(token[:MAX_TERM_LENGTH])
    return tokens


def term_frequencies(text: str) -> Counter[str]:
    return Counter(tokenize(text))
