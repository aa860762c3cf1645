"""`epochscope-trainer`: consume job-start events and run each job in a child process.

The units: `job_consumer` (the consumer loop), `job_supervisor` (the child process), `cancel_watcher`
(cancel events), `spool_delivery` (events a child left behind), `status_publisher` (the service's own
status events), wired by `bootstrap`. This module only adds signals and retries while the broker is
unreachable.
"""

import asyncio
import logging
import signal

from aiokafka.errors import KafkaError

from epochscope_schemas.log_config import configure_logging
from epochscope_trainer.bootstrap import bootstrap
from epochscope_trainer.settings import TrainerSettings

log = logging.getLogger("epochscope.trainer")


async def serve(settings: TrainerSettings) -> None:
    """Run the service until SIGTERM or SIGINT; a broker outage restarts it with fresh clients, with backoff."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    delay = 0.5
    while not stopping.is_set():
        try:
            await bootstrap(settings, stopping).run()
            return
        except KafkaError as exc:
            log.warning("broker unreachable (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)


def run() -> None:
    settings = TrainerSettings()
    configure_logging("trainer", settings.log_level)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(settings))
