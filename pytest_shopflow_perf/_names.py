"""File names derived from pytest node ids: readable, stable across machines, never two tests in one file.

Shared by baselines (``baselines/<stem>.json``) and report files, so that neither layer reads the other.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["node_hash", "report_stem", "sanitised"]

_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]")
_MAX_STEM = 150  # well under the 255-byte file-name limit, leaving room for the hash


def node_hash(nodeid: str) -> str:
    """The short hash that keeps two sanitised names apart."""
    return hashlib.sha256(nodeid.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def sanitised(nodeid: str) -> tuple[str, bool]:
    """(readable stem, whether sanitising lost more than ``::``, ``/``, ``\\`` and brackets)."""
    stem = nodeid.replace("::", "__")
    lossy = False
    chars: list[str] = []
    for char in stem:
        if _SAFE_NAME.fullmatch(char):
            chars.append(char)
        else:
            chars.append("_")
            lossy = lossy or char not in "/\\[]"
    stem = "".join(chars)
    if not stem or stem[0] in ".-":  # hidden files and option-like names
        stem = f"_{stem}"
        lossy = True
    if len(stem) > _MAX_STEM:
        stem = stem[:_MAX_STEM]
        lossy = True
    return stem, lossy


def report_stem(nodeid: str) -> str:
    """The file stem of a test's report files: the baseline's readable stem, made unique per node id.

    Baseline names stay as they are (committed baselines must still be found), but
    report files are never checked for collisions, so any id whose sanitising
    replaced more than ``::`` and the path's ``/`` (parameter ids above all) gets
    a hash of the full id.
    """
    stem, lossy = sanitised(nodeid)
    replaced = any(c != "/" and not _SAFE_NAME.fullmatch(c) for c in nodeid.replace("::", ""))
    if lossy or replaced:
        stem = f"{stem}-{node_hash(nodeid)}"
    return stem
