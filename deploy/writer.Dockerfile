# syntax=docker/dockerfile:1
# The writer image: epochscope-writer, epochscope-schemas and epochscope-runtime, no torch. Build from the repository root:
#   docker build -f deploy/writer.Dockerfile -t epochscope-writer .
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS wheels
WORKDIR /src
COPY schemas/ schemas/
COPY runtime/ runtime/
COPY services/writer/ services/writer/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ./schemas ./runtime ./services/writer

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
 && python -c "import epochscope_writer.main" \
 && ! python -c "import torch" 2>/dev/null
USER 10001
WORKDIR /app
# /healthz, /readyz and /metrics for probes and scraping.
ENV EPOCHSCOPE_WRITER_HEALTH_PORT=8081
EXPOSE 8081
CMD ["epochscope-writer"]
