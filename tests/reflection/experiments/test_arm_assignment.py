"""Deterministic arm assignment: the traffic split is within 3 points of the setting over
2,000 assignments, and a key keeps its arm (issue #15)."""
from __future__ import annotations

import uuid

import pytest

from reflection.experiments.assignment import Arm, assign_arm


@pytest.mark.parametrize("share", [0.05, 0.2, 0.5, 0.8])
def test_it_splits_2000_sessions_within_3_points_of_the_share(share: float) -> None:
    keys = [str(uuid.UUID(int=i * 7919 + 17)) for i in range(2_000)]
    arms = [assign_arm(experiment="suggestion-42", key=key, candidate_share=share) for key in keys]
    assert abs(arms.count(Arm.CANDIDATE) / len(arms) - share) <= 0.03


def test_it_gives_a_key_the_same_arm_every_time() -> None:
    first = [assign_arm(experiment="suggestion-42", key=f"session-{i}", candidate_share=0.2) for i in range(200)]
    again = [assign_arm(experiment="suggestion-42", key=f"session-{i}", candidate_share=0.2) for i in range(200)]
    assert first == again


def test_ramping_up_keeps_every_candidate_key_in_the_candidate_arm() -> None:
    keys = [f"session-{i}" for i in range(2_000)]
    at_20 = {k for k in keys if assign_arm(experiment="e", key=k, candidate_share=0.2) == Arm.CANDIDATE}
    at_50 = {k for k in keys if assign_arm(experiment="e", key=k, candidate_share=0.5) == Arm.CANDIDATE}
    assert at_20 < at_50


def test_experiments_split_independently() -> None:
    keys = [f"session-{i}" for i in range(2_000)]
    first = {k for k in keys if assign_arm(experiment="a", key=k, candidate_share=0.5) == Arm.CANDIDATE}
    second = {k for k in keys if assign_arm(experiment="b", key=k, candidate_share=0.5) == Arm.CANDIDATE}
    assert abs(len(first & second) / 2_000 - 0.25) <= 0.03


def test_it_serves_nobody_or_everybody_at_the_ends() -> None:
    assert assign_arm(experiment="e", key="k", candidate_share=0.0) == Arm.CURRENT
    assert assign_arm(experiment="e", key="k", candidate_share=1.0) == Arm.CANDIDATE
    with pytest.raises(ValueError):
        assign_arm(experiment="e", key="k", candidate_share=1.5)
