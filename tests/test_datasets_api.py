"""Datasets through the real local stack: uploads in each format with their reports and token counts (checked
against transformers on the tiny model), malformed rows, limits, undecodable files, row pages, ownership, delete.
"""

import hashlib
import io
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from api_rows import admin_fixture, auth, insert_job  # noqa: F401  fixture
from conftest import UPLOAD_MAX_BYTES

from epochscope_runtime.dataset_rows import Example, file_type_of, read_rows
from epochscope_runtime.sampler import to_sample

pytestmark = pytest.mark.stack


def chat(i: int) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "Answer with one word."},
            {"role": "user", "content": f"What is the capital of France? question {i}"},
            {"role": "assistant", "content": f"Paris {i}"},
        ]
    }


def jsonl(rows: list[Any]) -> bytes:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows).encode()


def parquet(columns: dict[str, list[Any]]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer, row_group_size=4)
    return buffer.getvalue()


FILES: dict[str, tuple[str, bytes]] = {
    "jsonl chat": ("chat.jsonl", jsonl([chat(i) for i in range(9)])),
    "jsonl prompt/completion": (
        "pc.ndjson",
        jsonl([{"prompt": f"hello {i} plus {i}", "completion": f"{2 * i} answer"} for i in range(7)]),
    ),
    "jsonl conversational": (
        "conv.jsonl",
        jsonl(
            [
                {
                    "prompt": [{"role": "user", "content": f"question {i}?"}],
                    "completion": [{"role": "assistant", "content": f"answer {i}"}],
                }
                for i in range(6)
            ]
        ),
    ),
    "jsonl text": ("text.jsonl", jsonl([{"text": f"hello world {i} times {i}"} for i in range(5)])),
    "csv": (
        "data.csv",
        b'prompt,completion\r\n"two\nlines",one\r\nhello,"a, b"\r\nworld 42,equals\r\n\r\nplus,minus\r\n',
    ),
    "parquet": (
        "data.parquet",
        parquet({"messages": [chat(i)["messages"] for i in range(11)], "note": [f"n{i}" for i in range(11)]}),
    ),
}


@pytest.fixture(name="tokenizer", scope="module")
def tokenizer_fixture(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def expected(data: bytes, filename: str, tokenizer: Any) -> dict[str, Any]:
    """Rows, usable rows and token counts by the trainer's own means: read_rows, apply_chat_template, tokenizer."""
    items = list(read_rows(io.BytesIO(data), file_type_of(filename)))  # type: ignore[arg-type]
    examples = [item for item in items if isinstance(item, Example)]
    prompts, completions = [], []
    for example in examples:
        sample = to_sample(example, 0)
        prompt = (
            tokenizer.apply_chat_template(sample.messages, tokenize=False, add_generation_prompt=True)
            if sample.messages is not None
            else sample.text
        )
        prompts.append(len(tokenizer(prompt, add_special_tokens=False)["input_ids"]))
        completions.append(len(tokenizer(sample.ground_truth or "", add_special_tokens=False)["input_ids"]))
    return {
        "rows": len(items),
        "examples": examples,
        "tokens": {
            "prompt_tokens": sum(prompts),
            "completion_tokens": sum(completions),
            "max_prompt_tokens": max(prompts),
            "max_completion_tokens": max(completions),
            "template_errors": 0,
        },
    }


async def upload(client: httpx.AsyncClient, stack: Any, user: str, filename: str, data: bytes) -> httpx.Response:
    return await client.post("/v1/datasets", headers=auth(stack, user), files={"file": (filename, data)})


def store_files(stack: Any) -> set[str]:
    root = Path(stack.env["EPOCHSCOPE_STORE_LOCAL_DIR"])
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def user() -> str:
    return f"ds-{uuid.uuid4().hex[:8]}"


@pytest.fixture(name="client")
async def client_fixture(full_stack: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=60) as client:
        yield client


async def all_rows(client: httpx.AsyncClient, stack: Any, owner: str, dataset_id: str) -> list[dict[str, Any]]:
    rows, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = await client.get(f"/v1/datasets/{dataset_id}/rows", headers=auth(stack, owner), params=params)
        assert page.status_code == 200, page.text
        rows += page.json()["items"]
        if not (cursor := page.json()["next_cursor"]):
            return rows


@pytest.mark.parametrize("case", list(FILES))
async def test_each_format_reports_rows_tokens_and_pages(
    case: str, full_stack: Any, client: httpx.AsyncClient, tokenizer: Any
) -> None:
    filename, data = FILES[case]
    owner = user()
    want = expected(data, filename, tokenizer)
    response = await upload(client, full_stack, owner, filename, data)
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["filename"] == filename
    assert dataset["file_type"] == file_type_of(filename)
    assert dataset["row_format"] == want["examples"][0].format
    assert (dataset["bytes"], dataset["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert (dataset["rows"], dataset["usable_rows"]) == (want["rows"], len(want["examples"]))
    assert dataset["report"]["tokens"] == {"tiny": want["tokens"]}
    read = await client.get(f"/v1/datasets/{dataset['dataset_id']}", headers=auth(full_stack, owner))
    assert read.status_code == 200 and read.json() == dataset

    rows = await all_rows(client, full_stack, owner, dataset["dataset_id"])
    samples = [to_sample(example, 0) for example in want["examples"]]
    assert [row["line"] for row in rows] == [example.row + 1 for example in want["examples"]]
    assert [row["sample_id"] for row in rows] == [sample.sample_id for sample in samples]
    assert [row["prompt"] for row in rows] == [sample.messages or sample.text for sample in samples]
    assert [row["ground_truth"] for row in rows] == [sample.ground_truth for sample in samples]


async def test_malformed_rows_are_reported_with_their_lines(full_stack: Any, client: httpx.AsyncClient) -> None:
    lines = [chat(0), "not json", {"text": "a text row in a chat dataset"}, "", chat(1), {"messages": []}, "[1, 2]"]
    data = jsonl(lines) + b"\xff\xfe not utf-8\n" + jsonl([chat(2)])
    response = await upload(client, full_stack, user(), "mixed.jsonl", data)
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert (dataset["rows"], dataset["usable_rows"]) == (8, 3)  # the blank line is not a row
    report = dataset["report"]
    assert report["malformed"] == 5
    assert report["malformed_by_reason"] == {
        "not JSON": 1,
        "a text row in a chat dataset": 1,
        "messages is not a non-empty list of messages": 1,
        "not an object": 1,
        "not valid UTF-8": 1,
    }
    assert [(m["line"], m["reason"]) for m in report["malformed_examples"]] == [
        (2, "not JSON"),
        (3, "a text row in a chat dataset"),
        (6, "messages is not a non-empty list of messages"),
        (7, "not an object"),
        (8, "not valid UTF-8"),
    ]


async def test_an_oversized_upload_is_413_and_leaves_nothing(
    full_stack: Any, client: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    owner, before = user(), store_files(full_stack)
    row = json.dumps(chat(0)).encode() + b"\n"
    boundary = "bigboundary"

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: the limit is enforced as bytes arrive
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n\r\n'.encode()
        for _ in range(UPLOAD_MAX_BYTES // (64 * len(row)) + 2):
            yield row * 64
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {**auth(full_stack, owner), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    response = await client.post("/v1/datasets", headers=headers, content=streamed())
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == f"the upload exceeds the limit of {UPLOAD_MAX_BYTES} bytes (2 MiB)"
    # With a Content-Length over the limit it is refused before any byte is stored.
    too_big = await upload(client, full_stack, owner, "big.jsonl", row * (UPLOAD_MAX_BYTES // len(row) + 100))
    assert too_big.status_code == 413
    assert store_files(full_stack) == before
    assert await admin.fetchval("SELECT count(*) FROM datasets WHERE owner_id = $1", owner) == 0


@pytest.mark.parametrize(
    ("filename", "data", "detail"),
    [
        ("bad.jsonl", b"not json\n[1]\n\n", "file: no usable row: not JSON (1 row), not an object (1 row)"),
        ("empty.jsonl", b"\n\n", "file: no usable row: the file has no rows"),
        ("bad.csv", b"prompt,completion\nq\xff,a\n", "file: not valid UTF-8 text"),
        ("bad.parquet", b"PAR1 this is not parquet", "file: not a valid Parquet file"),
        ("data.txt", b'{"text": "hi"}\n', "file: 'data.txt': the name must end in .jsonl, .ndjson, .csv or .parquet"),
    ],
)
async def test_an_unusable_file_is_422_and_leaves_nothing(
    filename: str, data: bytes, detail: str, full_stack: Any, client: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    owner, before = user(), store_files(full_stack)
    response = await upload(client, full_stack, owner, filename, data)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(detail)
    assert store_files(full_stack) == before
    assert await admin.fetchval("SELECT count(*) FROM datasets WHERE owner_id = $1", owner) == 0


async def test_a_request_without_a_file_part_is_422(full_stack: Any, client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/datasets", headers=auth(full_stack, user()), files={"other": ("a.jsonl", b"")})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("file: missing")
    response = await client.post("/v1/datasets", headers=auth(full_stack, user()), json={"file": "x"})
    assert response.status_code == 422 and response.json()["detail"].startswith("file:")


async def test_the_filename_is_cleaned(full_stack: Any, client: httpx.AsyncClient) -> None:
    name = "../../etc/\x1b[31m" + "x" * 300 + ".jsonl"
    response = await upload(client, full_stack, user(), name, jsonl([chat(0)]))
    assert response.status_code == 201, response.text
    cleaned = response.json()["filename"]
    assert cleaned.endswith(".jsonl") and len(cleaned) == 200 and "/" not in cleaned and "\x1b" not in cleaned


async def test_another_users_dataset_is_404(full_stack: Any, client: httpx.AsyncClient) -> None:
    alice, bob = user(), user()
    dataset = (await upload(client, full_stack, alice, "a.jsonl", jsonl([chat(0)]))).json()
    paths = [f"/v1/datasets/{dataset['dataset_id']}", f"/v1/datasets/{dataset['dataset_id']}/rows"]
    for method, path in [("GET", paths[0]), ("GET", paths[1]), ("DELETE", paths[0])]:
        response = await client.request(method, path, headers=auth(full_stack, bob))
        assert response.status_code == 404 and response.json()["detail"] == "dataset not found", path
        assert (await client.request(method, path)).status_code == 401
    assert (await client.get("/v1/datasets", headers=auth(full_stack, bob))).json()["items"] == []
    assert (await client.get(paths[0], headers=auth(full_stack, alice))).status_code == 200


async def test_list_pages_newest_first(full_stack: Any, client: httpx.AsyncClient) -> None:
    owner = user()
    ids = [
        (await upload(client, full_stack, owner, f"d{i}.jsonl", jsonl([chat(i)]))).json()["dataset_id"]
        for i in range(5)
    ]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/datasets", headers=auth(full_stack, owner), params=params)).json()
        assert len(page["items"]) <= 2
        seen += [item["dataset_id"] for item in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == ids[::-1]
    bad = await client.get("/v1/datasets", headers=auth(full_stack, owner), params={"cursor": "nope"})
    assert bad.status_code == 422


async def test_delete_is_refused_while_a_queued_job_uses_it(
    full_stack: Any, client: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    owner = user()
    dataset = (await upload(client, full_stack, owner, "train.jsonl", jsonl([chat(0), chat(1)]))).json()
    ours = {path for path in store_files(full_stack) if dataset["dataset_id"] in path}
    assert len(ours) == 2  # the file and its row index
    job_id = await insert_job(admin, owner, status="queued")
    await admin.execute(
        "INSERT INTO job_datasets (job_id, dataset_id, owner_id, role) VALUES ($1, $2, $3, 'train')",
        job_id,
        uuid.UUID(dataset["dataset_id"]),
        owner,
    )
    path = f"/v1/datasets/{dataset['dataset_id']}"
    refused = await client.delete(path, headers=auth(full_stack, owner))
    assert refused.status_code == 409 and str(job_id) in refused.json()["detail"]
    assert ours <= store_files(full_stack)
    await admin.execute("UPDATE jobs SET status = 'completed' WHERE job_id = $1", job_id)
    assert (await client.delete(path, headers=auth(full_stack, owner))).status_code == 204
    assert not ours & store_files(full_stack)
    assert (await client.get(path, headers=auth(full_stack, owner))).status_code == 404
    assert all(p.endswith((".jsonl", ".jsonl.index")) for p in ours)
