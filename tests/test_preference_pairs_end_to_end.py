"""The loop on the real local stack with the tiny model: an SFT job runs, its last round's answers are judged (one
corrected), preference pairs are built from them, and a DPO job trains on those pairs to the end."""

from typing import Any

import httpx
import pytest
from test_end_to_end import headers, job_config, uploaded, wait_for_final_status

pytestmark = pytest.mark.stack


async def test_pairs_from_a_judged_job_train_a_dpo_job(full_stack: Any) -> None:
    token = full_stack.mint_token("looper")
    dataset_id = await uploaded(full_stack, "looper")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=60, headers=headers(token)) as c:
        sft = await c.post("/v1/jobs", json=job_config(dataset_id, {"enabled": True, "sample_count": 3}))
        assert sft.status_code == 201, sft.text
        job = await wait_for_final_status(c, sft.json()["job_id"], token)
        assert job["status"] == "completed", job
        job_id = job["job_id"]
        answers = (await c.get(f"/v1/jobs/{job_id}/predictions")).json()["items"]
        last = [p for p in answers if p["round_index"] == max(a["round_index"] for a in answers)]
        for index, prediction in enumerate(last):
            body = {"good": False, "correction": "A corrected answer." if index == 0 else None}
            path = f"/v1/jobs/{job_id}/predictions/{prediction['step']}/{prediction['sample_id']}/verdict"
            assert (await c.put(path, json=body)).status_code == 201
        built = await c.post(f"/v1/jobs/{job_id}/preference-pairs", json={"grader": "human"})
        assert built.status_code == 201, built.text
        pairs = built.json()
        assert pairs["usable_rows"] == len(last) and pairs["provenance"]["job_id"] == job_id

        dpo_config = job_config(pairs["dataset_id"], {"enabled": True, "sample_count": 2}) | {
            "method": {"type": "dpo"},
            "num_epochs": 1,
            "batch_size": 2,
        }
        dpo = await c.post("/v1/jobs", json=dpo_config)
        assert dpo.status_code == 201, dpo.text
        finished = await wait_for_final_status(c, dpo.json()["job_id"], token)
    assert finished["status"] == "completed", finished
