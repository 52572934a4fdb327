"""What a run targeted and why: a URL alone does not say whether it was the user's service or the embedded one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from pytest_shopflow_perf.result.schema import TargetRecord

TARGET_SOURCES: Final = ("embedded", "option", "marker", "app")
"""Where a target came from: the embedded reference service (none was given), ``--perf-base-url`` /
``SHOPFLOW_BASE_URL`` / ini ``perf_base_url``, ``base_url=`` of the marker or of ``load.run``, or an
in-process ASGI ``app=``. Records written before the source was kept load with an empty source."""


@dataclass(frozen=True)
class RunTarget:
    """The target of one run: ``url``, ``source`` (one of :data:`TARGET_SOURCES`) and ``label``, the one line
    every report prints (``"embedded ShopFlow reference service http://127.0.0.1:PORT (no --perf-base-url ...)"``).
    """

    url: str
    source: str = ""
    label: str = ""

    def __str__(self) -> str:
        return self.label or self.url

    def to_dict(self) -> TargetRecord:
        return {"url": self.url, "source": self.source, "label": self.label or self.url}

    @classmethod
    def from_value(cls, value: object) -> RunTarget:
        """A :class:`RunTarget`, its record, or the bare URL string that run records held before the record."""
        if isinstance(value, RunTarget):
            return value
        if isinstance(value, Mapping):
            url = str(value.get("url") or "")
            return cls(url=url, source=str(value.get("source") or ""), label=str(value.get("label") or url))
        url = "" if value is None else str(value)
        return cls(url=url, label=url)
