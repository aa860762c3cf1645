"""Submitting an OpenAI job request: its files parsed, mapped onto an Epochscope job config, and submitted by the
same use case as POST /v1/jobs; Epochscope's field errors come back naming the request's fields."""

import asyncpg
from fastapi.exceptions import RequestValidationError

from epochscope_api.errors import UnknownDatasets
from epochscope_api.openai_compat.errors import OpenAIError
from epochscope_api.openai_compat.ids import FILE, parse_id
from epochscope_api.openai_compat.job_config import job_config, openai_param
from epochscope_api.openai_compat.requests import JobCreateRequest
from epochscope_api.response_models import Job
from epochscope_api.service_layer import jobs
from epochscope_api.settings import ApiSettings


async def submit_openai_job(
    conn: asyncpg.Connection, user_id: str, request: JobCreateRequest, settings: ApiSettings
) -> Job:
    method_type = request.method.type if request.method else "supervised"
    training = parse_id(FILE, request.training_file, param="training_file")
    validation = parse_id(FILE, request.validation_file, param="validation_file") if request.validation_file else None
    config = job_config(request, training, validation, method_type)
    try:
        return await jobs.submit_job(conn, user_id, config, settings)
    except UnknownDatasets as error:
        param = openai_param(tuple(error.fields[0].split(".")), method_type)
        raise OpenAIError(400, f"file not found: {param}", param=param, code="file_not_found") from None
    except RequestValidationError as error:
        first = error.errors()[0]
        param = openai_param(tuple(first["loc"][1:]), method_type)
        raise OpenAIError(400, f"{param}: {first['msg']}", param=param, code="invalid_value") from None
