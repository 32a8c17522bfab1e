"""Lint a brief: named rules, each with a reason, a fix and a real check."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import BriefError, LintRuleError

if TYPE_CHECKING:  # for type hints only: schema imports this module, never the other way round
    from .schema import Brief

NUMBER_WORDS = (
    "zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    "fifteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|half|quarter"
)
_NUMBER = re.compile(rf"\d|%|\b(?:{NUMBER_WORDS})\b", re.IGNORECASE)
_TIME_UNIT = r"(?:second|minute|hour|day|week|fortnight|month|quarter|year)s?"
_FRESHNESS = re.compile(
    rf"\b(?:{_TIME_UNIT}|hourly|daily|nightly|weekly|monthly|quarterly|yearly|annually|"
    r"real[- ]?time|live|on every (?:change|update|save)|"
    r"(?:every|each)\s+(?:(?:mon|tues|wednes|thurs|fri|satur|sun)day|weekday|morning|evening|night|weekend))\b",
    re.IGNORECASE,
)
_CADENCE = re.compile(
    rf"\b(?:{_TIME_UNIT}|hourly|daily|weekly|fortnightly|monthly|quarterly|every)\b", re.IGNORECASE
)
_RATE_WORDS = re.compile(
    r"%|\bpercent(?:age)?\b|\brates?\b|\bshare\b|\bratio\b|\bproportion\b|\bfraction\b|\bout of\b",
    re.IGNORECASE,
)
_PER = re.compile(r"\bper\s+([\w,]+)", re.IGNORECASE)
_TIME_WORD = re.compile(rf"^{_TIME_UNIT}$", re.IGNORECASE)
_CURRENCY = re.compile(r"[$€£¥]|\b(?:usd|eur|gbp|dollars?|euros?|pounds?|cents?)\b", re.IGNORECASE)
_ACTIONS = re.compile(
    r"\b(?:queue[ds]?|review(?:ed|er|s)?|human|hold|held|retr(?:y|ied|ies)|reject(?:ed)?|flag(?:ged|s)?|"
    r"fall ?back|escalat\w*|skip(?:ped|s)?|manual(?:ly)?|route[ds]?|block(?:ed)?|discard(?:ed)?|"
    r"rewrit\w*|regenerat\w*|log(?:ged|s)?|sen[dt])\b",
    re.IGNORECASE,
)
_PLACEHOLDER_OWNERS = {
    "", "tbd", "tbc", "todo", "n/a", "na", "none", "nobody", "someone", "somebody", "anyone",
    "everyone", "team", "the team", "marketing", "the marketing team", "we", "us", "ai",
    "the ai", "the model", "vendor", "the vendor", "it", "?", "unknown",
}
_GENERIC_AUDIENCES = {
    "everyone", "anyone", "all", "people", "customers", "all customers", "consumers", "users",
    "the public", "general public", "general audience", "shoppers", "buyers", "our customers",
}


def is_measurable(text: str | None) -> bool:
    """True when the text holds a number, a percentage or a number word (a threshold to test against)."""
    return bool(text) and bool(_NUMBER.search(text or ""))


def is_rate(metric: str) -> bool:
    """True when a metric is a rate (%, share, ratio, per item) and not a count per time period."""
    if _RATE_WORDS.search(metric):
        return True
    # "per 100 descriptions" is a rate; "clicks per week" is still an absolute count
    return any(not _TIME_WORD.match(word.rstrip(",")) for word in _PER.findall(metric))


def _norm(text: str | None) -> str:
    return re.sub(r"[^\w/?]+", " ", (text or "").lower()).strip()


def _quote(items: Iterable[str]) -> str:
    return "; ".join(f"'{item}'" for item in items)


@dataclass(frozen=True)
class Rule:
    """One lint rule: an id, why it matters in plain words, a concrete fix and the check itself."""

    id: str
    title: str
    reason: str
    fix: str
    check: Callable[[Brief], tuple[bool, str]]


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule on one brief."""

    rule: Rule
    passed: bool
    detail: str

    def line(self) -> str:
        """One printable line, with the fix when the rule failed."""
        mark = "✅" if self.passed else "❌"
        text = f"{mark} {self.rule.id}: {self.detail}"
        if not self.passed:
            text += f"\n     why: {self.rule.reason}\n     fix: {self.rule.fix}"
        return text


LEVELS: tuple[tuple[int, str, str], ...] = (
    (0, "marketing spec", "describes the output it wants, little about data, checks or ownership"),
    (50, "draft spec", "covers much of what engineers need, with gaps that will bite in production"),
    (100, "engineering spec", "every rule passes: data, contract, acceptance, budget, monitoring, owner"),
)


@dataclass(frozen=True)
class LintReport:
    """All rule results for one brief, with a 0-100 score and a level name."""

    results: tuple[RuleResult, ...]

    @property
    def score(self) -> int:
        """Percentage of rules that pass."""
        if not self.results:
            return 0
        return round(100 * sum(r.passed for r in self.results) / len(self.results))

    @property
    def level(self) -> str:
        """'marketing spec', 'draft spec' or 'engineering spec' (the last only when every rule passes)."""
        name = LEVELS[0][1]
        for threshold, level_name, _ in LEVELS:
            if self.score >= threshold:
                name = level_name
        return name

    @property
    def failed(self) -> list[RuleResult]:
        """Results of the rules that did not pass."""
        return [r for r in self.results if not r.passed]

    @property
    def ok(self) -> bool:
        """True when every rule passes."""
        return not self.failed

    def result(self, rule_id: str) -> RuleResult:
        """The result of one rule by id."""
        for item in self.results:
            if item.rule.id == rule_id:
                return item
        if rule_id in RULE_IDS:
            raise LintRuleError(f"The lint rule {rule_id!r} was not run for this report.",
                                "Lint with every rule (brief.lint()), or name it in lint(brief, [...]).")
        raise LintRuleError(f"There is no lint rule named {rule_id!r}.", f"Use one of: {', '.join(RULE_IDS)}.")

    def __str__(self) -> str:
        passed = len(self.results) - len(self.failed)
        head = f"Brief level: {self.level} (score {self.score}/100, {passed} of {len(self.results)} rules pass)"
        return "\n".join([head, *(r.line() for r in self.results)])

    def show(self) -> None:
        """Print the report."""
        print(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


# ---- the checks ---------------------------------------------------------------------------


def _objective_stated(b: Brief) -> tuple[bool, str]:
    text = b.objective.statement or ""
    if len(text.split()) < 4:
        return False, "the objective is missing or too short to say what is produced"
    return True, "the objective says what the workflow produces"


def _objective_measurable(b: Brief) -> tuple[bool, str]:
    target = b.objective.target
    if not target:
        return False, "the objective has no target"
    if not is_measurable(target):
        return False, f"target '{target}' has no number or threshold to test against"
    return True, f"target '{target}' can be measured"


def _audience_specific(b: Brief) -> tuple[bool, str]:
    who = b.audience.who
    if not who:
        return False, "no audience is named"
    if _norm(who) in _GENERIC_AUDIENCES:
        return False, f"audience '{who or ''}' is everyone, which means no one in particular"
    if not b.audience.needs:
        return False, f"audience '{who}' is named but not what they care about"
    return True, f"audience '{who}' with {len(b.audience.needs)} need(s)"


def _inputs_check(field: str, pattern: re.Pattern[str] | None = None) -> Callable[[Brief], tuple[bool, str]]:
    def check(b: Brief) -> tuple[bool, str]:
        if not b.inputs:
            return False, "no inputs are listed"
        bad = []
        for item in b.inputs:
            value = getattr(item, field)
            if not value or _norm(value) in _PLACEHOLDER_OWNERS or (pattern and not pattern.search(value)):
                bad.append(item.name)
        if bad:
            return False, f"input(s) without a usable {field}: {_quote(bad)}"
        return True, f"all {len(b.inputs)} input(s) have a {field}"

    return check


def _output_contract(b: Brief) -> tuple[bool, str]:
    out = b.output
    missing = [name for name, ok in (("format", out.format), ("fields", out.fields),
                                      ("max_words", out.max_words)) if not ok]
    if missing:
        return False, f"the output contract is missing: {', '.join(missing)}"
    if out.min_words is not None and out.max_words is not None and out.min_words > out.max_words:
        return False, f"min_words {out.min_words} is more than max_words {out.max_words}"
    return True, f"{out.format} with {len(out.fields)} field(s), at most {out.max_words} words"


def _brand_voice(b: Brief) -> tuple[bool, str]:
    voice = b.constraints.brand_voice
    if not voice or len(voice.split()) < 2:
        return False, "no brand voice is described"
    return True, "brand voice is described"


def _banned_claims(b: Brief) -> tuple[bool, str]:
    c = b.constraints
    if not c.banned_claims:
        return False, "no banned claims are listed"
    return True, f"{len(c.banned_claims)} banned claim(s) and {len(c.legal)} legal rule(s)"


def _acceptance(b: Brief) -> tuple[bool, str]:
    if not b.acceptance:
        return False, "no acceptance criteria are listed"
    vague = [a for a in b.acceptance if not is_measurable(a)]
    if vague:
        return False, f"criteria without a number or threshold: {_quote(vague)}"
    return True, f"all {len(b.acceptance)} acceptance criteria can be measured"


def _budget(b: Brief) -> tuple[bool, str]:
    problems = [name for name in ("volume", "latency", "cost") if not is_measurable(getattr(b.budget, name))]
    if not problems and not _CURRENCY.search(b.budget.cost or ""):
        problems.append("cost (no currency)")
    if problems:
        return False, f"budget without a number: {', '.join(problems)}"
    return True, "volume, latency and cost each have a number"


def _monitoring_rates(b: Brief) -> tuple[bool, str]:
    metrics = b.monitoring.metrics
    if not metrics:
        return False, "no monitoring metrics are listed"
    counts = [m for m in metrics if not is_rate(m)]
    if counts:
        return False, f"metric(s) stated as counts, not rates: {_quote(counts)}"
    return True, f"all {len(metrics)} metric(s) are rates"


def _review_cadence(b: Brief) -> tuple[bool, str]:
    cadence = b.monitoring.review_cadence
    if not cadence or not _CADENCE.search(cadence):
        return False, f"review cadence '{cadence or ''}' does not say how often"
    return True, f"reviewed {cadence}"


# Whoever sells the system cannot own its results for you, in any role ("Vendor account team").
_OUTSIDE_OWNER = re.compile(r"\b(?:vendors?|suppliers?|provider|agency)\b", re.IGNORECASE)


def _owner_named(b: Brief) -> tuple[bool, str]:
    o = b.ownership
    vague = [role for role, who in (("reviewer", o.reviewer), ("prompt_owner", o.prompt_owner))
             if _norm(who) in _PLACEHOLDER_OWNERS]
    if vague:
        return False, f"no named person or role for: {', '.join(vague)}"
    # Who it is, not what they do: "CRM manager at Ridgeline, who approves each model from the vendor" is ours.
    outside = [role for role, who in (("reviewer", o.reviewer), ("prompt_owner", o.prompt_owner))
               if _OUTSIDE_OWNER.search(re.split(r"[,;(]| who ", str(who or ""), maxsplit=1)[0])]
    if outside:
        return False, f"the vendor is named as owner for: {', '.join(outside)}; name someone on your own team"
    return True, f"reviewer '{o.reviewer}', prompt owner '{o.prompt_owner}'"


def _retrain_trigger(b: Brief) -> tuple[bool, str]:
    trigger = b.ownership.trigger
    if not trigger:
        return False, "nothing says when the prompt gets rewritten"
    if not is_measurable(trigger):
        return False, f"trigger '{trigger}' has no threshold, so nobody will know when to act"
    return True, f"trigger: '{trigger}'"


def _failure_handling(b: Brief) -> tuple[bool, str]:
    text = b.failure_handling
    if not text:
        return False, "nothing says what happens to an output the model gets wrong"
    if not _ACTIONS.search(text):
        return False, f"'{text}' does not say where a bad output goes (queue, human review, retry...)"
    return True, "bad outputs have a defined path"


RULES: tuple[Rule, ...] = (
    Rule("objective-stated", "Objective stated",
         "Nobody can build or judge a workflow whose purpose is unclear.",
         "Under objective, write a statement: what is produced, for which products, and why.",
         _objective_stated),
    Rule("objective-measurable", "Objective has a measurable target",
         "Without a number you cannot tell success from failure, and every demo looks like success.",
         "Add objective.target with a number, e.g. '90% of descriptions approved without edits'.",
         _objective_measurable),
    Rule("audience-specific", "Audience is specific",
         "Copy written for everyone persuades no one; the model needs a reader in mind.",
         "Set audience.who to a real segment and list two or three audience.needs.",
         _audience_specific),
    Rule("inputs-have-source", "Every input has a source",
         "The model only knows what you give it; engineers need to know where each fact comes from.",
         "List each input with a source, e.g. 'product information system export'.",
         _inputs_check("source")),
    Rule("inputs-have-owner", "Every input has an owner",
         "When the data is wrong, someone must be able to fix it at the source.",
         "Give each input an owner: a named person or role, e.g. 'Catalogue manager'.",
         _inputs_check("owner")),
    Rule("inputs-have-freshness", "Every input says how fresh it is",
         "Stale data makes confident, wrong copy: last season's price, a discontinued colour.",
         "Give each input a freshness with a time period, e.g. 'updated daily' or 'weekly export'.",
         _inputs_check("freshness", _FRESHNESS)),
    Rule("output-contract-fields", "Output contract is complete",
         "A fixed format, named fields and a length limit let a program check every output.",
         "Under output, set format, list the fields, and set max_words.",
         _output_contract),
    Rule("brand-voice", "Brand voice described",
         "Without a voice the model falls back on generic advertising language.",
         "Set constraints.brand_voice to a few tone words and one thing to avoid.",
         _brand_voice),
    Rule("banned-claims", "Banned claims listed",
         "One false claim (a certification, a health benefit) costs more than the whole workflow saves.",
         "List constraints.banned_claims, e.g. 'eco-friendly without a certification'.",
         _banned_claims),
    Rule("acceptance-measurable", "Acceptance criteria are measurable",
         "'Good copy' cannot be tested; '0 banned words in 100% of outputs' can.",
         "Write each acceptance criterion with a number: a percentage, a maximum or a count of zero.",
         _acceptance),
    Rule("budget-set", "Volume, latency and cost budget set",
         "A demo runs once; production runs thousands of times, and cost and waiting time add up.",
         "Under budget, give volume ('400 products per week'), latency ('under 10 seconds each') "
         "and cost ('at most $2 per 1,000 products').",
         _budget),
    Rule("monitoring-as-rates", "Monitoring uses rates, not counts",
         "Counts rise with traffic and hide decline; a falling approval rate is the early warning.",
         "State each metric as a rate: '% of descriptions approved without edits', "
         "'flagged claims per 100 outputs'.",
         _monitoring_rates),
    Rule("review-cadence", "Review cadence set",
         "Quality drifts quietly; a fixed review rhythm is how anyone notices.",
         "Set monitoring.review_cadence, e.g. 'weekly sample of 20 outputs'.",
         _review_cadence),
    Rule("owner-named", "Owners named",
         "'The team' owns nothing: a workflow without a named owner degrades until someone complains.",
         "Set ownership.reviewer and ownership.prompt_owner to named people or roles.",
         _owner_named),
    Rule("retrain-trigger", "Trigger for rewriting the prompt",
         "Owners act on thresholds, not feelings; without one the fix happens too late.",
         "Set ownership.trigger with a threshold, e.g. 'approval rate below 85% for two weeks'.",
         _retrain_trigger),
    Rule("failure-handling", "Failure handling defined",
         "Some outputs will be wrong; the brief must say where they go instead of onto the website.",
         "Write failure_handling: e.g. 'outputs that fail a check go to the copy editor's queue, "
         "never published automatically'.",
         _failure_handling),
)
RULE_IDS: tuple[str, ...] = tuple(rule.id for rule in RULES)


def lint(brief: Brief, rules: Iterable[str] | None = None) -> LintReport:
    """Run the lint rules (all, or the ids given) on a brief and return the report."""
    if isinstance(brief, dict):
        raise BriefError("lint() was given a dict, not a Brief.", "Use lint(Brief.from_dict(data)), or brief.lint().")
    wanted = RULE_IDS if rules is None else tuple(rules)
    unknown = [r for r in wanted if r not in RULE_IDS]
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise LintRuleError(f"{names} {'is an unknown lint rule' if len(unknown) == 1 else 'are unknown lint rules'}.",
                            f"Use the rules' ids: {', '.join(RULE_IDS)}.")
    results = []
    for rule in RULES:
        if rule.id in wanted:
            passed, detail = rule.check(brief)
            results.append(RuleResult(rule, passed, detail))
    return LintReport(tuple(results))
