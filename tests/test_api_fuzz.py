"""The API fuzzed by schemathesis from its own OpenAPI document.

Every operation of `/api/v1/openapi.json` gets requests that schemathesis
makes from the document, valid and invalid, with hypothesis. Each answer must
be what the document says (status code, content type, headers, body schema)
and never a server error; the one 5xx allowed is the documented 503 with
Retry-After when the queue is full. The suite runs a few cases per
operation on the app in this process; for the campaign, point it at a real
server and raise the count (docs/reliability.md):

    FUZZ_EXAMPLES=600 .venv/bin/python -m pytest -q tests/test_api_fuzz.py
    FUZZ_URL=http://127.0.0.1:5000 FUZZ_EXAMPLES=600 .venv/bin/python -m pytest -q \
        tests/test_api_fuzz.py

(`benchmarks/fuzz_api.py` starts the server and does the second.)
"""

from __future__ import annotations

import os
import threading

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import GENEROUS_LIMITS

pytestmark = pytest.mark.slow  # a fuzzing campaign over every operation: about half a minute

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))
FUZZ_URL = os.environ.get("FUZZ_URL")
CASES = {"count": 0, "statuses": {}}
_counting = threading.Lock()


@pytest.fixture(scope="module")
def fuzzed_api(tmp_path_factory, web_bundles_dir):
    if FUZZ_URL:
        yield schemathesis.openapi.from_url(f"{FUZZ_URL.rstrip('/')}/api/v1/openapi.json")
        return
    from webapp import create_app
    from webapp.services import shutdown

    app = create_app({"TESTING": True, "INSTANCE_PATH": str(tmp_path_factory.mktemp("fuzz")),
                      "BUNDLES_DIR": str(web_bundles_dir), "PRELOAD_STYLES": False,
                      "RENDER_AUDIO": False, **GENEROUS_LIMITS})
    yield schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    shutdown(app)


@schemathesis.check
def no_server_error_but_a_full_queue(ctx, response, case):
    """A 5xx only as the documented 503 with Retry-After (the queue is full).
    schemathesis gives the headers with lowercase names."""
    status = response.status_code
    if status >= 500 and not (status == 503 and response.headers.get("retry-after")):
        raise AssertionError(f"{case.method} {case.formatted_path} answered {status}: "
                             f"{response.text[:300]}")


def fuzz(operation, mode) -> None:
    """FUZZ_EXAMPLES cases of one operation, made in one generation mode."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=not FUZZ_URL,
              suppress_health_check=list(HealthCheck), database=None)
    def run(case):
        # A request the schema allows may still be refused with its reason (400,
        # 413 or 422, documented): a "MIDI file" that is not one, a primer too
        # long, a style that is not installed. So schemathesis's check that
        # schema-valid data is accepted is left out; the rest all apply.
        response = case.call_and_validate(
            base_url=FUZZ_URL, excluded_checks=[not_a_server_error, positive_data_acceptance],
            additional_checks=[no_server_error_but_a_full_queue])
        with _counting:
            CASES["count"] += 1
            CASES["statuses"][response.status_code] = CASES["statuses"].get(
                response.status_code, 0) + 1

    try:
        run()
    except Unsatisfiable:  # nothing of this operation can be made invalid (no parameters)
        assert mode == GenerationMode.NEGATIVE, operation.label


def test_every_answer_is_documented_and_none_is_a_server_error(fuzzed_api):
    operations = [result.ok() for result in fuzzed_api.get_all_operations()]
    assert len(operations) >= 10, [operation.label for operation in operations]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(operation, mode)
    print(f"\nfuzzed {CASES['count']} cases of {len(operations)} operations; statuses: "
          f"{dict(sorted(CASES['statuses'].items()))}")
    assert CASES["count"] >= len(operations)
