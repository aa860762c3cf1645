"""The supervision tests' job child: speaks `child_protocol` as the real runner does (config and identity in, the
cancel file, exit codes out), with no model. Run as a script (`supervised_child.py --job-dir DIR`, a fresh process)
or forked from the warm process, which imports it once and calls `main` in each child.

Its behaviour is its job's `model` field: "exit:<code>", "until-cancel", "until-sigterm" or "sleep:<s>" (runs that
long whatever happens, then exits 0); "dump-env" writes its environment to env.json and exits 0. Importing it takes
SUPERVISED_CHILD_IMPORT_S seconds (0 unless set): a warm process slow to get ready.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

from epochscope_trainer.child_protocol import (
    ChildExit,
    cancel_requested,
    read_identity,
    read_job_config,
    read_job_inputs,
)

time.sleep(float(os.environ.get("SUPERVISED_CHILD_IMPORT_S", "0")))


def main(argv: list[str]) -> None:
    job_dir = Path(argv[argv.index("--job-dir") + 1])
    config = read_job_config(job_dir)
    inputs = read_job_inputs(job_dir)
    seen = {"identity": read_identity(), "dataset": inputs.train.key, "model": inputs.model.source}
    (job_dir / "seen.json").write_text(json.dumps(seen))
    mode = config.model
    if mode == "dump-env":
        (job_dir / "env.json").write_text(json.dumps(dict(os.environ)))
        sys.exit(ChildExit.FINISHED)
    if mode.startswith("exit:"):
        time.sleep(0.3)
        sys.exit(int(mode.split(":")[1]))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(ChildExit.INTERRUPTED))
    (job_dir / "started").touch()
    if mode.startswith("sleep:"):
        time.sleep(float(mode.split(":")[1]))
        sys.exit(ChildExit.FINISHED)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if mode == "until-cancel" and cancel_requested(job_dir):
            sys.exit(ChildExit.FINISHED)
        time.sleep(0.02)
    sys.exit(9)


if __name__ == "__main__":
    main(sys.argv[1:])
