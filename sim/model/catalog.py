"""The models the twin ships, and reading a model from a name or a ``config.json``.

``models/`` (beside ``sim/``) holds the configs of the models the shipped scenarios use, byte for
byte as published, with their provenance (``models/README.md``). A model is named by its catalog
name (case-insensitive: ``llama-3.1-405b``) or a path to a ``config.json`` in either format:
DeepSeek's own (its keys are the :class:`~sim.model.spec.ModelSpec` fields, ``config_671B.json``) or
Hugging Face's (:mod:`sim.model.hf_config`). The spec is named after the catalog entry, or after the
file (its folder's name for a file called ``config.json``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sim.errors import ScenarioError, kind_of
from sim.errors import shown as cut
from sim.model.hf_config import hf_fields, is_hf_config, source_key, source_text
from sim.model.spec import ModelSpec, deepseek_config_fields, parse_model
from sim.paths import REPO, shown
from sim.yamlio import read_json

MODELS_DIR = REPO / "models"

# catalog name -> (the name the spec carries, file under models/)
CATALOG: dict[str, tuple[str, str]] = {
    "deepseek-v3": ("DeepSeek-V3", "deepseek-ai__DeepSeek-V3.config_671B.json"),
    "deepseek-v2-lite": ("DeepSeek-V2-Lite", "deepseek-ai__DeepSeek-V2-Lite.config.json"),
    "qwen3-235b-a22b": ("Qwen3-235B-A22B", "Qwen__Qwen3-235B-A22B.config.json"),
    "qwen3-30b-a3b": ("Qwen3-30B-A3B", "Qwen__Qwen3-30B-A3B.config.json"),
    "mixtral-8x7b": ("Mixtral-8x7B", "mistralai__Mixtral-8x7B-v0.1.config.json"),
    "llama-3.1-8b": ("Llama-3.1-8B", "meta-llama__Llama-3.1-8B.config.json"),
    "llama-3.1-70b": ("Llama-3.1-70B", "meta-llama__Llama-3.1-70B.config.json"),
    "llama-3.1-405b": ("Llama-3.1-405B", "meta-llama__Llama-3.1-405B.config.json"),
}


def resolve(ref: str, folder: Path | None = None) -> tuple[str, Path]:
    """(spec name, file) of a catalog name or a path (relative to ``folder``, default the working
    folder); an unknown name that is no file is a one-line error listing the catalog."""
    entry = CATALOG.get(ref.lower())
    if entry is not None:
        return entry[0], MODELS_DIR / entry[1]
    path = Path(ref) if folder is None or Path(ref).is_absolute() else folder / ref
    try:
        is_file, why = path.is_file(), ""
    except OSError as err:  # (a name too long for a file: "File name too long")
        is_file, why = False, f" ({err.strerror or err})"
    if not is_file:
        raise ScenarioError(
            "model.config",
            f"{cut(repr(ref))} is neither a shipped model ({', '.join(CATALOG)}) nor a config.json file{why}",
        )
    return config_name(path), path


def config_name(path: Path) -> str:
    """A config file's model name: its folder's for ``config.json``, else the file's name without
    ``.json``, a ``.config`` or ``.config_<variant>`` before it, and an ``org__`` prefix
    (``meta-llama__Llama-3.1-8B.config.json`` is ``Llama-3.1-8B``: cut at the first dot, it was
    ``Llama-3``, the 70B's too; ``deepseek-ai__DeepSeek-V3.config_671B.json`` is ``DeepSeek-V3``)."""
    if path.name == "config.json":
        name = path.parent.name
    else:
        name = re.sub(r"(\.config(_[^.]*)?)?\.json$", "", path.name, flags=re.IGNORECASE)
    return name.split("__")[-1] or "model"


def _read(ref: str, folder: Path | None) -> tuple[dict[str, Any], str | None, str]:
    """(fields with ``name``, the Hugging Face ``model_type`` or None for DeepSeek's format, file)."""
    name, path = resolve(ref, folder)
    file = shown(path)
    data = read_json(path, "model config")
    if not isinstance(data, dict):
        raise ScenarioError("", f"a model config must be a JSON object, got {kind_of(data)}", file)
    if is_hf_config(data):
        return {"name": name, **hf_fields(data, file)}, str(data.get("model_type")), file
    return {"name": name, **deepseek_config_fields(data, file)}, None, file


def load_model(ref: str, folder: Path | None = None, timed: bool = True) -> ModelSpec:
    """The spec of a catalog name or a ``config.json``; an error on a field names the file's key.
    With ``timed``, one the layer's operators time (:func:`sim.model.spec.check_timed`)."""
    return checked_fields(ref, folder, timed)[1]


def checked_fields(ref: str, folder: Path | None = None, timed: bool = True) -> tuple[dict[str, Any], ModelSpec]:
    """The fields a model's config gives (``name`` included) and the spec they make, the file read once;
    an error on a field names the file's own keys (the key, and the fields its message names)."""
    fields, model_type, file = _read(ref, folder)
    try:
        return fields, parse_model(fields, file, timed)
    except ScenarioError as err:
        if err.file != file:  # (another file's error: as it is)
            raise
        field = err.key_path.removeprefix("model.")  # the file's own key, not a scenario's model section's
        if model_type is None:
            raise ScenarioError(field, err.message, file) from None
        raise ScenarioError(source_key(model_type, field), source_text(model_type, err.message), file) from None


def load_model_config(path: str | Path) -> ModelSpec:
    """A ``config.json`` read as a model the layer's operators time (:func:`load_model` of a path)."""
    return load_model(str(path))
