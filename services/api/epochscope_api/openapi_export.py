"""Write the API's OpenAPI document; the committed copy is schemas/openapi.json (a test checks drift)."""

import json
import sys
from pathlib import Path

from pydantic import SecretStr

from epochscope_api.main import create_app
from epochscope_api.settings import ApiSettings
from epochscope_runtime.object_store import StoreSettings

DEFAULT_PATH = Path("schemas/openapi.json")  # relative to the repository root


def openapi_document() -> dict:
    # The spec depends on no secret and no store; placeholders let it be built without any environment.
    settings = ApiSettings(
        environment="development",
        jwt_secret=SecretStr("unused"),
        job_token_secret=SecretStr("unused"),
        store=StoreSettings(local_dir=Path()),
    )
    return create_app(settings).openapi()


def render(document: dict) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    path.write_text(render(openapi_document()))
    print(path)
