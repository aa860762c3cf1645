"""A job's training method (`method`): which TRL trainer the job runs. SFT is the default; every other method
(DPO, GRPO) is one more model here with its own `type`, joined into `MethodConfig` as a discriminated union."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SftMethod(BaseModel):
    """Supervised fine-tuning (TRL's SFTTrainer) on chat, prompt/completion or text rows."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["sft"] = "sft"
    train_on: Literal["answers", "all"] = Field(
        default="answers",
        description="The tokens the loss covers: `answers` (a chat row's assistant turns, a prompt/completion "
        "row's completion, a text row's whole text) or `all` (every token of every row).",
    )
    assistant_turns: Literal["all", "last"] = Field(
        default="all",
        description="With `train_on: answers`, which assistant turns of a chat row are trained on: every one "
        "(less those with `weight: 0`) or the last only.",
    )


MethodConfig = SftMethod  # one method so far: a union with a `type` discriminator once there are two
