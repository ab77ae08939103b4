"""Score fusion counts the vector list by its signal and keeps a clear winner first (issue #18: hybrid
must not be worse than the better of its lists)."""
from __future__ import annotations

import pytest

from casebank.search.ranking import VECTOR_SHARE, score_fusion, track_record, vector_signal


def test_it_weighs_a_flat_vector_list_as_no_signal():
    # Korean text under the English-only MiniLM: every cosine alike.
    flat = {f"c{i}": 0.84 - i * 0.002 for i in range(20)}
    assert vector_signal(flat) == 0.0
    sharp = {"a": 0.84, **{f"c{i}": 0.3 - i * 0.01 for i in range(20)}}
    assert vector_signal(sharp) == 1.0
    assert vector_signal({}) == 0.0


def test_it_drops_a_list_of_weight_zero_from_the_fusion():
    fused = score_fusion({"noise": 0.9, "right": 0.1}, {"right": 5.0, "other": 1.0}, vector_weight=0.0)
    assert sorted(fused, key=fused.get, reverse=True) == ["right", "other"]
    assert fused == {"right": pytest.approx(1.0), "other": pytest.approx(0.2)}


def test_it_combines_normalised_scores():
    fused = score_fusion({"a": 0.9, "b": 0.5, "c": 0.3}, {"b": 8.0, "d": 2.0}, vector_weight=1.0)
    share = VECTOR_SHARE
    assert fused["a"] == pytest.approx(share * 1.0)
    assert fused["b"] == pytest.approx(share * (0.2 / 0.6) + (1 - share) * 1.0)
    assert fused["c"] == pytest.approx(0.0)
    assert fused["d"] == pytest.approx((1 - share) * 0.25)


def test_a_clear_bm25_winner_survives_a_disordered_vector_list():
    # Reciprocal rank fusion (k=60) lost this one: BM25's first is far ahead, but its rank 1 and 2
    # differ by 1/61 - 1/62, and a half-trusted vector list (signal 0.5) that ranks the runner-up
    # first and the winner fourth tips it: 1/61 + 0.5/64 < 1/62 + 0.5/61.
    lexical = {"right": 12.0, "runner_up": 3.0, **{f"x{i}": 2.0 - i * 0.1 for i in range(8)}}
    vector = {"runner_up": 0.90, "x0": 0.83, "x1": 0.825, "right": 0.82, **{f"x{i}": 0.81 - i * 0.005 for i in range(2, 8)}}
    assert vector_signal(vector) == pytest.approx(0.5)
    fused = score_fusion(vector, lexical, vector_weight=vector_signal(vector))
    assert max(fused, key=fused.get) == "right"


def test_it_shrinks_a_short_record_towards_a_half():
    assert track_record(0.0, 0.0) == 0.5
    assert track_record(0.0, 2.0) == pytest.approx(5 / 12)
    assert track_record(0.0, 1000.0) == pytest.approx(5 / 1010)
    assert track_record(30.0, 0.0) == pytest.approx(35 / 40)
