"""The `reinforcement` method's mapping onto a GRPO method and the job's graders. Placeholder until the grader
translation lands (engineer "oaigr" owns this module): every reinforcement job is refused, naming the method."""

from epochscope_api.openai_compat.errors import OpenAIError
from epochscope_schemas.graders import GraderConfig
from epochscope_schemas.methods import GrpoMethod


def reinforcement_job_parts(reinforcement: dict) -> tuple[GrpoMethod, list[GraderConfig]]:
    """The GRPO method and the graders its rewards name, from OpenAI's `method.reinforcement` object."""
    raise OpenAIError(400, "the reinforcement method is not available on this server yet", param="method.type")
