"""Batch runner: a workflow runs every row of a real table, survives the model's failures, stays
within budget and can be run again tomorrow.

    from marketlab.workflow import Rules, run_batch, summarize
    results = run_batch(products, build_messages, ProductCopy, client, model, brief=brief,
                        rules=Rules(max_words={"description": 120}), include=["sku"], workers=4,
                        token_budget=50_000)
    print(summarize(results))

Settings can also be given as one value: ``settings=RunSettings(limits=Limits(workers=4), ...)``.
"""

from __future__ import annotations

from .artifact import load_workflow, save_workflow, schema_source
from .budget import BudgetMeter, Usage
from .cache import ResponseCache
from .checkpoint import Checkpoint
from .errors import ERROR_KINDS, STATUSES, WorkflowInputError, WorkflowSettingsError
from .ratelimit import RateLimiter
from .result import META_COLUMNS, RowResult
from .runner import run_batch, schema_instruction
from .settings import KEYWORDS, Budget, Limits, Retries, RetryPolicy, RunSettings, Storage, Timeouts
from .summary import RunSummary, failure_report, summarize
from .validate import Rules, Verdict, read_reply

__all__ = [
    "Budget", "BudgetMeter", "Checkpoint", "ERROR_KINDS", "KEYWORDS", "Limits", "META_COLUMNS", "RateLimiter",
    "ResponseCache", "Retries", "RetryPolicy", "RowResult", "Rules", "RunSettings", "RunSummary", "STATUSES",
    "Storage", "Timeouts", "Usage", "Verdict", "WorkflowInputError", "WorkflowSettingsError", "failure_report",
    "load_workflow", "read_reply", "run_batch", "save_workflow", "schema_instruction", "schema_source",
    "summarize",
]
