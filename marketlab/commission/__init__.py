"""Commission AI like an engineer: the questions to ask vendors, an extractor, scoring rules and a comparison.

    from marketlab import commission, data
    proposals = data.load_proposals()
    table = commission.extract(proposals, client)              # the model fills in the scorecard's structure
    reference = commission.load_extractions()                  # the course's hand-made extractions
    mine = commission.score(reference, my_rules)               # your deterministic scoring rules
    commission.compare(mine, data.load("scorecard"))           # agreement and kappa with the expert
"""

from .artifact import RULES_FILE, rules_module, save_rules
from .compare import CLEAR_CUT, Agreement, Comparison, agreement, compare
from .errors import CommissionError
from .evidence import VERIFIED, EvidenceCheck, verify_quote
from .extract import EXTRACTION_RULES, evidence_summary, extract, extraction_messages, to_answers
from .proposals import all_question_rows, proposal_frame, question_rows
from .questions import BY_ID, QUESTION_IDS, QUESTIONS, SCORES, Question, question, topics_covered
from .reference import load_extractions
from .schema import (
                     FREQUENT,
                     SCHEDULED,
                     SECTION_SCHEMAS,
                     Coverage,
                     Frequency,
                     Integration,
                     Monitoring,
                     ProductionReferences,
                     ProposalAnswers,
                     RetrainingOwner,
                     Section,
                     TrainingData,
                     field_table,
)
from .scoring import SCORECARD_COLUMNS, as_answers, score

__all__ = [
    "BY_ID", "CLEAR_CUT", "EXTRACTION_RULES", "FREQUENT", "QUESTIONS", "QUESTION_IDS", "RULES_FILE",
    "SCHEDULED", "SCORECARD_COLUMNS", "SCORES", "SECTION_SCHEMAS", "Agreement", "CommissionError", "Comparison",
    "Coverage", "EvidenceCheck", "Frequency", "Integration", "Monitoring", "ProductionReferences",
    "ProposalAnswers", "Question", "RetrainingOwner", "Section", "TrainingData", "VERIFIED", "agreement",
    "all_question_rows", "as_answers", "compare", "evidence_summary", "extract", "extraction_messages", "field_table",
    "load_extractions", "proposal_frame", "question", "question_rows", "rules_module", "save_rules", "score",
    "to_answers", "topics_covered", "verify_quote",
]
