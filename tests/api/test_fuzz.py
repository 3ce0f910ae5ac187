"""Schemathesis passes over the OpenAPI document: whatever they send, no 5xx.

Both run over HTTP against the API on an idle stack (no worker: valid jobs
just stay queued), authenticated as a tenant of their own.

* Stateless: every operation the document lists gets valid (positive) and
  invalid (negative) requests generated from its schema.  Every answer must be
  below 500, and every error must have the API's error shape.
* Stateful: scenarios that chain calls along the document's OpenAPI links —
  a job or batch is made, then shown, cancelled, followed, retried by the id
  its answer gave.  Every answer must also match the document (status, content
  type, schema, headers), and the run must have reached the linked operations
  with real ids, so it cannot pass by never chaining.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import FlakyStrategyDefinition, Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.config import SchemathesisConfig

from tests.api.conftest import FUZZ, ApiEnv, all_tenants
from tests.api.server import ApiServer, api_settings
from tests.s3 import MotoS3
from tests.servers import LocalTTS
from tests.stack import Stacks

AUTH = {"Authorization": f"Bearer {FUZZ[1]}"}
EXAMPLES = 50
#: Health checks about how fast or how big Hypothesis generates, not about the API: a
#: loaded CI machine or a large schema trips them; the others stay on.
SLOW_GENERATION = (
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.large_base_example,
)
#: Stateful runs (more, up to four times as many, until every linked operation was
#: reached); each plays this many scenarios of at most this many calls.  Run ``n`` has
#: the Hypothesis seed ``n`` and meets an API of its own, so CI plays the same
#: scenarios on every run: a failure repeats, and the reach does not depend on luck.
RUNS = 6
STATEFUL_SETTINGS = settings(
    max_examples=25,
    stateful_step_count=8,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=SLOW_GENERATION,
)
#: Operations whose body is a multipart form.
MULTIPART = ("POST /v1/books", "POST /v1/voices")
#: Answers that show the resource in the path exists (a made-up id is a 404).
FOUND = frozenset({200, 202, 307, 409})
#: Operations only a link can give a real id.
LINKED = (
    "GET /v1/jobs/{job_id}",
    "POST /v1/jobs/{job_id}/cancel",
    "GET /v1/jobs/{job_id}/audio",
    "GET /v1/jobs/{job_id}/events",
    "GET /v1/batches/{batch_id}",
    "POST /v1/batches/{batch_id}/cancel",
)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(idle: ApiEnv, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{idle.api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    seen: set[int] = set()
    fuzzed = 0

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,  # the same requests on every CI run
            suppress_health_check=SLOW_GENERATION,
        )
        def check(case: Case) -> None:
            response = case.call(base_url=idle.api.url, headers=AUTH, timeout=30)
            seen.add(response.status_code)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: "
                f"{response.text[:500]}"
            )
            if response.status_code >= 400:
                assert set(response.json()) == {"error"}, response.text

        try:
            check()
        except Unsatisfiable:
            # No invalid request exists for an operation without inputs (GET /healthz).
            assert mode is GenerationMode.NEGATIVE, operation.label
            continue
        fuzzed += 1
    assert fuzzed >= 6, f"only {fuzzed} operations fuzzed"
    assert any(code < 300 for code in seen) or mode is GenerationMode.NEGATIVE


def _stateful_config(base_url: str) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "base-url": base_url,
            "auth": {"openapi": {"HTTPBearer": {"bearer": FUZZ[1]}}},
            # As long as the stateless pass waits: CI runs this next to other tests on two cores.
            "request-timeout": 30,
            # A job's event stream ends only when the job does, never on an idle stack.
            "max-stream-events": 1,
            "phases": {
                "stateful": {
                    # Chain along the document's own links, not links schemathesis guesses.
                    "inference": {"algorithms": []},
                    "generation": {"mode": "all"},
                }
            },
            # A request the schema allows may still be refused by a check it cannot state
            # (a file that is no book, a cursor this API never handed out, a private
            # callback address); test_validation.py and test_books.py cover those.
            "checks": {"positive_data_acceptance": {"enabled": False}},
            # A multipart form carries text only: a title "mutated" to the integer 100000
            # arrives as the text "100000", a valid title, so schemathesis would call its
            # acceptance a failure.  Every other operation must still refuse invalid data.
            "operations": [
                {
                    "include-name": list(MULTIPART),
                    "checks": {"negative_data_rejection": {"enabled": False}},
                }
            ],
        }
    )


def _linkable_document(url: str) -> dict[str, Any]:
    """The served document, less the ``reference_id`` fields.

    Schemathesis takes ``reference_id`` (a voice at the provider) for the key of
    a resource no operation makes, and so never starts a scenario with an
    operation that takes one: ``POST /v1/jobs`` and ``POST /v1/batches``.  The
    stateless pass still sends it.
    """
    document: dict[str, Any] = httpx.get(url, timeout=10).json()
    for component in document["components"]["schemas"].values():
        component.get("properties", {}).pop("reference_id", None)
    return document


def test_the_document_links_what_is_made_to_its_operations(idle: ApiEnv) -> None:
    document = httpx.get(f"{idle.api.url}/openapi.json", timeout=10).json()
    paths = document["paths"]
    made = paths["/v1/jobs"]["post"]["responses"]["202"]["links"]
    assert made["GetJob"] == {
        "operationId": paths["/v1/jobs/{job_id}"]["get"]["operationId"],
        "parameters": {"job_id": "$response.body#/id"},
        "description": "the job",
    }
    assert {"CancelJob", "GetJobAudio", "FollowJob"} <= set(made)
    batch = paths["/v1/batches"]["post"]["responses"]["202"]["links"]
    assert batch["RetryFirstItem"]["parameters"] == {"batch_id": "$response.body#/id", "n": 0}
    book = paths["/v1/books"]["post"]["responses"]["202"]["links"]
    assert book["GetBatch"]["parameters"] == {"batch_id": "$response.body#/batch/id"}


@pytest.fixture
def fresh(redis_url: str, api_tts: LocalTTS, api_s3: MotoS3, tmp_path: Path) -> Iterator[ApiEnv]:
    """An idle API of its own (as ``idle`` is): the stateful pass meets the same state
    whether or not the stateless pass ran before it in the same process."""
    with Stacks(redis_url, api_s3.endpoint_url, tmp_path) as make:
        stack = make(api_tts, SHOAL_MAX_TEXT_BYTES="4000")
        with ApiServer(api_settings(stack, all_tenants())) as api:
            yield ApiEnv(stack, api)


def test_stateful_run_follows_links_to_real_ids(fresh: ApiEnv) -> None:
    document = _linkable_document(f"{fresh.api.url}/openapi.json")
    schema = schemathesis.openapi.from_dict(document, config=_stateful_config(fresh.api.url))
    answers: Counter[tuple[str, int]] = Counter()

    class Scenario(schema.as_state_machine()):  # type: ignore[misc]
        def after_call(self, response: Any, case: Case) -> None:
            answers[case.operation.label, response.status_code] += 1
            super().after_call(response, case)

        def validate_response(self, response: Any, case: Case, **kwargs: Any) -> None:
            if response.status_code >= 400:
                assert set(response.json()) == {"error"}, response.text
            super().validate_response(response, case, **kwargs)

    def found(label: str) -> int:
        return sum(n for (op, status), n in answers.items() if op == label and status in FOUND)

    for run in range(4 * RUNS):
        if run >= RUNS and all(found(label) for label in LINKED):
            break
        # A replayed scenario may meet another state of the API (its ids taken, its keys
        # used), and Hypothesis ends the run; like schemathesis's own runner, start
        # another.  A failure that did not repeat is a FlakyFailure, and fails.
        with contextlib.suppress(FlakyStrategyDefinition):
            seed(run)(Scenario).run(settings=STATEFUL_SETTINGS)

    summary = sorted(answers.items())
    assert answers["POST /v1/jobs", 202] > 0 and answers["POST /v1/batches", 202] > 0, summary
    for label in LINKED:
        assert found(label) > 0, f"{label} never reached with a real id: {summary}"
    assert answers["GET /v1/jobs/{job_id}", 200] >= 10, summary
