"""The failure classifier: a failed build's last error names the difficulty the curriculum aims
at (pagination, auth refresh, rate limits, retries, parsing), and only when it does."""

from __future__ import annotations

import pytest

from nexus_desktop.coevolve.classify import CATEGORIES, classify

# (category, an error that is that kind of failure, a near miss that is not)
CASES = [
    (
        "pagination",
        "AssertionError: assert 30 == 75 (only the first page was read; next_page was 2)",
        "AssertionError: assert 'Hades' == 'Factorio'",
    ),
    (
        "auth_refresh",
        "ApiError: The service answered 401 Unauthorized: token expired",
        "ApiError: The service answered 404 Not Found",
    ),
    (
        "rate_limits",
        "urllib.error.HTTPError: HTTP Error 429: Too Many Requests",
        "urllib.error.HTTPError: HTTP Error 400: Bad Request",
    ),
    (
        "retries",
        "urllib.error.HTTPError: HTTP Error 503: Service Unavailable",
        "urllib.error.HTTPError: HTTP Error 418: I'm a teapot",
    ),
    (
        "parsing",
        "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
        "ZeroDivisionError: division by zero",
    ),
]


def test_every_category_has_a_case() -> None:
    assert sorted(category for category, _, _ in CASES) == sorted(CATEGORIES)


@pytest.mark.parametrize(("category", "error", "near_miss"), CASES, ids=[c for c, _, _ in CASES])
def test_an_error_of_the_kind_is_classified_and_a_near_miss_is_not(
    category: str, error: str, near_miss: str
) -> None:
    assert classify(error) == category
    assert classify(near_miss) != category


def test_a_rate_limit_is_a_rate_limit_before_it_is_a_retry() -> None:
    assert classify("gave up after 3 retries: HTTP Error 429: Too Many Requests") == "rate_limits"
    assert classify("gave up after 3 retries: HTTP Error 502: Bad Gateway") == "retries"


def test_a_plain_assertion_takes_the_category_from_the_request() -> None:
    request = "A tool that totals every invoice, following next_cursor until it is null."
    assert classify("AssertionError: assert 12.5 == 40.0", request) == "pagination"
    # Positive control: the same assertion for a request with nothing telling is no category.
    assert classify("AssertionError: assert 12.5 == 40.0", "A tool that adds two numbers.") is None


def test_errors_no_curriculum_helps_are_no_category_whatever_the_request_says() -> None:
    request = "A tool that lists all pages of results, retrying 503 answers."
    assert classify("The answer is not valid JSON (Expecting value at line 1, column 1).", request) is None
    assert classify("hooks.py line 3 does not compile (invalid syntax); fix the syntax", request) is None
    assert classify("The manifest is for the module 'x', not 'y'; name it 'y'.", request) is None
    assert classify("", request) is None
