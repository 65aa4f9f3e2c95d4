"""The query parser under fuzzing: any input is either a normalised query or an InvalidParameter."""

from __future__ import annotations

import tracemalloc
from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import InvalidParameter
from gateway.jobs.query import (
    ACCEPTED_PARAMETERS,
    NO_STATE_MATCHES,
    ParsedQueries,
    matches_nothing,
    parse_list_query,
)
from gateway.jobs.states import ALL_STATES, STATE_GROUPS

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
    if matches_nothing(query):  # no state in both filters, or no whole second in the range: never sent
        names = {name for name, _ in pairs}
        assert names >= {"state", "state_group"} or names >= {"create_since", "create_until"}
        return
    assert parse_list_query(query) == query  # normalising twice changes nothing


@settings(max_examples=200, deadline=None)
@given(st.permutations([("limit", "5"), ("offset", "3"), ("sort_dir", "desc"), ("tag", "a b")]))
def test_parameter_order_does_not_matter(pairs: list[tuple[str, str]]) -> None:
    """Any order of the same parameters gives the same normalised query (and so the same cache key)."""
    assert parse_list_query(pairs) == parse_list_query(sorted(pairs))


def test_group_and_its_states_give_the_same_query() -> None:
    """state_group=completed and state=JOB_SUCCESS,JOB_FINISH are the same request."""
    assert parse_list_query([("state_group", "completed")]) == parse_list_query([("state", "JOB_SUCCESS,JOB_FINISH")])


def test_state_and_state_group_together_ask_for_the_states_in_both() -> None:
    """Both filters apply: the upstream is asked for the intersection, the same query as the states alone."""
    both = parse_list_query([("state", "TRAINING,JOB_SUCCESS,JOB_REJECT"), ("state_group", "training,completed")])
    assert dict(both)["state"] == "JOB_SUCCESS,TRAINING"
    assert both == parse_list_query([("state", "TRAINING,JOB_SUCCESS")])
    assert not matches_nothing(both)


def test_state_and_state_group_with_nothing_in_common_match_nothing() -> None:
    """An empty intersection is marked on the query (the service answers an empty page without the upstream)."""
    query = parse_list_query([("state", "TRAINING"), ("state_group", "completed"), ("limit", "5")])
    assert matches_nothing(query)
    assert NO_STATE_MATCHES in query
    assert dict(query)["limit"] == "5"


def test_an_empty_state_from_a_client_is_refused_not_taken_as_the_marker() -> None:
    """A client cannot send the marker itself: `state=` is a bad value."""
    with pytest.raises(InvalidParameter) as caught:
        parse_list_query([("state", "")])
    assert caught.value.parameter == "state"


def test_times_are_strict_rfc3339_and_normalised_to_utc() -> None:
    """Years below 1000 keep four digits; offsets convert to Z; ISO forms RFC 3339 lacks are refused."""
    assert dict(parse_list_query([("create_since", "0999-12-31T00:00:00Z")]))["create_since"] == "0999-12-31T00:00:00Z"
    assert dict(parse_list_query([("create_until", "2024-01-01T08:00:00+08:00")]))["create_until"] == (
        "2024-01-01T00:00:00Z"
    )
    for bad in ("2024-01-01T00:00:00+01", "20240101T000000Z", "2024-01-01T00:00Z", "0000-01-01T00:00:00Z"):
        with pytest.raises(InvalidParameter):
            parse_list_query([("create_since", bad)])


def test_times_at_the_edge_of_the_calendar_do_not_crash() -> None:
    """Converting year 1 or 9999 across an offset clamps instead of overflowing."""
    assert parse_list_query([("create_since", "0001-01-01T00:00:00+01:00")])
    assert parse_list_query([("create_until", "9999-12-31T23:00:00-05:00")])


def test_text_filters_take_any_non_control_characters() -> None:
    """Non-breaking spaces and emoji sequences are fine; control characters and newlines are not."""
    assert parse_list_query([("name", "a\u00a0b"), ("tag", "\U0001f468\u200d\U0001f4bb")])
    for bad in ("a\nb", "\x00", "a\x7fb"):
        with pytest.raises(InvalidParameter):
            parse_list_query([("name", bad)])


def test_job_id_with_a_trailing_newline_is_refused() -> None:
    """The job id pattern must match the whole value."""
    with pytest.raises(InvalidParameter):
        parse_list_query([("job_id", "abc\n")])


def test_a_time_with_a_fraction_is_rounded_so_no_job_outside_the_range_matches() -> None:
    """The upstream takes whole seconds: create_since rounds up, create_until down (create_since
    used to be cut down, so a job a fraction before it matched, and 28.5 s shared 28 s's cache
    entry). A range that holds no whole second matches nothing; one given backwards is refused
    by the times as sent, not as rounded (28.9 s to 28.1 s used to pass)."""
    since = dict(parse_list_query([("create_since", "2023-05-22T09:53:28.5Z")]))["create_since"]
    until = dict(parse_list_query([("create_until", "2023-05-22T09:53:28.5Z")]))["create_until"]
    assert (since, until) == ("2023-05-22T09:53:29Z", "2023-05-22T09:53:28Z")
    assert parse_list_query([("create_since", "2023-05-22T09:53:28Z")]) != parse_list_query(
        [("create_since", "2023-05-22T09:53:28.5Z")]
    )
    assert matches_nothing(
        parse_list_query([("create_since", "2023-05-22T09:53:28.1Z"), ("create_until", "2023-05-22T09:53:28.9Z")])
    )
    with pytest.raises(InvalidParameter) as backwards:
        parse_list_query([("create_since", "2023-05-22T09:53:28.9Z"), ("create_until", "2023-05-22T09:53:28.1Z")])
    assert backwards.value.parameter == "create_since"
    assert parse_list_query([("create_since", "9999-12-31T23:59:59.5Z")])  # no second after it: kept as it is


def test_a_sort_direction_is_sent_as_asked() -> None:
    """sort_dir=asc is sent, not left out as the documented default: the upstream page's own
    example, asked without it, comes back in descending order (simulator audit), so the two
    may differ upstream; they are two cache entries."""
    assert dict(parse_list_query([("sort_dir", "asc")]))["sort_dir"] == "asc"
    assert "sort_dir" not in dict(parse_list_query([]))
    assert dict(parse_list_query([("sort_dir", "desc")]))["sort_dir"] == "desc"


def test_a_plus_sent_unencoded_in_a_time_says_how_to_write_it() -> None:
    """A '+' offset pasted into a URL decodes to a space; the refusal says to write it %2B."""
    with pytest.raises(InvalidParameter) as caught:
        parse_list_query([("create_until", "2024-12-31T23:59:59 08:00")])
    assert "%2B" in caught.value.message


def test_text_whose_percent_encoding_is_not_utf8_is_refused() -> None:
    """%FF decodes to U+FFFD: refused naming the parameter, not sent upstream as a replacement character."""
    for name in ("name", "batch_name", "tag"):
        with pytest.raises(InvalidParameter) as caught:
            parse_list_query([(name, "a\ufffdb")])
        assert caught.value.parameter == name


def test_long_queries_are_parsed_every_time_not_remembered() -> None:
    """The lists asked again and again are short: they are remembered. 4,096 distinct queries
    with long filters (the fast path reads a query before the caller, so anyone can send them)
    leave the memo holding well under a mebibyte: they held about 32 MiB."""
    queries = ParsedQueries()
    short = "limit=20&offset=40"
    assert queries.parse(short, lambda: parse_qsl(short)) == queries.known(short)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(4096):
            raw = f"name={number}{'n' * 250}&batch_name={'b' * 256}&tag={'t' * 256}"
            queries.parse(raw, lambda raw=raw: parse_qsl(raw))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 1 << 20
    assert queries.known(short) is not None
