"""`epochscope-trainer`: consume job-start events and run each job in a child process.

The units: `job_consumer` (the consumer loop), `job_supervisor` (the child process), `cancel_watcher`
(cancel events), `spool_delivery` (events a child left behind), `status_publisher` (the service's own
status events), wired by `bootstrap`. This module only adds signals and retries while the broker is
unreachable.
"""

import asyncio
import logging
import signal
import sys

from aiokafka.errors import KafkaError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_when_event_set,
    wait_exponential_jitter,
)

from epochscope_runtime.log_config import configure_logging
from epochscope_trainer.process_control import set_dumpable
from epochscope_trainer.service.bootstrap import bootstrap, child_launcher
from epochscope_trainer.settings import TrainerSettings

log = logging.getLogger("epochscope.trainer")

RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 10.0


async def serve(settings: TrainerSettings) -> None:
    """Run the service until SIGTERM or SIGINT; a broker outage restarts it with fresh clients, with backoff."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(KafkaError),
        wait=wait_exponential_jitter(multiplier=RETRY_INITIAL_S, max=RETRY_MAX_S),  # plus up to 1 s of jitter
        stop=stop_when_event_set(stopping),  # an asyncio.Event works too: it only calls is_set()
        before_sleep=_log_retry,
        reraise=True,
    )
    launcher = child_launcher(settings)
    try:
        async for attempt in retrying:
            with attempt:
                await bootstrap(settings, stopping, launcher).run()
    except KafkaError:
        if not stopping.is_set():
            raise
    finally:
        await launcher.close()


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    delay = state.next_action.sleep if state.next_action else 0.0
    log.warning("broker unreachable (%s); retrying in %.1fs", exc, delay)


def make_undumpable() -> None:
    """Keep this process's memory and environment (the trainer key, the broker's credentials) from the jobs' child
    processes, which run the same user's code (`process_control.set_dumpable`)."""
    set_dumpable(False)


def run() -> None:
    make_undumpable()
    settings = TrainerSettings()
    if settings.store is None:
        print("epochscope-trainer: invalid settings: set EPOCHSCOPE_STORE_LOCAL_DIR or _BUCKET", file=sys.stderr)
        raise SystemExit(2)
    if problem := settings.missing_key():
        print(f"epochscope-trainer: invalid settings: {problem}", file=sys.stderr)
        raise SystemExit(2)
    configure_logging("trainer", settings.log_level)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(settings))
