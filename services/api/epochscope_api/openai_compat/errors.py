"""The error the OpenAI-compatible routes raise: rendered as OpenAI's `{"error": {message, type, param, code}}` with
the status the official SDK maps to its exception classes (400 BadRequestError, 404 NotFoundError, 429
RateLimitError...)."""


class OpenAIError(Exception):
    """A request the OpenAI-compatible surface refuses; `param` names the request field at fault, if one is."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.param = param
        self.code = code
        self.type = type

    def body(self) -> dict[str, dict[str, str | None]]:
        """The JSON body OpenAI's API returns for this error."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
