"""Schemathesis hooks: the cross-parameter rules of ``GET /v1/training-jobs`` that OpenAPI cannot express.

Loaded by the schemathesis CLI through ``SCHEMATHESIS_HOOKS`` (see test_schemathesis.py), never by pytest.
Each parameter's own rules live in openapi.yaml; this rule relates two parameters, so a schema-valid
(positive) request can still break it. Positive cases are made to obey it, the way a correct client
would; negative cases are left alone (the gateway must reject those anyway).

* ``create_since`` must not be later than ``create_until``.

(``state`` and ``state_group`` together are fine: both filters apply, as the spec's own example shows.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import schemathesis
from schemathesis import GenerationMode


def _moment(value: Any) -> datetime | None:
    """An RFC 3339 value as an aware datetime, or None when Python cannot read it."""
    try:
        moment = datetime.fromisoformat(str(value).upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def obey_cross_parameter_rules(case: Any) -> Any:
    """Make a positive case's query obey the rule above; leave every other case as it is."""
    meta = case.meta
    query = case.query
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE or not isinstance(query, dict):
        return case
    since, until = _moment(query.get("create_since")), _moment(query.get("create_until"))
    if since is not None and until is not None and since > until:
        query["create_since"], query["create_until"] = query["create_until"], query["create_since"]
    return case


@schemathesis.hook
def before_add_examples(context: Any, examples: list[Any]) -> None:
    """Examples phase: one case combines every parameter's example."""
    for case in examples:
        obey_cross_parameter_rules(case)


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """Coverage, fuzzing and stateful phases."""
    return obey_cross_parameter_rules(case)
