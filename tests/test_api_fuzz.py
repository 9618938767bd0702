"""Schemathesis against the engine's own /openapi.json: malformed requests get 4xx, never a 5xx.

Runs every documented operation with schema-generated (and schema-violating) requests, with the admin
token and without credentials, through the real ASGI app (auth guard included).
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from hypothesis import HealthCheck, given, settings  # noqa: E402

from alloop.settings import Settings  # noqa: E402

ADMIN = "admin-token-for-fuzzing-0123456789"


@schemathesis.serializer("application/vnd.apache.arrow.stream")
def _arrow_body(ctx, value):  # generated binary bodies are sent as they are: garbage Arrow must be a 4xx
    return value if isinstance(value, bytes) else str(value).encode()


def test_no_server_errors_on_any_operation(tmp_path):
    from alloop.server import build_app

    app = build_app(Settings(admin_token=ADMIN, data_dir=str(tmp_path)))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    failures: list[str] = []
    calls = [0]
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def run(case) -> None:
            for headers in ({"Authorization": f"Bearer {ADMIN}"}, {}):
                response = case.call(headers=headers)
                calls[0] += 1
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")  # noqa: E501

        run()
    assert failures == []
    assert calls[0] >= 5 * len(operations)  # the fuzzing really ran
