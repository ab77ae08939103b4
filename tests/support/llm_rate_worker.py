"""A separate process that makes LLM calls through the real client (the rate-limit test).

Usage: python -m tests.support.llm_rate_worker CALLS GO_FILE [PURPOSE]. Configured by the environment
(DATABASE_URL, OPENAI_*); prints "ready", waits for GO_FILE, then prints a JSON tally.
"""
from __future__ import annotations

import json
import os
import sys
import time


def main() -> None:
    calls, go_file = int(sys.argv[1]), sys.argv[2]
    purpose = sys.argv[3] if len(sys.argv) > 3 else "rate-test"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from reflection.llm import LLMUnavailable, get_llm_client

    client = get_llm_client()
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(go_file) and time.monotonic() < deadline:
        time.sleep(0.01)
    tally = {"ok": 0, "rate_limited": 0}
    for _ in range(calls):
        try:
            client.complete_json(
                purpose=purpose,
                messages=[{"role": "user", "content": "hi"}],
                schema={"type": "object", "required": ["answer"]},
            )
            tally["ok"] += 1
        except LLMUnavailable as exc:
            tally[exc.reason] = tally.get(exc.reason, 0) + 1
    print(json.dumps(tally), flush=True)


if __name__ == "__main__":
    main()
