"""The case bank's models, one module per domain, re-exported so that Django registers them
under the `casebank` app (tables and migrations keep their names)."""
from casebank.access.models import ApiKey, ApiTier
from casebank.cases.models import (
    HIDDEN_STATUSES,
    Case,
    CaseReviewChange,
    CaseStatus,
    CaseStatusChange,
    CaseVersion,
    PendingCase,
    PendingCaseManager,
    ReviewState,
)
from casebank.consolidation.models import ArchiveReason, CaseArchive
from casebank.search.models import CaseTerm, CaseTermStat

__all__ = [
    "HIDDEN_STATUSES", "ApiKey", "ApiTier", "ArchiveReason", "Case", "CaseArchive", "CaseReviewChange",
    "CaseStatus", "CaseStatusChange", "CaseTerm", "CaseTermStat", "CaseVersion", "PendingCase",
    "PendingCaseManager", "ReviewState",
]
