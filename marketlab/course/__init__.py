"""The instructor's pipeline over nbgrader: validate labs, build student versions."""

from .validate import CellScore, ValidationResult, validate_lab

__all__ = ["CellScore", "ValidationResult", "validate_lab"]
