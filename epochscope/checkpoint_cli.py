"""`epochscope checkpoint download JOB [ROUND|best|final] -o DIR`: a job's checkpoint from the API, with a progress
bar, unpacked into DIR and checked file by file against the SHA-256s the trainer recorded."""

import argparse
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import IO, Any

import httpx
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

CHUNK = 1 << 20


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("checkpoint", help="download a job's checkpoint")
    actions = parser.add_subparsers(dest="action", required=True)
    download = actions.add_parser("download", help="download a checkpoint into a folder")
    download.add_argument("job", help="the job id")
    download.add_argument("which", nargs="?", default="best", help="a round index, best (default) or final")
    download.add_argument("-o", "--output", type=Path, required=True, help="the folder to unpack it into")
    download.add_argument("--api", default=os.environ.get("EPOCHSCOPE_API_URL", "http://127.0.0.1:8000"))
    download.add_argument("--token", default=os.environ.get("EPOCHSCOPE_TOKEN"), help="default: $EPOCHSCOPE_TOKEN")


def pick(items: list[dict[str, Any]], which: str) -> dict[str, Any] | None:
    """The checkpoint `which` names: a round index, best or final."""
    if which == "best":
        return next((c for c in items if c["best"]), None)
    if which == "final":
        return next((c for c in items if c["final"]), None)
    return next((c for c in items if str(c["round_index"]) == which), None)


def download(args: argparse.Namespace) -> int:
    if not args.token:
        print("epochscope: give --token or set EPOCHSCOPE_TOKEN (epochscope token --user <you>)", file=sys.stderr)
        return 1
    headers = {"Authorization": f"Bearer {args.token}"}
    with httpx.Client(base_url=args.api, headers=headers, timeout=60) as client:
        listed = client.get(f"/v1/jobs/{args.job}/checkpoints")
        if listed.status_code != 200:
            print(f"epochscope: {listed.status_code} {listed.text[:200]}", file=sys.stderr)
            return 1
        checkpoint = pick(listed.json()["items"], args.which)
        if checkpoint is None:
            print(f"epochscope: job {args.job} has no {args.which} checkpoint", file=sys.stderr)
            return 1
        args.output.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=args.output) as archive:
            url = f"/v1/jobs/{args.job}/checkpoints/{checkpoint['checkpoint_id']}/download"
            with client.stream("GET", url) as response, _progress() as progress:
                if response.status_code != 200:
                    print(f"epochscope: download failed ({response.status_code})", file=sys.stderr)
                    return 1
                task = progress.add_task("checkpoint", total=int(response.headers.get("content-length", 0)) or None)
                for chunk in response.iter_bytes(CHUNK):
                    archive.write(chunk)
                    progress.advance(task, len(chunk))
            archive.seek(0)
            try:
                folder = extract_checkpoint(archive, args.output, checkpoint)
            except (ValueError, tarfile.TarError) as exc:
                print(f"epochscope: {exc}", file=sys.stderr)
                return 1
    for file in checkpoint["files"]:
        if _sha256(folder / file["name"]) != file["sha256"]:
            print(f"epochscope: {file['name']} does not match its SHA-256", file=sys.stderr)
            return 1
    print(f"{folder} ({checkpoint['bytes']} bytes, {len(checkpoint['files'])} files checked)")
    return 0


def extract_checkpoint(archive: IO[bytes], output: Path, checkpoint: dict[str, Any]) -> Path:
    """Unpack the API's tar into output/<round-N|final>/: only the checkpoint's listed files, as regular files.

    Any other member (another name, a link, a device, a path that climbs out) is refused, which is what tarfile's
    "data" filter guards against; that filter is missing from Python before 3.11.4.
    """
    folder_name = "final" if checkpoint["final"] else f"round-{checkpoint['round_index']}"
    folder = output / folder_name
    expected = {f"{folder_name}/{file['name']}": file["name"] for file in checkpoint["files"]}
    with tarfile.open(fileobj=archive, mode="r:") as tar:
        for member in tar:
            name = expected.pop(member.name, None)
            if name is None or not member.isfile() or ".." in PurePosixPath(name).parts or name.startswith("/"):
                raise ValueError(f"the archive holds an unexpected member {member.name!r}")
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as source, target.open("wb") as sink:  # type: ignore[union-attr]
                shutil.copyfileobj(source, sink, CHUNK)
    if expected:
        raise ValueError(f"the archive lacks {sorted(expected.values())}")
    return folder


def _progress() -> Progress:
    return Progress(BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=True)


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
