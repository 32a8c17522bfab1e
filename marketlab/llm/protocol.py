"""The slice of OpenAI's chat-completions request the local server accepts, and its error shape."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import MarketlabError

# Fields the OpenAI API defines that the local model has no use for: accepted and ignored,
# so that code written for OpenAI runs unchanged. Anything else is rejected with a 400.
IGNORED_FIELDS = frozenset(
    {"store", "metadata", "logit_bias", "service_tier", "parallel_tool_calls",
     "modalities", "prediction", "reasoning_effort", "verbosity", "safety_identifier",
     "prompt_cache_key", "web_search_options"}
)
UNSUPPORTED_FIELDS = {
    "tools": "tool calling", "tool_choice": "tool calling", "functions": "function calling",
    "function_call": "function calling", "logprobs": "log probabilities",
    "top_logprobs": "log probabilities", "audio": "audio output",
}


class OpenAIError(MarketlabError):
    """An error the server answers with OpenAI's JSON error shape (the message says what to change)."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.param, self.code = status, type, param, code

    def body(self) -> dict[str, Any]:
        """The JSON body OpenAI sends for this error."""
        return {"error": {"message": self.problem, "type": self.type, "param": self.param, "code": self.code}}

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_openai_error, (self.status, self.problem, self.type, self.param, self.code))


def server_stopping() -> OpenAIError:
    """The 503 a request gets when the server is stopped while it generates."""
    return OpenAIError(503, "The built-in model server was stopped (`marketlab serve --stop`) while it wrote "
                       "this reply, so the reply was cut off and not sent. Run the cell again: the server "
                       "starts again by itself.", type="server_error", code="server_stopping")


def _rebuild_openai_error(status: int, message: str, type: str, param: str | None, code: str | None) -> OpenAIError:
    return OpenAIError(status, message, type=type, param=param, code=code)


class TextPart(BaseModel):
    """One text part of a message whose content is a list."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        """The message's text, with list content joined."""
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class JsonSchemaSpec(BaseModel):
    """The json_schema member of response_format."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    name: str = "response"
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    """OpenAI's response_format: text, json_object or json_schema."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


class StreamOptions(BaseModel):
    """OpenAI's stream_options."""

    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """A chat-completions request, validated."""

    model_config = ConfigDict(extra="forbid")
    model: str = ""
    messages: list[Message] = Field(min_length=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    # Who asks: the local server queues fairly per user (a hub gateway sets the learner's name).
    user: str | None = Field(None, max_length=256)

    @field_validator("n")
    @classmethod
    def _only_one_choice(cls, n: int) -> int:
        if n != 1:
            raise ValueError("the local model returns one choice per request; send n=1 or leave n out")
        return n

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        return stop

    def stops(self) -> list[str]:
        """Stop sequences as a list."""
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def token_limit(self) -> int | None:
        """The requested completion length, whichever name the caller used."""
        return self.max_completion_tokens or self.max_tokens


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate a decoded JSON body, raising OpenAIError with the offending parameter."""
    if not isinstance(body, dict):
        raise OpenAIError(400, "The request body must be a JSON object.")
    for name, feature in UNSUPPORTED_FIELDS.items():
        if body.get(name) not in (None, False, [], 0):
            raise OpenAIError(400, f"The local model does not support {feature} ('{name}').", param=name,
                              code="unsupported_parameter")
    known = set(ChatRequest.model_fields) | IGNORED_FIELDS | set(UNSUPPORTED_FIELDS)
    for name in body:
        if name not in known:
            raise OpenAIError(400, f"Unrecognized request argument supplied: {name}", param=name,
                              code="unknown_parameter")
    cleaned = {k: v for k, v in body.items() if k in ChatRequest.model_fields}
    try:
        return ChatRequest.model_validate(cleaned)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise OpenAIError(400, f"Invalid value for '{param}': {first['msg']}", param=param,
                          code="invalid_value") from None
