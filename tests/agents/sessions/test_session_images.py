"""Images in `POST /api/sessions/`: the vision agent answers from them beside the plan's workers;
the session, its events, its execution log and the LLM log keep a hash and a size, never the image."""
from __future__ import annotations

import base64
import hashlib
import json

import pytest

from agents.models import Session, SessionEvent
from reflection.models import ExecutionLog, LLMCall
from tests.agents.tools.test_vision_api import JPEG, png
from tests.support.openai_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)
QUESTION = "What does the attached revenue chart show?"
SEEN = "The chart shows revenue rising from January to March."


def _respond(body: dict) -> Reply:
    last = body["messages"][-1]["content"]
    if isinstance(last, list):  # the vision request: text + image parts
        return Reply.json({"answer": SEEN}, prompt_tokens=1200, completion_tokens=15)
    if body.get("stream"):
        return Reply.text("Revenue rose from January to March [1].")
    if "scores" in str(body["messages"][0]["content"]):
        return Reply.json({"scores": {"vision": 0.9}, "rationale": "ok"})
    return Reply.json({"steps": [{"agent": "vision", "action": "Read the chart"}]})


def test_a_session_with_images_asks_the_vision_model_and_keeps_only_hashes(api, session_llm, knowledge):
    session_llm.responder = _respond
    image = png(4, 4)
    encoded = base64.b64encode(image).decode()
    response = api.post("/api/sessions/", {"query": QUESTION, "images": [{"data": encoded},
                                                                         {"data": base64.b64encode(JPEG).decode()}]},
                        format="json")
    assert response.status_code == 202, response.content[:300]
    state = api.get(f"/api/sessions/{response.json()['session_id']}").json()
    assert state["images"][0] == {"sha256": hashlib.sha256(image).hexdigest(), "bytes": len(image),
                                  "media_type": "image/png"}
    assert state["images"][1]["media_type"] == "image/jpeg"
    assert state["results"]["vision"]["answer"] == SEEN
    assert state["scores"]["vision"] == 0.9 and state["status"] == "completed", state["errors"]
    assert state["tokens_in"] >= 1200 and "[1]" in state["answer"]
    assert state["results"]["answer"]["sources"][0]["type"] == "image"
    vision_requests = [r for r in session_llm.requests if isinstance(r["messages"][-1]["content"], list)]
    assert len(vision_requests) == 1
    assert [p["type"] for p in vision_requests[0]["messages"][-1]["content"]] == ["text", "image_url", "image_url"]
    assert [m for m, _, _ in session_llm.images] == ["image/png", "image/jpeg"]
    # Nothing stored holds the image: the session row, its events, its execution log, the LLM calls.
    session = Session.objects.get(pk=state["id"])
    stored = json.dumps([
        list(Session.objects.filter(pk=session.pk).values()),
        list(SessionEvent.objects.filter(session=session).values("data")),
        list(ExecutionLog.objects.filter(session_id=session.pk).values()),
        list(LLMCall.objects.values()),
    ], default=str)
    assert encoded[8:48] not in stored and hashlib.sha256(image).hexdigest() in stored
    select = SessionEvent.objects.get(session=session, kind="select")
    assert [d["decision"] for d in select.data["decisions"] if d["agent"] == "vision"] == ["selected"]


def test_images_join_a_plan_that_does_not_name_the_vision_agent(api, session_llm, knowledge):
    def respond(body: dict) -> Reply:
        planning = "steps" in str(body["messages"][0]["content"])
        if planning and not body.get("stream") and not isinstance(body["messages"][-1]["content"], list):
            return Reply.json({"steps": [{"agent": "information_retrieval", "action": "Find context"}]})
        return _respond(body)

    session_llm.responder = respond
    response = api.post("/api/sessions/", {"query": QUESTION, "images": [{"data": base64.b64encode(png()).decode()}]},
                        format="json")
    session_id = response.json()["session_id"]
    select = SessionEvent.objects.get(session_id=session_id, kind="select")
    assert {"agent": "vision", "decision": "selected", "chosen": "vision",
            "reason": "the session has images"} in select.data["decisions"]
    session = Session.objects.get(pk=session_id)
    assert session.results["vision"].get("answer") == SEEN, session.errors


def test_without_an_llm_the_vision_step_is_skipped_with_the_reason(api, no_llm, knowledge):
    response = api.post("/api/sessions/", {"query": QUESTION, "images": [{"data": base64.b64encode(png()).decode()}]},
                        format="json")
    assert response.status_code == 202
    state = api.get(f"/api/sessions/{response.json()['session_id']}").json()
    assert "vision" not in state["results"]
    assert "needs an LLM" in state["errors"]["select:vision"]["message"]


@pytest.mark.parametrize("images", [
    [{"data": base64.b64encode(b"GIF89a....").decode()}], [{"data": "%%%"}], ["x"], {"data": "x"}, [{"data": 1}],
])
def test_bad_images_answer_400_and_start_no_session(api, no_llm, images):
    response = api.post("/api/sessions/", {"query": QUESTION, "images": images}, format="json")
    assert response.status_code == 400 and "images" in response.json()["errors"]
    assert not Session.objects.exists()


def test_too_many_images_answer_400(api, no_llm, settings):
    settings.VISION_MAX_IMAGES = 1
    response = api.post("/api/sessions/", {"query": QUESTION, "images": [{"data": base64.b64encode(png()).decode()}] * 2},
                        format="json")
    assert response.status_code == 400 and "At most 1 images" in str(response.json())
