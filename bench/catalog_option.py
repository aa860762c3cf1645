"""`--models FILE`: the model catalog a benchmark's stack offers, read as `epochscope up --models` reads it. The tests'
bench smokes pass the tiny model their worker has already built, so that a smoke does not build (and import torch
and transformers for) a model of its own, nor extract the demo model's tokenizer."""

import argparse
from pathlib import Path

from epochscope.cli import read_catalog
from epochscope_runtime.catalog import CatalogModel


def add_models_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--models",
        type=Path,
        help=f"a JSON model catalog (a list of GET /v1/models entries) to run on; default: {default}",
    )


def models_option(args: argparse.Namespace) -> list[CatalogModel] | None:
    """The catalog `--models` named, or None where it was not given."""
    return read_catalog(args.models)
