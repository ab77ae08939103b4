"""Whatever an agent passes, the log the client builds is one the server's validator accepts:
checked with the server's own rules (reflection.logs.services.parse_record, the JSON depth limit)
over generated values, NUL, NaN, infinities, huge numbers and deep or odd contexts included."""
from __future__ import annotations

import json
import uuid

from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from caseloop_client.logs import build_log
from core.parsers import MAX_JSON_DEPTH, nested_deeper_than
from reflection.logs.services import parse_record

anything = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(),
)
json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
              st.floats(allow_nan=True, allow_infinity=True), st.text()),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)


def _deep(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels):
        value = {"x": value}
    return value


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    success=st.booleans(),
    elapsed=anything,
    version=anything,
    texts=st.tuples(st.text(), st.text(), st.text()),
    tokens=st.tuples(anything, anything),
    cost=anything,
    context=st.one_of(st.none(), st.dictionaries(st.text(max_size=8), json_like, max_size=5),
                      st.integers(50, 80).map(_deep)),
)
def test_every_built_log_is_one_the_server_takes(success, elapsed, version, texts, tokens, cost, context):
    log = build_log(
        success=success, execution_time_ms=elapsed, case_version=version, session_id=uuid.uuid4(),
        error_type=texts[0], error_message=texts[1] * 50, model=texts[2], tokens_in=tokens[0], tokens_out=tokens[1],
        cost_usd=cost, context=context,
    )
    body = json.loads(json.dumps([log], allow_nan=False))  # what goes over the wire, strict JSON
    assert not nested_deeper_than(body, MAX_JSON_DEPTH)
    record, errors = parse_record(body[0], timezone.now())
    assert errors == {} and record is not None
