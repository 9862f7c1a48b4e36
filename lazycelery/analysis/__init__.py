"""Error analysis, headless: failures grouped by fingerprint, similar groups clustered, trends and
root-cause hints with their evidence. Pure functions and plain objects fed with events; it never
imports prompt_toolkit, a web framework or a broker client."""

from __future__ import annotations

from lazycelery.analysis.fingerprint import Fingerprint, fingerprint
from lazycelery.analysis.groups import ErrorGroup, ErrorGroups
from lazycelery.analysis.hints import Hint, hints_for
from lazycelery.analysis.similar import Cluster, clusters, similarity

__all__ = [
    "Cluster",
    "ErrorGroup",
    "ErrorGroups",
    "Fingerprint",
    "Hint",
    "clusters",
    "fingerprint",
    "hints_for",
    "similarity",
]
