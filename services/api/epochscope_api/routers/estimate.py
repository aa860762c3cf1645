"""What a whole job will cost (training and prediction rounds), and exactly which rows its rounds will ask about: for
clients, the job form and the demo."""

import uuid

from fastapi import APIRouter

from epochscope_api.data.datasets import StoredDataset, fetch_dataset
from epochscope_api.datasets.row_index import read_examples
from epochscope_api.datasets.token_counts import TokenCounter
from epochscope_api.deps import WRITE_LIMITED, SettingsDep, StoreDep, TokenCountersDep, UserConn
from epochscope_api.errors import DatasetNotFound, UnknownDatasets
from epochscope_api.http.errors import QUOTA
from epochscope_api.jobs.estimate import Estimate, EstimateRequest, SamplePreview, estimate
from epochscope_api.jobs.training_estimate import RowTokens
from epochscope_api.jobs.validation import check_job_config, check_job_work, unknown_datasets
from epochscope_runtime.sampler import Sample, sample_positions, to_sample

router = APIRouter(prefix="/v1/predictions", tags=["predictions"])


@router.post(
    "/estimate",
    response_model=Estimate,
    responses=QUOTA,
    dependencies=WRITE_LIMITED,  # reads and tokenizes stored rows: rate-limited as a write
    operation_id="estimate_predictions",
)
async def estimate_predictions(
    request: EstimateRequest, conn: UserConn, settings: SettingsDep, store: StoreDep, counters: TokenCountersDep
) -> Estimate:
    """For a job config as POST /v1/jobs takes it, the whole job: its training (steps, the tokens its updates read
    from the dataset's stored token counts, GRPO's generated tokens per step and in all, time) and its prediction
    rounds (the prediction set, by the trainer's own sampler; rounds, the baseline included; prompt tokens with the
    model's tokenizer; an upper bound of generated tokens; time), the total time and price, and the rounds' share."""
    config = request.config
    model = check_job_config(config, settings)
    train = await _dataset(conn, "dataset_id", config.dataset_id)
    source = train
    if config.predictions.samples_dataset_id is not None:
        source = await _dataset(conn, "predictions.samples_dataset_id", config.predictions.samples_dataset_id)
    train_rows = train.rows_for(config.method.type)
    check_job_work(config, train_rows, source.usable_rows, settings)
    samples: list[SamplePreview] = []
    if config.predictions.enabled:
        positions = sample_positions(source.usable_rows, config.predictions.sample_count, config.predictions.seed)
        examples = await read_examples(store, source, positions)
        counter = counters.get(model.id)
        samples = [_preview(to_sample(example, index), example.row, counter) for index, example in enumerate(examples)]
    tokens = RowTokens.of(train.usable_rows, train.report.get("tokens", {}).get(model.id))
    return estimate(config, train_rows, samples, model, settings.estimate_price_per_hour, tokens)


async def _dataset(conn: UserConn, field: str, dataset_id: uuid.UUID) -> StoredDataset:
    try:
        return await fetch_dataset(conn, dataset_id)
    except DatasetNotFound:
        raise unknown_datasets(UnknownDatasets([field])) from None


def _preview(sample: Sample, row: int, counter: TokenCounter | None) -> SamplePreview:
    return SamplePreview(
        sample_id=sample.sample_id,
        line=row + 1,
        prompt=sample.messages if sample.messages is not None else sample.text or "",
        ground_truth=sample.ground_truth,
        prompt_tokens=counter.count_prompt(sample) if counter else None,
    )
