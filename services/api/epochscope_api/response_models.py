"""Response bodies of the REST API (request bodies are the shared models in epochscope_schemas)."""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from epochscope_api.preference_models import DatasetProvenance
from epochscope_runtime.dataset_rows import FileType, RowFormat
from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import JobStatus, PredictionScores, RewardProgress, RoundTrigger
from epochscope_schemas.graders import Grade


class ProgressPoint(BaseModel):
    """Training progress at one step: a point of the loss chart; the latest one is the progress bar."""

    step: int
    max_steps: int
    epoch: float
    loss: float | None = Field(description="Training loss; null when not logged at this step or not finite.")
    learning_rate: float | None
    samples_per_second: float | None
    rewards: dict[str, RewardProgress] | None = Field(
        default=None, description="GRPO: each reward component's mean score and pass rate by grader name; else null."
    )
    reward: float | None = Field(default=None, description="GRPO: the mean total reward; null for SFT.")
    chosen_reward: float | None = Field(default=None, description="DPO: the chosen answers' mean implicit reward.")
    rejected_reward: float | None = Field(default=None, description="DPO: the rejected answers' mean implicit reward.")
    reward_margin: float | None = Field(default=None, description="DPO: chosen minus rejected reward, the mean.")
    reward_accuracy: float | None = Field(
        default=None, description="DPO: the fraction of pairs whose chosen answer has the higher reward."
    )
    occurred_at: datetime


class Job(BaseModel):
    job_id: UUID
    name: str | None = Field(default=None, description="The job's name from its config; null without one.")
    metadata: dict[str, str] = Field(default_factory=dict, description="The job's key/value tags from its config.")
    status: JobStatus
    status_message: str | None
    config: JobConfig
    metrics: dict[str, float]
    progress: ProgressPoint | None = Field(description="The latest progress the trainer reported; null before.")
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    queue_position: int | None = Field(
        default=None, description="While queued: its place in line (1 = the next to start), as the dispatcher serves."
    )
    estimated_start_seconds: float | None = Field(
        default=None, description="While queued: about how many seconds until it starts; null with no live trainer."
    )
    estimated_finish: datetime | None = Field(
        default=None,
        description="While running: when it should finish, at its pace so far (from its start to its latest step); "
        "null before its first step and once it ends.",
    )


class JobPage(BaseModel):
    items: list[Job]
    next_cursor: str | None


class GraderRound(BaseModel):
    """One grader over one round."""

    graded: int = Field(description="Predictions the grader scored (those it needs a ground truth for, with one).")
    passed: int
    pass_rate: float | None = Field(description="passed / graded; null when nothing was graded.")
    mean_score: float | None


class RoundSummary(BaseModel):
    """One prediction round. Its metrics are the trainer's summary, the only place a round is judged; until the
    summary arrives (`summarized` false) the round has only its place and the predictions stored so far, and every
    metric is null."""

    round_index: int
    epoch: float
    step: int
    trigger: RoundTrigger | None = Field(description="What started the round; null until summarized.")
    summarized: bool = Field(
        description="True: the trainer's round summary. False: in progress (or its summary was lost): predictions are"
        " stored, nothing else is known yet."
    )
    predictions: int = Field(description="Predictions in the round: the summary's count, or those stored so far.")
    validated: int | None = Field(
        description="Predictions with a `valid`: the job has format graders (json_parse, json_schema). Null until"
        " summarized."
    )
    valid: int | None = Field(description="Predictions that passed every format grader; null until summarized.")
    validator_pass_rate: float | None = Field(
        description="valid / validated; null until summarized, or when nothing was validated."
    )
    scored: int | None = Field(description="Predictions scored against a ground truth; null until summarized.")
    mean_exact_match: float | None = Field(description="Null until summarized, or when nothing was scored.")
    mean_f1: float | None = Field(description="Null until summarized, or when nothing was scored.")
    mean_rouge_l: float | None = Field(description="Null until summarized, or when nothing was scored.")
    graders: dict[str, GraderRound] | None = Field(
        description="Each grader's count, passes, pass rate and mean score in the round; null until summarized."
    )
    tokens: int | None = Field(description="Tokens generated in the round; null until summarized.")
    wall_ms: float | None = Field(description="Round wall time; null until summarized.")
    stall_ms: float | None = Field(description="How long training waited for the round; null until summarized.")
    occurred_at: datetime = Field(description="When the round was summarized, or its latest prediction was stored.")


class RoundList(BaseModel):
    items: list[RoundSummary] = Field(description="In round order, after after_round; bounded in rows and bytes.")
    has_more: bool = Field(default=False, description="More rounds exist: ask again with after_round = the last one.")


class JobWarning(BaseModel):
    """Something the trainer reported that did not stop training."""

    warning_id: UUID
    code: str
    message: str
    occurred_at: datetime


class JobDetail(Job):
    """A job with its per-round summary and the warnings reported so far (oldest first)."""

    rounds: list[RoundSummary]
    warnings: list[JobWarning]
    best_round: int | None = Field(
        default=None,
        description="The round with the highest value of the job's checkpoint metric (predictions.checkpoints.metric;"
        " the earliest on a tie); null before any round has a value.",
    )


class CheckpointFileInfo(BaseModel):
    name: str
    bytes: int
    sha256: str


class HumanRanking(BaseModel):
    """A checkpoint's round as the user judged it (the `human` grader)."""

    graded: int = Field(description="Verdicts on the round's predictions.")
    passed: int = Field(description="Of them, good.")
    pass_rate: float
    lower_bound: float = Field(description="The Wilson 95% interval's low end of the pass rate: what ranks.")


class Checkpoint(BaseModel):
    """The weights behind one round (or the final weights), kept in the object store."""

    checkpoint_id: UUID
    round_index: int | None = Field(description="The round; null for the final weights.")
    step: int
    epoch: float
    final: bool
    bytes: int = Field(description="All files together; the download is a tar of them.")
    sha256: str = Field(description="Of the files' names and SHA-256s, one 'name sha256' line each, in order.")
    files: list[CheckpointFileInfo]
    metrics: dict[str, float | None] = Field(description="The round's metrics by name.")
    best: bool = Field(description="The best round checkpoint by the list's `metric`.")
    human: HumanRanking | None = Field(
        default=None, description="With rank_by=human: the user's verdicts on the round; null without any."
    )
    save_ms: float = Field(description="Writing the weights to the trainer's disk.")
    stall_ms: float | None = Field(
        description="How long training waited for the save; null for a background round's (it ran beside training)."
    )
    occurred_at: datetime


class CheckpointList(BaseModel):
    metric: str = Field(
        description="The metric `best` is judged by: the job's predictions.checkpoints.metric, or"
        " `grader_pass_rate:human` with rank_by=human."
    )
    items: list[Checkpoint] = Field(description="Kept checkpoints in round order, the final weights last.")
    best_checkpoint_id: UUID | None


class ProgressHistory(BaseModel):
    items: list[ProgressPoint] = Field(description="In step order.")
    has_more: bool = Field(description="More points exist: ask again with after_step = the last step.")


class Prediction(BaseModel):
    round_index: int
    epoch: float
    step: int
    sample_id: str
    sample_index: int
    prompt: str
    ground_truth: str | None
    prediction: str
    tokens_generated: int
    latency_ms: float
    valid: bool | None = Field(
        description="Passed every format grader (json_parse, json_schema: what validators become); null without one."
    )
    validation_error: str | None = Field(description="The reason of the first format grader it failed.")
    scores: PredictionScores | None = Field(description="Against the ground truth; null without one.")
    grades: dict[str, Grade] = Field(
        default_factory=dict, description="Each grader's score, verdict and reason, by grader name."
    )
    truncated: list[str] = Field(
        default_factory=list,
        description="Texts the trainer cut to its size limit: any of prompt, ground_truth, prediction.",
    )
    created_at: datetime


class PredictionPage(BaseModel):
    items: list[Prediction]
    next_cursor: str | None = Field(description="Continue after this page's last row; null when the page is empty.")
    has_more: bool = Field(description="More rows exist now; a live client keeps next_cursor to ask for newer ones.")


class Rollout(BaseModel):
    """One completion a GRPO training step generated, with each reward component's score, the total and the
    advantage."""

    step: int
    completion_index: int
    prompt: str
    completion: str
    rewards: dict[str, float | None]
    reward: float | None
    advantage: float
    truncated: list[str]
    occurred_at: datetime


class RolloutPage(BaseModel):
    items: list[Rollout]
    next_cursor: str | None = Field(description="Continue after this page's last row; null when the page is empty.")
    has_more: bool = Field(description="More rows exist now; a live client keeps next_cursor to ask for newer ones.")


class SampleRound(BaseModel):
    round_index: int
    epoch: float
    step: int
    prediction: str
    tokens_generated: int
    latency_ms: float
    valid: bool | None
    validation_error: str | None
    scores: PredictionScores | None
    grades: dict[str, Grade] = Field(
        default_factory=dict, description="Each grader's score, verdict and reason, by grader name."
    )
    truncated: list[str] = Field(default_factory=list, description="Texts cut to the trainer's size limit.")


class SampleHistory(BaseModel):
    """One sample's prompt and ground truth, and its prediction at every round: the comparison view."""

    sample_id: str
    sample_index: int
    prompt: str
    ground_truth: str | None
    rounds: list[SampleRound] = Field(description="In step order, after after_step; a page bounded in rows and bytes.")
    has_more: bool = Field(
        default=False, description="More rounds exist: ask again with after_step = the last round's step."
    )


class ComparedJob(BaseModel):
    """One job of a comparison: what it is, which dataset its samples come from, and its rounds."""

    job_id: UUID
    name: str | None
    status: JobStatus
    config: JobConfig
    samples_dataset_id: UUID = Field(description="The dataset its prediction samples are rows of.")
    samples: int = Field(description="Distinct samples the job has predictions for.")
    rounds: list[RoundSummary] = Field(description="In round order; `epoch` is the shared time axis.")


class ComparedAnswer(BaseModel):
    job_id: UUID
    answer: SampleRound | None = Field(description="The job's latest (or the chosen epoch's) answer; null if none.")


class ComparedSample(BaseModel):
    sample_id: str
    sample_index: int
    prompt: str
    ground_truth: str | None
    answers: list[ComparedAnswer] = Field(description="One per job, in the order of job_ids.")


class Comparison(BaseModel):
    """Jobs side by side: each job's rounds, and their answers on the samples all of them share."""

    jobs: list[ComparedJob]
    same_dataset: bool = Field(description="Every job predicts on rows of the same dataset (else none are shared).")
    shared_samples: int = Field(description="Samples (same dataset, same sample id) every job has predicted.")
    epoch: float | None = Field(description="The epoch whose answers are shown; null: each job's latest.")
    samples: list[ComparedSample]


class SampleJobRounds(BaseModel):
    job_id: UUID
    name: str | None
    same_dataset: bool = Field(description="False: the job predicts on another dataset, so this id is another row.")
    rounds: list[SampleRound]


class SampleAcrossJobs(BaseModel):
    """One sample at every round of every compared job."""

    sample_id: str
    sample_index: int
    prompt: str
    ground_truth: str | None
    jobs: list[SampleJobRounds]


class MalformedRow(BaseModel):
    line: int = Field(description="1-based: the line in a JSONL file, the record (after the header) in CSV/Parquet.")
    reason: str


class TokenTotals(BaseModel):
    """Token counts of the usable rows with one catalog model's tokenizer, as the trainer's generation counts."""

    prompt_tokens: int = Field(description="Sum over usable rows of the rendered prompt's tokens.")
    completion_tokens: int = Field(description="Sum over usable rows of the ground truth's tokens.")
    max_prompt_tokens: int
    max_completion_tokens: int
    template_errors: int = Field(
        default=0, description="Chat rows the model's chat template refused to render (not in the prompt counts)."
    )


class UnusableRows(BaseModel):
    rows: int = Field(description="How many rows are unusable for this reason.")
    first_lines: list[int] = Field(description="The first few of them, 1-based lines or records, in file order.")


class MethodRows(BaseModel):
    """Which rows one training method can use, and why it cannot use the others."""

    usable: int
    unusable: dict[str, UnusableRows] = Field(description="By reason: a malformed row's, or the method's own.")


class DatasetReport(BaseModel):
    malformed: int = Field(description="Rows that cannot be used.")
    malformed_by_reason: dict[str, int]
    malformed_examples: list[MalformedRow] = Field(description="The first malformed rows, in file order.")
    tokens: dict[str, TokenTotals] = Field(description="By catalog model id, for the models with a tokenizer.")
    methods: dict[Literal["sft", "dpo", "grpo"], MethodRows] = Field(
        default_factory=dict,
        description="By training method (`method.type`): its usable rows and why the rest are not (empty for a "
        "dataset uploaded before this report existed).",
    )


class Dataset(BaseModel):
    dataset_id: UUID
    filename: str
    file_type: FileType
    row_format: RowFormat = Field(description="The format of the usable rows (fixed by the first usable row).")
    bytes: int
    sha256: str
    rows: int
    usable_rows: int
    created_at: datetime
    report: DatasetReport
    provenance: DatasetProvenance | None = Field(
        default=None, description="Where the API built it from (preference pairs of a job's rounds); null: uploaded."
    )


class DatasetPage(BaseModel):
    items: list[Dataset]
    next_cursor: str | None


class DatasetRow(BaseModel):
    """A usable row as the trainer reads it: its sample id, its prompt and its ground truth."""

    line: int = Field(description="1-based line (JSONL) or record (CSV, Parquet).")
    sample_id: str
    format: RowFormat
    prompt: list[dict[str, Any]] | str = Field(description="The chat messages before the answer, or the prompt text.")
    ground_truth: str | None


class DatasetRowPage(BaseModel):
    items: list[DatasetRow]
    next_cursor: str | None = Field(description="Continue after this page; null at the end.")
