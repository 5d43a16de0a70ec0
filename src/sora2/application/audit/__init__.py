"""Auditing the log: `LedgerAudit` folds it itself and checks everything against that."""

from sora2.application.audit.chain_check import Checkpoint
from sora2.application.audit.fold import Entry
from sora2.application.audit.ledger_audit import EXPORT_COLUMNS, LedgerAudit, iso
from sora2.application.audit.report import CheckpointResult, Problem, Report

__all__ = [
    "EXPORT_COLUMNS",
    "Checkpoint",
    "CheckpointResult",
    "Entry",
    "LedgerAudit",
    "Problem",
    "Report",
    "iso",
]
