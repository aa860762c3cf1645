# syntax=docker/dockerfile:1
# The API image: epochscope-api, epochscope-schemas, epochscope-runtime and epochscope-db, no torch. Also runs the
# migrations (epochscope-migrate, from epochscope-db) and exports the OpenAPI document.
# Build from the repository root:
#   docker build -f deploy/api.Dockerfile -t epochscope-api .
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS wheels
WORKDIR /src
COPY schemas/ schemas/
COPY runtime/ runtime/
COPY db/ db/
COPY services/api/ services/api/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ./schemas ./runtime ./db ./services/api

FROM python:${PYTHON_VERSION}-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --system --uid 10001 --user-group --home-dir /app --create-home epochscope
COPY --from=wheels /wheels /wheels
# The wheels' own dependencies only; the image must never carry torch.
RUN pip install /wheels/*.whl \
 && rm -rf /wheels \
 && python -c "import epochscope_api.main, epochscope_db.migrate, obstore, pyarrow" \
 && ! python -c "import torch" 2>/dev/null
USER 10001
WORKDIR /app
ENV EPOCHSCOPE_API_HOST=0.0.0.0 \
    EPOCHSCOPE_API_PORT=8000
EXPOSE 8000
CMD ["epochscope-api"]
