"""Stable ids (DESIGN.md "Data model"): the same text gives the same id on every run and machine.

prompt_id  = hash of the prompt messages (role and content, in order)
completion = hash of (prompt_id, completion text): the unit per-completion signals are keyed on
pair_id    = hash of (prompt_id, chosen_id, rejected_id)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

ID_HEX_CHARS = 16  # 64 bits: collision odds stay negligible at hundreds of millions of rows
_SEP = "\x1f"  # unit separator: cannot be confused with text boundaries in practice


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=ID_HEX_CHARS // 2).hexdigest()


def prompt_id(messages: Iterable[Mapping[str, str]]) -> str:
    """Hash of the prompt conversation; keys other than role/content do not count."""
    return _digest(_SEP.join(f"{m['role']}{_SEP}{m['content']}" for m in messages))


def completion_id(prompt_id_: str, text: str) -> str:
    return _digest(f"{prompt_id_}{_SEP}{text}")


def pair_id(prompt_id_: str, chosen_id: str, rejected_id: str) -> str:
    return _digest(f"{prompt_id_}{_SEP}{chosen_id}{_SEP}{rejected_id}")


def fingerprint(obj: object) -> str:
    """Hash of a JSON-able value (options, specs); key order does not matter."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def file_fingerprint(path: str, chunk: int = 1 << 22) -> str:
    """Content hash of a file (sha256, first 32 hex chars)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()[:32]
