"""A job's training method (`method`): which TRL trainer the job runs. SFT is the default; every other method
(DPO, GRPO) is one more model here with its own `type`, joined into `MethodConfig` as a discriminated union."""

from typing import Literal

from pydantic import BaseModel, ConfigDict


class SftMethod(BaseModel):
    """Supervised fine-tuning (TRL's SFTTrainer) on chat, prompt/completion or text rows."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["sft"] = "sft"


MethodConfig = SftMethod  # one method so far: a union with a `type` discriminator once there are two
