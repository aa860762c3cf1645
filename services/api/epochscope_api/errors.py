"""Domain errors: what the data layer raises when a request cannot be served, with no HTTP in them.

main.py maps each one to its HTTP response in one place; `str(error)` is the message a client sees.
"""


class DomainError(Exception):
    """Base of every error the data layer raises for a client to see."""


class JobNotFound(DomainError):
    """No such job for the current user: row-level security hides other users' jobs, so theirs read as none."""

    def __init__(self) -> None:
        super().__init__("job not found")


class SampleNotFound(DomainError):
    """The job has no prediction for this sample."""

    def __init__(self) -> None:
        super().__init__("sample not found")


class BadCursor(DomainError):
    """A cursor (or Last-Event-ID) this API did not make; `name` says which parameter held it."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name}: not a cursor from this API")


class UnknownDatasets(DomainError):
    """Job config fields naming a dataset the current user does not have (another user's reads the same)."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__(f"dataset not found: {', '.join(fields)}")
        self.fields = fields
