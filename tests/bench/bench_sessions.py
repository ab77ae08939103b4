"""Supervisor sessions at load: 200 (then 1,000) sessions posted at once through the API to one
session runner process, every LLM call answered correctly by a local OpenAI-compatible server
after a fixed 0.5 s (planner, Text2SQL, judge, the streamed answer: four calls, 2 s of waiting
per session).

Processes: gunicorn (the API, posts), uvicorn (the event stream), one `manage.py run_sessions`,
PostgreSQL and Redis, all on this machine's cores with the load generator and the LLM server.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
from django.conf import settings

from agents.demo import data as demo_data
from agents.knowledge.services import documents_load_path
from agents.models import Session, SessionEvent
from casebank.access import services as access_services
from tests.bench.support import ROOT, database_url, percentile, redis_server, server

NAME = "sessions"
TITLE = "Supervisor sessions: 200 and 1,000 at once on one runner, LLM answering after 0.5 s"
LLM_DELAY_S = 0.5
QUERY = "What was the total order revenue per region this year, and what is our refund policy? ({n})"
PLAN = {"steps": [{"agent": "data_analysis", "action": "Sum order totals by region"},
                  {"agent": "information_retrieval", "action": "Find the refund policy"}]}
SQL = "SELECT region, ROUND(SUM(total), 2) AS revenue FROM orders GROUP BY region ORDER BY revenue DESC"
SCORES = {"scores": {"data_analysis": 0.9, "information_retrieval": 0.8}, "rationale": "answers both parts"}
STREAM_SAMPLE = 20


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: a burst of connections past it would be dropped
    # and retried a second later, which a real provider's server does not do.
    request_queue_size = 1024


class LLMServer:
    """Answers planner, Text2SQL, judge and (streamed) answer calls correctly, each after LLM_DELAY_S."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in two writes: with Nagle on, the body waits for the client's
            # delayed ACK (~40 ms a call on loopback), which no real provider's server adds.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                # The client adds its own system message: look for each caller's in all of them.
                text = json.dumps(body["messages"])
                with outer._lock:
                    outer.calls += 1
                time.sleep(LLM_DELAY_S)
                if body.get("stream"):
                    self._stream(_answer_text(body["messages"]))
                    return
                answer = (PLAN if "You are the planner" in text
                          else {"sql": SQL} if "You translate questions into SQL" in text else SCORES)
                payload = json.dumps({
                    "id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "bench-model"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": json.dumps(answer)},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 300, "completion_tokens": 40, "total_tokens": 340},
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _stream(self, answer: str) -> None:
                """The answer call: text streamed as OpenAI's chunks, then usage, then [DONE]."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": int(time.time()),
                        "model": "bench-model"}
                words = answer.split(" ")
                for i in range(0, len(words), 8):
                    piece = " ".join(words[i:i + 8]) + (" " if i + 8 < len(words) else "")
                    chunk = {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                usage = {**base, "choices": [], "usage": {"prompt_tokens": 600, "completion_tokens": 60, "total_tokens": 660}}
                self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
                self.wfile.flush()
                self.close_connection = True

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()


def _answer_text(messages: list[dict]) -> str:
    """A grounded answer: the first line of each of the first two sources, cited, numbers copied."""
    prompt = str(messages[-1].get("content", ""))
    sources = re.findall(r"^\[(\d+)\] [^\n]*\n([^\n]+)", prompt, flags=re.MULTILINE)
    if not sources:
        return "No answer found in the sources."
    return " ".join(f"{line.strip()[:200]} [{n}]" for n, line in sources[:2])


def _post(base: str, key: str, queries: list[str], *, on_posted: Any = None) -> list[tuple[str, float]]:
    host, port = base.removeprefix("http://").split(":")

    def one(query: str) -> tuple[str, float]:
        client = http.client.HTTPConnection(host, int(port), timeout=60)
        client.request("POST", "/api/sessions/", body=json.dumps({"query": query}),
                       headers={"Authorization": f"Token {key}", "Content-Type": "application/json"})
        response = client.getresponse()
        body = response.read()
        client.close()
        assert response.status == 202, body
        posted = json.loads(body)["session_id"], time.time()
        if on_posted is not None:
            on_posted(*posted)
        return posted

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(one, queries))


def _first_event(base: str, key: str, session_id: str, posted: float, results: list[float]) -> None:
    """Seconds from the post until the first event past `queued` arrives over SSE."""
    host, port = base.removeprefix("http://").split(":")
    client = http.client.HTTPConnection(host, int(port), timeout=120)
    client.request("GET", f"/api/sessions/{session_id}/stream", headers={"Authorization": f"Token {key}"})
    response = client.getresponse()
    while True:
        line = response.fp.readline().decode()
        if not line:
            break
        if line.startswith("id: ") and int(line[4:]) >= 2:
            results.append(time.time() - posted)
            break
    client.close()


def _wave(n: int, *, api: str, sse: str, key: str, runner: psutil.Process, llm: LLMServer) -> dict[str, Any]:
    calls_before = llm.calls
    cpu_before = runner.cpu_times()
    peak_rss = [runner.memory_info().rss]
    peak_threads = [runner.num_threads()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak_rss[0] = max(peak_rss[0], runner.memory_info().rss)
            peak_threads[0] = max(peak_threads[0], runner.num_threads())
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.time()
    streams: list[float] = []
    readers: list[threading.Thread] = []
    readers_lock = threading.Lock()

    def read_stream(session_id: str, at: float) -> None:
        # Each sampled stream is opened as soon as its session is posted, like a client would.
        with readers_lock:
            if len(readers) >= min(STREAM_SAMPLE, n):
                return
            reader = threading.Thread(target=_first_event, args=(sse, key, session_id, at, streams))
            readers.append(reader)
        reader.start()

    posted = _post(api, key, [QUERY.format(n=i) for i in range(n)], on_posted=read_stream)
    posting = time.time() - started
    ids = [sid for sid, _ in posted]
    deadline = time.time() + 600
    while Session.objects.filter(pk__in=ids, finished_at__isnull=True).exists() and time.time() < deadline:
        time.sleep(0.2)
    wall = time.time() - started
    stop.set()
    for reader in readers:
        reader.join(30)
    cpu_after = runner.cpu_times()
    sessions = list(Session.objects.filter(pk__in=ids).values("id", "status", "created_at", "finished_at", "errors"))
    latencies = [(s["finished_at"] - s["created_at"]).total_seconds() for s in sessions if s["finished_at"]]
    firsts = {}
    for session_id, created in SessionEvent.objects.filter(session_id__in=ids, sequence=2).values_list("session_id", "created_at"):
        firsts[session_id] = created
    pickup = [(firsts[s["id"]] - s["created_at"]).total_seconds() for s in sessions if s["id"] in firsts]
    statuses: dict[str, int] = {}
    for s in sessions:
        statuses[s["status"]] = statuses.get(s["status"], 0) + 1
    # A wait for the budget is a notice (`BudgetWait`); a failure is a budget that stayed spent.
    budget_failures = sum(1 for s in sessions if "BudgetExhausted" in json.dumps(s["errors"]))
    errors: dict[str, int] = {}
    for s in sessions:
        for agent, error in (s["errors"] or {}).items():
            name = f"{agent}: {error.get('type') if isinstance(error, dict) else error}"
            errors[name] = errors.get(name, 0) + 1
    return {
        "n": n, "wall": wall, "posting": posting, "statuses": statuses, "latencies": latencies, "pickup": pickup, "streams": streams,
        "rss_mb": peak_rss[0] / 2**20, "threads": peak_threads[0], "cpu_s": (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system),
        "llm_calls": llm.calls - calls_before, "budget_failures": budget_failures, "errors": errors,
    }


def _line(result: dict[str, Any]) -> str:
    lat, pick, streams = result["latencies"], result["pickup"], result["streams"]
    return (
        f"| {result['n']} | {result['wall']:.1f} s ({result['posting']:.1f} s posting) | {', '.join(f'{k} {v}' for k, v in sorted(result['statuses'].items()))} "
        f"| {percentile(lat, 0.5):.2f} / {percentile(lat, 0.95):.2f} / {percentile(lat, 0.99):.2f} s "
        f"| {percentile(pick, 0.5) * 1000:.0f} / {percentile(pick, 0.95) * 1000:.0f} ms "
        f"| {percentile(streams, 0.5) * 1000:.0f} / {percentile(streams, 0.95) * 1000:.0f} ms ({len(streams)} streams) "
        f"| {result['rss_mb']:.0f} MB | {result['threads']} | {result['cpu_s']:.1f} s | {result['llm_calls']} |"
    )


# Sessions one runner holds at once (`--capacity`): the product's default (AGENTS_RUNNER_CAPACITY, 300)
# unless BENCH_RUNNER_CAPACITY sets another. Past it, posted sessions wait queued in the database.
CAPACITY = int(os.environ.get("BENCH_RUNNER_CAPACITY", "0")) or int(settings.AGENTS_RUNNER_CAPACITY)


def run(context: dict[str, Any]) -> str:
    out = context["stdout"]
    documents_load_path(demo_data.DEMO_DOCS_DIR)
    _, key = access_services.api_key_create(name="bench-sessions", tier="premium")
    llm = LLMServer()
    sizes = [int(x) for x in os.environ.get("BENCH_SESSIONS", "200,1000").split(",")]
    with tempfile.TemporaryDirectory(prefix="caseloop-bench-sessions-") as directory, redis_server() as redis_url:
        analytics = Path(directory) / "analytics.sqlite3"
        demo_data.create_demo_analytics_db(analytics)
        env = {
            "AGENTS_RUNNER": "1", "REDIS_URL": redis_url, "ANALYTICS_DATABASE_URL": f"sqlite:///{analytics}",
            "OPENAI_API_KEY": "bench-key", "OPENAI_BASE_URL": llm.base_url, "LLM_MODEL": "bench-model",
            "LLM_RETRY_ATTEMPTS": "1", "LLM_TIMEOUT_SECONDS": "30",
            # The cost guard counts every request in one shared table; the supervisor's own
            # budget is set to a provider's real limits at a paid tier (OpenAI's tier 4 for a
            # small model: 10,000 requests and 10 M tokens a minute), not this benchmark's subject.
            "LLM_CALLS_PER_MINUTE": str(4 * max(sizes)), "AGENTS_MAX_ITERATIONS": "1",
            "AGENTS_LLM_REQUESTS_PER_MINUTE": "10000", "AGENTS_LLM_TOKENS_PER_MINUTE": "10000000",
            # One client posts them all: the per-key throttle and session quota are not what is measured.
            "API_RATE_PREMIUM": "1000000/min", "AGENTS_SESSIONS_PER_KEY_PREMIUM": str(max(sizes)),
        }
        runner_env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "config.settings",
                      "LOG_LEVEL": "WARNING", **env}
        log = open(Path(directory) / "runner.log", "wb")  # noqa: SIM115
        # BENCH_RUNNER_WRAP runs the runner under a profiler, e.g. "py-spy record -o runner.svg --".
        wrap = shlex.split(os.environ.get("BENCH_RUNNER_WRAP", ""))
        process = subprocess.Popen([*wrap, sys.executable, "manage.py", "run_sessions", "--capacity", str(CAPACITY)],
                                   cwd=ROOT, env=runner_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            runner = psutil.Process(process.pid)
            while wrap and not runner.children():  # the profiler starts the runner as its child
                time.sleep(0.05)
            runner = runner.children()[0] if wrap else runner
            with server(kind="gunicorn", workers=4, extra_env=env) as (api, _), \
                    server(kind="uvicorn", workers=1, extra_env=env) as (sse, _):
                # The runner is ready once it has loaded the embedding model and claims.
                _post(api, key, ["warm-up: what is our refund policy? (w)"])
                deadline = time.time() + 180
                while Session.objects.filter(finished_at__isnull=True).exists() and time.time() < deadline:
                    time.sleep(0.2)
                idle_rss = runner.memory_info().rss / 2**20
                single_calls = llm.calls
                single = _wave(1, api=api, sse=sse, key=key, runner=runner, llm=llm)
                single_wait = (llm.calls - single_calls) * LLM_DELAY_S
                results = []
                for n in sizes:
                    out.write(f"  {n} sessions ...")
                    results.append(_wave(n, api=api, sse=sse, key=key, runner=runner, llm=llm))
                    out.write(f"  {_line(results[-1])}")
        finally:
            # Under a profiler the runner is the one to stop: the profiler then writes and exits.
            for target in psutil.Process(process.pid).children() if wrap else [process]:
                target.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()
            llm.stop()

    first = results[0] if results else None
    lines = [
        f"One `manage.py run_sessions` process (capacity {CAPACITY}: it holds that many sessions at once, the "
        "rest wait queued in the database; 8 database threads, 8 worker threads, its LLM "
        f"calls awaited on the event loop through one AsyncOpenAI pool of {CAPACITY:,} connections), "
        "sessions posted through gunicorn (4 workers) by 16 client threads, "
        f"{STREAM_SAMPLE} of them read over SSE from uvicorn. Every LLM call is answered after "
        f"{LLM_DELAY_S} s: planner, Text2SQL, judge, streamed answer (4 calls, {4 * LLM_DELAY_S:.1f} s of waiting "
        "per session); the supervisor's LLM budget is a paid tier's 10,000 requests / 10 M tokens a minute. "
        "All finished = from the first post until the last session ended, posting (one key, its posts "
        "counted against its quota one at a time) included; latency = post to finished; pickup = post to the runner's first event (database timestamps); "
        "first SSE event = post to the first event past `queued` read by a real client; RSS is the runner's peak "
        "with the embedding model loaded, threads its peak thread count; CPU is the runner's user+system time "
        "in the wave.",
        "",
        "| sessions | all finished | status | latency p50 / p95 / p99 | pickup p50 / p95 | first SSE event p50 / p95 | runner RSS | runner threads | runner CPU | LLM calls |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[_line(r) for r in results],
        "",
        *[f"Errors with {r['n']}: " + (", ".join(f"{k} × {v}" for k, v in sorted(r["errors"].items())) or "none") + "."
          for r in results],
        "",
        f"Single session alone: {single['latencies'][0]:.2f} s for {single_wait:.1f} s of LLM waiting "
        f"({single['latencies'][0] - single_wait:+.2f} s; target within 0.3 s). Runner RSS idle after "
        f"the warm-up session: {idle_rss:.0f} MB.",
    ]
    if first is not None:
        met = (first["statuses"].get("completed", 0) == first["n"] and first["wall"] <= 15
               and percentile(first["streams"], 0.95) < 1 and first["rss_mb"] < 600)
        lines += ["", f"Targets for {first['n']} (all complete, within 15 s, p95 first event < 1 s, RSS < 600 MB, "
                      f"none failed for a budget: {first['budget_failures']} did): **{'met' if met else 'not met'}**."]
    return "\n".join(lines)
