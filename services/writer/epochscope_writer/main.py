"""`epochscope-writer`: run the writer until SIGTERM or SIGINT, then stop cleanly."""

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys

from pydantic import ValidationError
from tenacity import AsyncRetrying, RetryCallState, wait_exponential_jitter

from epochscope_runtime.log_config import configure_logging
from epochscope_writer.adapters.health import HealthServer
from epochscope_writer.bootstrap import bootstrap
from epochscope_writer.metrics import WriterMetrics
from epochscope_writer.service_layer.consumer import Writer
from epochscope_writer.settings import WriterSettings

log = logging.getLogger("epochscope.writer")


async def serve(settings: WriterSettings) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    metrics = WriterMetrics()
    services = bootstrap(settings, metrics)
    writer = services.writer
    health = HealthServer(metrics.registry, ready=lambda: writer.kafka_ok and writer.database_ok)
    if settings.writer_health_port is not None:
        await health.start(settings.writer_health_host, settings.writer_health_port)
    try:
        await _start_with_retry(writer, stopping, settings.writer_retry_initial_s, settings.writer_retry_max_s)
        if not stopping.is_set():
            log.info(
                "writer started",
                extra={"batch_size": settings.writer_batch_size, "linger_ms": settings.writer_linger_ms},
            )
            beats = asyncio.create_task(services.heartbeats.run(stopping), name="heartbeats")
            try:
                await writer.run(stopping)
            finally:
                stopping.set()
                await beats
    finally:
        await writer.close()
        await health.close()
        log.info("writer stopped")


async def _start_with_retry(writer: Writer, stopping: asyncio.Event, initial: float, max_delay: float) -> None:
    """The broker may come up after the writer: keep trying, with jittered backoff, until it answers or we stop."""

    async def sleep_unless_stopped(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=seconds)

    def warn(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning("cannot reach the broker yet (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay)

    retrying = AsyncRetrying(
        stop=lambda state: stopping.is_set(),
        wait=wait_exponential_jitter(multiplier=initial, max=max_delay, jitter=initial),
        sleep=sleep_unless_stopped,
        before_sleep=warn,
        retry_error_callback=lambda state: None,  # told to stop: give up quietly
    )
    async for attempt in retrying:
        with attempt:
            if stopping.is_set():
                return
            try:
                await writer.start()
            except Exception:  # any start failure is retried the same way
                await writer.close()
                raise


def run() -> None:
    parser = argparse.ArgumentParser(prog="epochscope-writer", description=__doc__)
    parser.add_argument("--health-port", type=int, help="serve /healthz, /readyz and /metrics on this port")
    args = parser.parse_args()
    try:
        settings = WriterSettings()
    except ValidationError as exc:
        # One line for the operator; never the values, which may be secrets.
        messages = "; ".join(error["msg"] for error in exc.errors())
        print(f"epochscope-writer: invalid settings: {messages}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.health_port is not None:
        settings.writer_health_port = args.health_port
    configure_logging("writer", settings.log_level)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # Everything imported so far lives as long as the process: out of the cyclic collector's way, so that its
    # collections, which a batch's thousands of new objects set off, do not walk it again each time (a fifth of the
    # writer's CPU per row, bench/writer_throughput.py).
    gc.freeze()
    asyncio.run(serve(settings))


if __name__ == "__main__":
    run()
