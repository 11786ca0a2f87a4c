"""Links between pages that carry a set of queries: the breakdown reads ``?qids=`` and shows only those queries.

Query ids come from datasets and may hold commas, so each id's backslashes and commas are escaped
before joining; ``decode_query_ids`` undoes exactly that.
"""
from __future__ import annotations

from collections.abc import Sequence

QIDS_PARAM = "qids"


def encode_query_ids(query_ids: Sequence[str]) -> str:
    """Query ids as one URL parameter value: comma-separated, ``\\`` and ``,`` inside an id backslash-escaped."""
    return ",".join(str(q).replace("\\", "\\\\").replace(",", "\\,") for q in query_ids)


def decode_query_ids(text: str) -> list[str]:
    """The ids ``encode_query_ids`` joined, in order (empty ids dropped)."""
    ids, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            ids.append("".join(current))
            current = []
        else:
            current.append(char)
    ids.append("".join(current))
    return [q for q in ids if q]


def breakdown_params(dataset: str, profiles: Sequence[str], query_ids: Sequence[str], a: str | None = None,
                     b: str | None = None, runs: Sequence[str] = ()) -> dict[str, str | list[str]]:
    """Query parameters that open the per-query breakdown on ``dataset`` showing only ``query_ids`` (and saved ``runs``).

    Profiles and runs go in the repeated form (``profiles=a&profiles=b``), the one the sidebar's URL-bound
    widgets read and keep: the comma form is understood on arrival but is not what the URL keeps.
    """
    params: dict[str, str | list[str]] = {"dataset": dataset, "profiles": list(profiles),
                                          QIDS_PARAM: encode_query_ids(query_ids)}
    if runs:
        params["runs"] = list(runs)
    if a:
        params["a"] = a
    if b:
        params["b"] = b
    return params
