"""Rank fusion counts the vector list by its signal (issue #18: RRF must not drag hybrid down)."""
from __future__ import annotations

import pytest

from casebank.search.ranking import reciprocal_rank_fusion, track_record, vector_signal


def test_it_weighs_a_flat_vector_list_as_no_signal():
    # Korean text under the English-only MiniLM: every cosine alike.
    flat = {f"c{i}": 0.84 - i * 0.002 for i in range(20)}
    assert vector_signal(flat) == 0.0
    sharp = {"a": 0.84, **{f"c{i}": 0.3 - i * 0.01 for i in range(20)}}
    assert vector_signal(sharp) == 1.0
    assert vector_signal({}) == 0.0


def test_it_drops_a_list_of_weight_zero_from_the_fusion():
    fused = reciprocal_rank_fusion({"noise": 0.9, "right": 0.1}, {"right": 5.0, "other": 1.0}, weights=(0.0, 1.0))
    assert sorted(fused, key=fused.get, reverse=True) == ["right", "other"]
    assert fused["right"] == pytest.approx(1 / 61)


def test_it_shrinks_a_short_record_towards_a_half():
    assert track_record(0.0, 0.0) == 0.5
    assert track_record(0.0, 2.0) == pytest.approx(5 / 12)
    assert track_record(0.0, 1000.0) == pytest.approx(5 / 1010)
    assert track_record(30.0, 0.0) == pytest.approx(35 / 40)
