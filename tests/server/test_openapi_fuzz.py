"""schemathesis against the server's own /openapi.json on a real loopback port: generated
valid and invalid queries for every operation; no 5xx, responses match the documented
status codes, content types and schemas."""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")


def test_no_server_errors_for_generated_requests(threaded: Any) -> None:
    import requests
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    from liqfast.server.app import SERVICE

    from .conftest import next_bars

    srv = threaded(stale_after_s=600.0)
    svc = srv.app[SERVICE]
    for bar in srv.call(next_bars, svc):  # every venue fresh: /readyz answers 200, not its documented 503
        srv.call(svc.hub.publish, bar)
    spec = requests.get(srv.url + "/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(spec)
    seen: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        op = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                strategy = op.as_strategy(generation_mode=mode)
            except Exception:  # noqa: BLE001 - an operation without a negative space
                continue

            @given(case=strategy)
            @settings(max_examples=12, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def check(case: Any) -> None:
                resp = case.call(base_url=srv.url, timeout=20)
                seen.setdefault(op.label, set()).add(resp.status_code)
                assert resp.status_code < 500, (case.as_curl_command(), resp.status_code, resp.text[:300])
                documented = {str(k) for k in op.definition.raw.get("responses", {})}
                assert str(resp.status_code) in documented, (op.label, resp.status_code, documented)
                if resp.status_code == 200 and resp.headers.get("Content-Type", "").startswith("application/json"):
                    case.operation.validate_response(resp)

            try:
                check()
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE  # nothing invalid to send (no parameters)
    assert any(200 in codes for codes in seen.values())
    assert any(400 in codes for codes in seen.values())
    assert len(seen) >= 10
