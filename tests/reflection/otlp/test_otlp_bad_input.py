"""POST /v1/traces as an outsider would use it: every bad request is a 4xx that says why, in
the request's encoding (a google.rpc.Status), and stores nothing."""
from __future__ import annotations

import gzip
import math

import orjson
import pytest
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from rest_framework.test import APIClient

from casebank.access import services as access_services
from casebank.models import ApiKey
from reflection.models import ExecutionLog
from tests.reflection.otlp.spans import agent_run, export

pytestmark = pytest.mark.django_db

PROTOBUF = "application/x-protobuf"
URL = "/v1/traces"


def _post(client: APIClient, body: bytes, content_type: str = PROTOBUF, **headers: str):
    return client.post(URL, data=body, content_type=content_type, **headers)


def _status(response) -> Status:
    assert response["Content-Type"] == PROTOBUF
    status = Status()
    status.ParseFromString(response.content)
    return status


def _good_body(case) -> bytes:
    return export(*agent_run(str(case.id))).SerializeToString()


def test_it_refuses_a_request_without_a_key_in_the_requests_encoding(anonymous_api, make_case):
    response = _post(anonymous_api, _good_body(make_case()))
    assert response.status_code == 401
    assert "credentials were not provided" in _status(response).message
    assert response["WWW-Authenticate"] == "Token"
    json_answer = anonymous_api.post(URL, data=b"{}", content_type="application/json")
    assert json_answer.status_code == 401 and json_answer.json()["message"] == json_answer.json()["detail"]
    assert ExecutionLog.objects.count() == 0


@pytest.mark.parametrize("header", ["Token cl_not-a-key", "Bearer cl_not-a-key", "Bearer"])
def test_it_refuses_a_wrong_key(anonymous_api, make_case, header):
    response = _post(anonymous_api, _good_body(make_case()), HTTP_AUTHORIZATION=header)
    assert response.status_code == 401 and _status(response).message


def test_it_takes_a_bearer_key(anonymous_api, api_key, make_case):
    response = _post(anonymous_api, _good_body(make_case()), HTTP_AUTHORIZATION=f"Bearer {api_key[1]}")
    assert response.status_code == 200
    assert ExecutionLog.objects.count() == 1
    # The exporting key owns its runs: GET /api/logs/ shows them to it (and not to other keys).
    assert ExecutionLog.objects.get().api_key_id == api_key[0].pk


def test_a_key_without_the_logs_write_scope_is_forbidden(anonymous_api, make_case):
    key, plain = access_services.api_key_create(name="reader")
    ApiKey.objects.filter(pk=key.pk).update(scopes=["cases:read"])
    response = _post(anonymous_api, _good_body(make_case()), HTTP_AUTHORIZATION=f"Token {plain}")
    assert response.status_code == 403
    assert "logs:write" in _status(response).message
    assert ExecutionLog.objects.count() == 0


def test_malformed_protobuf_is_a_400_with_a_message(api):
    response = _post(api, b"\x0a\xff\xff\xff\xff\x0fnot a protobuf")
    assert response.status_code == 400
    assert _status(response).message.startswith("Malformed protobuf")


@pytest.mark.parametrize("content_type", ["text/plain", "application/grpc", "application/octet-stream", "application/x-protobufs"])
def test_an_unsupported_content_type_is_a_415(api, make_case, content_type):
    response = _post(api, _good_body(make_case()), content_type=content_type)
    assert response.status_code == 415
    body = response.json()
    assert "application/x-protobuf" in body["message"] and body["detail"] == body["message"]


def test_an_unsupported_content_encoding_is_a_415(api, make_case):
    response = _post(api, _good_body(make_case()), HTTP_CONTENT_ENCODING="br")
    assert response.status_code == 415 and "gzip" in _status(response).message


def test_a_body_over_the_limit_is_a_413(api, settings, make_case):
    settings.OTLP_MAX_BODY_BYTES = 1_000
    response = _post(api, export(*agent_run(str(make_case().id), llm_calls=20)).SerializeToString())
    assert response.status_code == 413 and "at most 1000 bytes" in _status(response).message


def test_a_gzip_bomb_is_a_413_without_inflating_it(api):
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # 64 MiB of zeros in ~64 KiB
    assert len(bomb) < 100_000
    response = _post(api, bomb, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 413
    assert "Decompressed body too large" in _status(response).message


@pytest.mark.parametrize(
    "body", [b"not gzip at all", gzip.compress(b"x" * 1000)[:-12], gzip.compress(b"") + gzip.compress(b"\x0a\x00")]
)
def test_malformed_or_truncated_gzip_is_a_400(api, body):
    response = _post(api, body, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 400 and "gzip" in _status(response).message


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{not json", "Malformed JSON"),
        (b"[1, 2]", "resourceSpans"),
        (b'{"resourceSpans": 5}', "Malformed OTLP/JSON"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "00"}]}]}]}', "traceId"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0af7651916cd43dd8448eb211c80319c", '
         b'"spanId": "b7ad6b71692033"}]}]}]}', "16 hex digits"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}', "Malformed OTLP/JSON"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 7}]}]}]}', "Malformed OTLP/JSON"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": "a", "value": {"intValue": "1.5"}}]}]}]}]}',
         "Malformed OTLP/JSON"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": 1e400}]}]}]}', "Malformed"),
        (b"[" * 100 + b"]" * 100, "nested more than"),
    ],
)
def test_bad_otlp_json_is_a_400_that_says_why(api, body, message):
    response = _post(api, body, content_type="application/json")
    assert response.status_code == 400, response.content
    answer = response.json()
    assert message in answer["message"] and answer["detail"] == answer["message"]
    assert ExecutionLog.objects.count() == 0


def test_deeply_nested_attribute_values_are_a_400_not_a_crash(api):
    value: dict = {"stringValue": "leaf"}
    for _ in range(60):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": "deep", "value": value}]}]}]}]}
    response = _post(api, orjson.dumps(body), content_type="application/json")
    assert response.status_code == 400
    # The same nesting in protobuf: the parser's recursion limit refuses it.
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    inner = json_format.ParseDict({"stringValue": "leaf"}, AnyValue())
    for _ in range(150):
        outer = AnyValue()
        outer.kvlist_value.values.add(key="k").value.CopyFrom(inner)
        inner = outer
    request = export()
    request.resource_spans[0].scope_spans[0].spans.add(name="deep").attributes.add(key="deep").value.CopyFrom(inner)
    response = _post(api, request.SerializeToString())
    assert response.status_code == 400 and "Malformed protobuf" in _status(response).message


def test_an_export_with_too_many_spans_is_a_400(api, make_case, monkeypatch):
    monkeypatch.setattr("reflection.otlp.decoding.MAX_SPANS", 5)
    request = export(*agent_run(str(make_case().id), llm_calls=5))
    response = _post(api, request.SerializeToString())
    assert response.status_code == 400 and "at most 5 spans" in _status(response).message
    as_json = api.post(URL, data=orjson.dumps(json_format.MessageToDict(request)), content_type="application/json")
    assert as_json.status_code == 400 and "at most 5 spans" in as_json.json()["message"]


def test_a_flood_of_empty_spans_is_refused_before_it_is_parsed(api):
    """2 bytes of protobuf per empty span would be ~170 bytes each once parsed."""
    scope = b"\x12\x00" * 1_000_000
    body = b"\x0a" + _varint(len(scope) + 1 + len(_varint(len(scope)))) + b"\x12" + _varint(len(scope)) + scope
    response = _post(api, body)
    assert response.status_code == 400 and "at most 20000 spans; this one has 1000000" in _status(response).message
    objects = b'{"resourceSpans": [{"scopeSpans": [{"spans": [' + b"{}," * 1_000_000 + b"{}]}]}]}"
    response = _post(api, objects, content_type="application/json")
    assert response.status_code == 400 and "at most 1000000 objects" in response.json()["message"]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def test_content_type_parameters_and_case_are_ignored(api, make_case):
    body = _good_body(make_case())
    assert _post(api, body, content_type="Application/X-Protobuf; proto=opentelemetry").status_code == 200
    # Whatever Accept says, the answer is in the request's encoding (never a 406).
    assert _post(api, body, HTTP_ACCEPT="application/x-protobuf").status_code == 200
    assert _post(api, b"{}", content_type="application/json", HTTP_ACCEPT="text/html").json() == {}
    assert _post(api, b"{}", content_type="application/json; charset=utf-8").json() == {}


def test_an_empty_export_is_a_success_that_stores_nothing(api):
    response = _post(api, b"")
    assert response.status_code == 200 and response.content == b""
    assert _post(api, b"{}", content_type="application/json").json() == {}


@pytest.mark.parametrize(
    "run, problem",
    [
        ({"attrs": {"caseloop.case.id": "not-a-uuid"}}, "caseloop.case.id must be a UUID string"),
        ({"attrs": {"caseloop.case.id": 42}}, "caseloop.case.id must be a UUID string"),
        ({"attrs": {"caseloop.case.version": 0}}, "caseloop.case.version must be a whole number"),
        ({"attrs": {"caseloop.case.version": 99}}, "The case is only at version 1"),
        ({"attrs": {"caseloop.session.id": ["a", "list"]}}, "caseloop.session.id must be a UUID string"),
        ({"attrs": {"gen_ai.usage.cost": math.inf}}, "gen_ai.usage.cost must be a non-negative number"),
        ({"attrs": {"gen_ai.usage.cost": math.nan}}, "gen_ai.usage.cost must be a non-negative number"),
        ({"attrs": {"gen_ai.usage.cost": -1.0}}, "gen_ai.usage.cost must be a non-negative number"),
        ({"attrs": {"gen_ai.usage.input_tokens": -5}}, "gen_ai.usage.input_tokens must be a whole number"),
        ({"attrs": {"gen_ai.usage.input_tokens": 2**40}}, "gen_ai.usage.input_tokens must be a whole number"),
        ({"attrs": {"gen_ai.usage.output_tokens": "12"}}, "gen_ai.usage.output_tokens must be a whole number"),
        ({"duration_ms": 25 * 3600 * 1000}, "lasted more than 24 hours"),
        ({"duration_ms": -5}, "must be set and not after end_time_unix_nano"),
        ({"start_ns": 0}, "must be set and not after end_time_unix_nano"),
        ({"start_ns": 2**62}, "must start between 2000-01-01 and now"),
        ({"start_ns": 10**15}, "must start between 2000-01-01 and now"),
        ({"start_ns": 2**64 - 10**12, "duration_ms": 1}, "must start between 2000-01-01 and now"),
        ({"span_id": b"\0" * 8}, "8-byte span id"),
    ],
)
def test_a_run_that_cannot_be_stored_is_refused_by_partial_success_and_the_rest_stored(api, make_case, run, problem):
    case = make_case()
    good, bad = agent_run(str(case.id)), agent_run(str(case.id), **run)
    response = _post(api, export(*good, *bad).SerializeToString())
    assert response.status_code == 200
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(response.content)
    assert answer.partial_success.rejected_spans == len(bad)
    assert problem in answer.partial_success.error_message
    assert "1 of 2 runs refused" in answer.partial_success.error_message
    assert ExecutionLog.objects.get().context["otlp"]["span_id"] == good[0].span_id.hex()


def test_a_bad_token_count_on_a_child_span_refuses_its_run(api, make_case):
    run = agent_run(str(make_case().id))
    run[1].attributes.add(key="gen_ai.usage.prompt_tokens")  # shadowed by input_tokens: ignored
    run[2].attributes[-1].value.double_value = 1.5  # output_tokens
    response = _post(api, export(*run).SerializeToString())
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(response.content)
    assert answer.partial_success.rejected_spans == 3
    assert "gen_ai.usage.output_tokens must be a whole number" in answer.partial_success.error_message
    assert ExecutionLog.objects.count() == 0


def test_sums_past_the_columns_refuse_the_run(api, make_case):
    case = make_case()
    tokens = agent_run(str(case.id), llm_calls=2, tokens=(2**31 - 1, 1))
    costly = agent_run(str(case.id), llm_calls=2)
    for chat in costly[1:]:
        chat.attributes.add(key="gen_ai.usage.cost").value.double_value = 1.7e308
    response = _post(api, export(*tokens, *costly).SerializeToString())
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(response.content)
    assert answer.partial_success.rejected_spans == 6
    assert "tokens add up to more than" in answer.partial_success.error_message
    assert "costs add up to more than" in answer.partial_success.error_message


def test_the_refusal_message_stays_short_when_every_run_is_refused(api):
    spans = [span for _ in range(50) for span in agent_run("00000000-0000-4000-8000-000000000000")]
    response = _post(api, export(*spans).SerializeToString())
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(response.content)
    assert answer.partial_success.rejected_spans == 150
    assert answer.partial_success.error_message.startswith("50 of 50 runs refused")
    assert "and 45 more" in answer.partial_success.error_message
    assert len(answer.partial_success.error_message) < 2_000


def test_paths_around_the_receiver_answer_json(api, make_case):
    assert _post(api, _good_body(make_case()), content_type=PROTOBUF).status_code == 200
    trailing = api.post("/v1/traces/", data=_good_body(make_case(title="other")), content_type=PROTOBUF)
    assert trailing.status_code == 200
    missing = api.post("/v1/metrics", data=b"", content_type=PROTOBUF)
    assert missing.status_code == 404 and missing.json()["detail"] == "Not found."
    wrong_method = api.get(URL)
    assert wrong_method.status_code == 405 and "GET" in wrong_method.json()["message"]


def test_over_the_keys_rate_it_answers_429_with_retry_after_in_the_requests_encoding(api, settings):
    from django.conf import settings as django_settings

    settings.REST_FRAMEWORK = {
        **django_settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**django_settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "standard": "2/min"},
    }
    statuses = [_post(api, b"").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = _post(api, b"")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "throttled" in _status(refused).message.lower()
