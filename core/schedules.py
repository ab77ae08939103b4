"""Periodic tasks, declared by each app on its AppConfig (`schedules`) and created by the
idempotent `manage.py setup_schedules`: an app names only its own tasks, so dependencies keep
pointing one way. Plain data, importable from `apps.py` before the models are ready."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from typing import Literal


@dataclass(frozen=True)
class Periodic:
    name: str
    func: str  # dotted path of a function in the app's tasks module
    every: Literal["minute", "day", "week"]
    at: time | None = None  # UTC, for "day" and "week"
    weekday: int | None = None  # Monday=0, for "week"
