"""Message templates group the same error and keep different ones apart (issue #15): a quote
rule that started at a word's apostrophe, hex ids without `0x`, and messages cut at 200
characters. PostgreSQL computes the same template in SQL for logs stored without one."""
from __future__ import annotations

import random
from datetime import timedelta

import pytest

from reflection.analysis.engine import analyze_case
from reflection.analysis.engine.stats import TEMPLATE_MAX_LENGTH, message_template
from tests.reflection.factories import NOW, add_logs

TRACEBACK_HEAD = (
    "Traceback (most recent call last):\n"
    '  File "/srv/agents/tools/sql.py", line 214, in run\n'
    "    rows = cursor.execute(statement, params).fetchall()\n"
    '  File "/srv/agents/tools/db.py", line 88, in execute\n'
    "    return self._conn.execute(sql, args)\n"
)


def _hex_id(rng: random.Random, length: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(length))


def test_it_keeps_apostrophes_of_words_out_of_quotes() -> None:
    connect, parse = message_template("Couldn't connect to 'db-1'"), message_template("Couldn't parse 'db-2'")
    assert connect != parse
    assert connect == "Couldn't connect to '<str>'"
    assert parse == "Couldn't parse '<str>'"
    assert message_template("it's the user's 'pg-2' pool") == "it's the user's '<str>' pool"


def test_it_masks_hex_ids_without_0x_into_one_template() -> None:
    rng = random.Random(15)
    messages = [f"object {_hex_id(rng, 12)} not found in bucket {_hex_id(rng, 8)}" for _ in range(40)]
    assert {message_template(m) for m in messages} == {"object <hex> not found in bucket <hex>"}
    # Words made of the letters a-f and short numbers stay as they were.
    assert message_template("decade facade at step 12") == "decade facade at step <n>"


def test_it_keeps_long_messages_with_different_endings_apart() -> None:
    key_error = TRACEBACK_HEAD + "KeyError: 'region'"
    timeout = TRACEBACK_HEAD + "TimeoutError: statement timed out after 30000 ms"
    assert len(TRACEBACK_HEAD) > TEMPLATE_MAX_LENGTH
    assert message_template(key_error) != message_template(timeout)
    # The same traceback with other numbers and quoted values is still one template.
    assert message_template(timeout) == message_template(
        TRACEBACK_HEAD.replace("214", "215") + "TimeoutError: statement timed out after 45000 ms")
    assert message_template(key_error) == message_template(TRACEBACK_HEAD + "KeyError: 'country'")
    for message in (key_error, timeout):
        template = message_template(message)
        assert len(template) <= TEMPLATE_MAX_LENGTH
        assert template.startswith("Traceback (most recent call last):")


@pytest.mark.django_db
def test_the_database_groups_logs_without_a_stored_template_the_same_way(make_case) -> None:
    rng = random.Random(7)
    messages = [
        "Couldn't connect to 'db-1'", "Couldn't parse 'db-2'", "Couldn't parse 'db-3'",
        *(f"object {_hex_id(rng, 12)} not found" for _ in range(5)),
        TRACEBACK_HEAD + "KeyError: 'region'", TRACEBACK_HEAD + "TimeoutError: timed out after 30000 ms",
        "élan 'vital' lost at 0x1F step 4",
    ]
    case = make_case()
    for message in messages:
        add_logs(case, success=False, error_type="Boom", error_message=message, age=timedelta(hours=2))

    [errors] = analyze_case(case_id=case.pk, now=NOW)["common_errors"]

    expected: dict[str, int] = {}
    for message in messages:
        expected[message_template(message)] = expected.get(message_template(message), 0) + 1
    assert {t["template"]: t["count"] for t in errors["templates"]} == dict(
        sorted(expected.items(), key=lambda item: (-item[1], item[0]))[:5])
    assert len(expected) == 6
