"""Briefs for AI workflows: the schema, the linter and the compiler to chat messages."""

from marketlab.tables import is_missing, split_list

from .lint import LEVELS, RULE_IDS, RULES, LintReport, Rule, RuleResult, is_measurable, is_rate, lint
from .messages import facts_block, system_prompt, to_messages
from .schema import Brief, BriefError

__all__ = [
    "Brief", "BriefError", "LEVELS", "LintReport", "RULES", "RULE_IDS", "Rule", "RuleResult",
    "facts_block", "is_measurable", "is_missing", "is_rate", "lint", "split_list", "system_prompt",
    "to_messages",
]
