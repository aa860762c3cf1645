"""In production the API and the migrate step refuse short or placeholder secrets; development allows them."""

import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from start_keys import DISPATCH_PRIVATE_KEY, TRAINER_IDENTITY_PUBLIC

from epochscope_api.settings import ApiSettings
from epochscope_db.migrate import MigrateSettings
from epochscope_runtime.dispatch_keys import new_key_pair
from epochscope_runtime.object_store import StoreSettings
from epochscope_runtime.secret_policy import weak_secret
from epochscope_writer.settings import WriterSettings

STRONG = secrets.token_urlsafe(32)
STORE = StoreSettings(local_dir=Path("unused"))


@pytest.mark.parametrize("value", ["change-me", "REPLACE_ME", "secret", "short-but-random-1234", "x" * 31])
def test_placeholders_and_short_secrets_are_weak(value: str) -> None:
    assert weak_secret("EPOCHSCOPE_JWT_SECRET", value) is not None


def test_a_random_32_byte_secret_is_not_weak() -> None:
    assert weak_secret("EPOCHSCOPE_JWT_SECRET", STRONG) is None


@pytest.mark.parametrize("field", ["jwt_secret", "job_token_secret"])
def test_the_api_refuses_a_weak_secret_in_production_naming_it(field: str) -> None:
    strong = {"jwt_secret": STRONG, "job_token_secret": STRONG, "dispatch_private_key": DISPATCH_PRIVATE_KEY}
    settings = {**strong, "store": STORE} | {field: "change-me"}
    with pytest.raises(ValidationError, match=f"EPOCHSCOPE_{field.upper()} is a placeholder"):
        ApiSettings(**settings)
    assert ApiSettings(**settings, environment="development").environment == "development"
    assert ApiSettings(**(settings | {field: STRONG})).environment == "production"  # the default


def test_the_api_refuses_a_missing_or_unreadable_dispatch_key_in_production(tmp_path: Path) -> None:
    settings = {"jwt_secret": STRONG, "job_token_secret": STRONG, "store": STORE}
    with pytest.raises(
        ValidationError, match=r"EPOCHSCOPE_DISPATCH_PRIVATE_KEY \(or _FILE\) is required in production"
    ):
        ApiSettings(**settings)
    assert ApiSettings(**settings, environment="development").dispatch_signing_key() is None
    with pytest.raises(ValidationError, match="the dispatch private key is not base64") as refused:
        ApiSettings(**settings, dispatch_private_key="change-me-" + STRONG)
    assert STRONG not in str(refused.value)  # the key's text is in no error
    key_file = tmp_path / "dispatch.key"
    key_file.write_text(DISPATCH_PRIVATE_KEY + "\n")  # a mounted secret
    assert ApiSettings(**settings, dispatch_private_key_file=key_file).dispatch_signing_key() is not None


def test_the_writer_refuses_a_weak_job_token_secret_in_production() -> None:
    with pytest.raises(ValidationError, match="EPOCHSCOPE_JOB_TOKEN_SECRET is shorter than 32 bytes"):
        WriterSettings(job_token_secret="0123456789", accepted_trainer_keys=TRAINER_IDENTITY_PUBLIC)
    assert WriterSettings(job_token_secret="0123456789", environment="development").environment == "development"
    assert WriterSettings(job_token_secret=STRONG, accepted_trainer_keys=TRAINER_IDENTITY_PUBLIC).environment == (
        "production"
    )


def test_the_writer_refuses_missing_or_unreadable_trainer_keys_in_production(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"EPOCHSCOPE_ACCEPTED_TRAINER_KEYS \(or _FILE\) is required"):
        WriterSettings(job_token_secret=STRONG)
    with pytest.raises(ValidationError, match="a trainer identity public key is not base64"):
        WriterSettings(job_token_secret=STRONG, accepted_trainer_keys="change-me")
    assert len(WriterSettings(job_token_secret=STRONG, environment="development").trainer_keys()) == 0
    other = new_key_pair()[1]
    keys_file = tmp_path / "accepted_trainer_keys"  # like authorized_keys: a key a line, comments
    keys_file.write_text(f"# the GPU pool\n{TRAINER_IDENTITY_PUBLIC}  # gpu-a\n\n{other}\n")
    assert len(WriterSettings(job_token_secret=STRONG, accepted_trainer_keys_file=keys_file).trainer_keys()) == 2


def test_the_migrate_step_refuses_the_default_role_passwords_in_production() -> None:
    with pytest.raises(ValidationError, match="EPOCHSCOPE_API_DB_PASSWORD.*EPOCHSCOPE_WRITER_DB_PASSWORD"):
        MigrateSettings()
    assert MigrateSettings(api_db_password=STRONG, writer_db_password=STRONG).environment == "production"


def test_the_api_process_will_not_start_with_a_placeholder_secret_and_logs_no_secret(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "EPOCHSCOPE_JWT_SECRET": "REPLACE_ME",
        "EPOCHSCOPE_JOB_TOKEN_SECRET": STRONG,
        "EPOCHSCOPE_DISPATCH_PRIVATE_KEY": DISPATCH_PRIVATE_KEY,
        "EPOCHSCOPE_STORE_LOCAL_DIR": str(tmp_path),
    }
    started = subprocess.run(
        [str(Path(sys.executable).parent / "epochscope-api")], env=env, capture_output=True, text=True, timeout=60
    )
    assert started.returncode != 0
    assert "epochscope-api: invalid settings: Value error, EPOCHSCOPE_JWT_SECRET is a placeholder" in started.stderr
    assert "Traceback" not in started.stderr
    assert STRONG not in started.stderr + started.stdout
