"""Reflection's models, one module per domain, re-exported so that Django registers them under
the `reflection` app (tables and migrations keep their names)."""
from reflection.analysis.models import (
    CaseAnalysis,
    CaseReflectionState,
    DailyCaseRollup,
    ReflectionRun,
    ReflectionRunStatus,
    ReflectionTrigger,
)
from reflection.experiments.models import Experiment, ExperimentLook, ExperimentStatus, ExperimentStep
from reflection.llm.models import LLMBudgetState, LLMCall, LLMOutcome, LLMRateSlot
from reflection.logs.models import ExecutionLog
from reflection.suggestions.models import (
    DecisionAction,
    PendingSuggestion,
    Suggestion,
    SuggestionDecision,
    SuggestionSource,
    SuggestionStatus,
    Verification,
)

__all__ = [
    "CaseAnalysis", "CaseReflectionState", "DailyCaseRollup", "DecisionAction", "ExecutionLog", "Experiment", "ExperimentLook",
    "ExperimentStatus", "ExperimentStep", "LLMBudgetState", "LLMCall",
    "LLMOutcome", "LLMRateSlot", "PendingSuggestion", "ReflectionRun", "ReflectionRunStatus", "ReflectionTrigger",
    "Suggestion", "SuggestionDecision", "SuggestionSource", "SuggestionStatus", "Verification",
]
