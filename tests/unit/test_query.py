"""The query parser under fuzzing: any input is either a normalised query or an InvalidParameter."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import InvalidParameter
from gateway.query import ACCEPTED_PARAMETERS, parse_list_query
from gateway.states import ALL_STATES, STATE_GROUPS

NAMES = st.sampled_from(sorted(ACCEPTED_PARAMETERS | {"query_project_id", "x", ""}))
VALUES = st.one_of(
    st.text(max_size=40),
    st.integers(-5, 2**32).map(str),
    st.sampled_from(sorted(ALL_STATES) + sorted(STATE_GROUPS) + ["true", "false", "4K", "asc", "2024-01-01T00:00:00Z"]),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(NAMES, VALUES), max_size=6))
def test_any_query_is_normalised_or_refused_with_a_named_parameter(pairs: list[tuple[str, str]]) -> None:
    """No input makes the parser fail in any other way; refusals name a parameter that was sent."""
    try:
        query = parse_list_query(pairs)
    except InvalidParameter as error:
        assert error.parameter in {name[:64] for name, _ in pairs} | {"state_group", "create_since"}  # noqa: PT017
        return
    names = [name for name, _ in query]
    assert names == sorted(set(names))
    assert {"offset", "limit"} <= set(names)
    assert parse_list_query(query) == query  # normalising twice changes nothing


@settings(max_examples=200, deadline=None)
@given(st.permutations([("limit", "5"), ("offset", "3"), ("sort_dir", "desc"), ("tag", "a b")]))
def test_parameter_order_does_not_matter(pairs: list[tuple[str, str]]) -> None:
    """Any order of the same parameters gives the same normalised query (and so the same cache key)."""
    assert parse_list_query(pairs) == parse_list_query(sorted(pairs))


def test_group_and_its_states_give_the_same_query() -> None:
    """state_group=completed and state=JOB_SUCCESS,JOB_FINISH are the same request."""
    assert parse_list_query([("state_group", "completed")]) == parse_list_query([("state", "JOB_SUCCESS,JOB_FINISH")])
