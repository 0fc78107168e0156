"""Models: loading and fingerprints (`loading`), log-prob backends (`logprob` for transformers,
`logprob_vllm` for vLLM), and sequence-classification reward models (`reward`).

Importing this package loads only `loading` (torch and transformers are imported on first use).
"""

from prefcurate.models.loading import (
    BUNDLED_INSTALL,
    BUNDLED_NAME,
    DTYPES,
    bundled_checkpoint,
    bundled_gguf,
    cache_root,
    gguf_checkpoint,
    is_checkpoint,
    load_model,
    model_fingerprint,
    quiet_transformers,
)

__all__ = [
    "BUNDLED_INSTALL",
    "BUNDLED_NAME",
    "DTYPES",
    "bundled_checkpoint",
    "bundled_gguf",
    "cache_root",
    "gguf_checkpoint",
    "is_checkpoint",
    "load_model",
    "model_fingerprint",
    "quiet_transformers",
]
