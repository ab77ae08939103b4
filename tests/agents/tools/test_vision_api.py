"""`POST /api/agents/vision/`: images (base64 PNG/JPEG/WebP) with a question go to the vision
model as image content parts through the real `openai` SDK; hostile images answer 400, no LLM
503; only a hash and the size of an image are ever kept."""
from __future__ import annotations

import base64
import hashlib
import logging
import struct
import zlib

import pytest
from rest_framework.test import APIClient

from reflection.models import LLMCall
from tests.support.openai_server import Reply

pytestmark = pytest.mark.django_db


def png(width: int = 2, height: int = 2) -> bytes:
    """A real PNG (grey pixels), made by hand: no imaging library needed."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64 + b"\xff\xd9"
WEBP = b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8L" + b"\x00" * 22


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()



def ask(client: APIClient, images: object, question: object = "What is in the picture?"):
    return client.post("/api/agents/vision/", {"question": question, "images": images}, format="json")


def test_it_sends_the_images_as_content_parts_with_the_question(caller, llm_settings, openai_server, settings):
    settings.VISION_MODEL = "vision-test-model"
    openai_server.reply(Reply.json({"answer": "A grey square."}, prompt_tokens=900, completion_tokens=12))
    images = [png(), JPEG, WEBP]
    response = ask(caller, [{"data": b64(images[0])}, {"data": "data:image/jpeg;base64," + b64(images[1])},
                            {"data": b64(images[2])}])
    assert response.status_code == 200, response.content[:300]
    body = response.json()
    assert body["answer"] == "A grey square." and body["tokens_in"] == 900 and body["tokens_out"] == 12
    assert body["model"] == "vision-test-model"
    assert [i["media_type"] for i in body["images"]] == ["image/png", "image/jpeg", "image/webp"]
    assert body["images"][0] == {"sha256": hashlib.sha256(images[0]).hexdigest(), "bytes": len(images[0]),
                                 "media_type": "image/png"}
    # The request as the server saw it: the vision model, the question and three image parts.
    sent = openai_server.requests[-1]
    assert sent["model"] == "vision-test-model"
    parts = sent["messages"][-1]["content"]
    assert parts[0] == {"type": "text", "text": "What is in the picture?"}
    assert [p["type"] for p in parts[1:]] == ["image_url"] * 3
    assert parts[1]["image_url"]["url"] == "data:image/png;base64," + b64(images[0])
    assert [(m, h) for m, h, _ in openai_server.images] == [
        ("image/png", hashlib.sha256(images[0]).hexdigest()), ("image/jpeg", hashlib.sha256(JPEG).hexdigest()),
        ("image/webp", hashlib.sha256(WEBP).hexdigest())]


def test_it_logs_the_call_and_its_tokens_but_never_the_image(caller, llm_settings, openai_server, caplog):
    openai_server.reply(Reply.json({"answer": "Grey."}, prompt_tokens=800, completion_tokens=5))
    image = png(8, 8)
    with caplog.at_level(logging.DEBUG):
        assert ask(caller, [{"data": b64(image)}]).status_code == 200
    call = LLMCall.objects.get(purpose="supervisor.vision")
    assert (call.outcome, call.tokens_in, call.tokens_out) == ("ok", 800, 5) and call.cost_usd > 0
    encoded = b64(image)
    assert encoded[:40] not in caplog.text
    assert all(encoded[:40] not in str(value) for value in LLMCall.objects.values().first().values())


def test_it_answers_503_with_a_clear_message_without_an_llm(caller, no_llm):
    response = ask(caller, [{"data": b64(png())}])
    assert response.status_code == 503
    assert "vision agent needs an LLM" in response.json()["detail"] and "VISION_MODEL" in response.json()["detail"]


def test_it_answers_503_when_the_model_fails(caller, llm_settings, openai_server):
    openai_server.default = Reply.error(500)
    response = ask(caller, [{"data": b64(png())}])
    assert response.status_code == 503 and "could not answer" in response.json()["detail"]


@pytest.mark.parametrize("images,message", [
    ([{"data": b64(b"GIF89a" + b"\x00" * 40)}], "not a PNG, JPEG or WebP"),
    ([{"data": b64(b"%PDF-1.7 not an image")}], "not a PNG, JPEG or WebP"),
    ([{"data": b64(b"RIFF\x00\x00\x00\x00WAVEfmt ")}], "not a PNG, JPEG or WebP"),
    ([{"data": "not base64 at all!!"}], "not valid base64"),
    ([{"data": b64(png())[:-3]}], "not valid base64"),
    ([{"data": ""}], "may not be blank"),
    (["just a string"], "Expected a dictionary"),
    ([42], "Expected a dictionary"),
    ([{"data": 42}], "Not a valid string"),
    ([{"data": ["nested"]}], "Not a valid string"),
    ([{}], "This field is required"),
    ({"data": "x"}, "Expected a list"),
    ("abc", "Expected a list"),
    ([], "may not be empty"),
    (None, "may not be null"),
])
def test_it_refuses_what_is_not_an_image_with_400(caller, llm_settings, openai_server, images, message):
    response = ask(caller, images)
    assert response.status_code == 400, response.content[:300]
    assert message in str(response.json()), response.json()
    assert openai_server.requests == []


def test_it_refuses_too_many_or_too_large_images_before_calling_the_model(caller, llm_settings, openai_server,
                                                                          settings):
    settings.VISION_MAX_IMAGES = 2
    too_many = ask(caller, [{"data": b64(png())}] * 3)
    assert too_many.status_code == 400 and "At most 2 images" in str(too_many.json())
    settings.VISION_MAX_IMAGE_BYTES = 1000
    large = png() + b"\x00" * 2000  # a PNG signature, 2 KB
    too_large = ask(caller, [{"data": b64(large)}])
    assert too_large.status_code == 400 and "larger than 1000 bytes" in str(too_large.json())
    assert openai_server.requests == []


def test_a_body_over_the_upload_limit_answers_413(caller, llm_settings, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000
    response = ask(caller, [{"data": b64(png() + b"\x00" * 200_000)}])
    assert response.status_code == 413 and "at most 100000 bytes" in response.json()["detail"]


@pytest.mark.parametrize("question", [None, ["a"], {"q": 1}, "", "x" * 5001])
def test_it_refuses_a_bad_question_with_400(caller, llm_settings, question):
    assert ask(caller, [{"data": b64(png())}], question=question).status_code == 400


def test_it_needs_an_api_key(anonymous_api, llm_settings):
    assert ask(anonymous_api, [{"data": b64(png())}]).status_code in (401, 403)


def test_an_image_counts_as_a_fixed_token_estimate_not_its_base64_length():
    from agents.tools.vision import Image, vision_messages
    from reflection.llm import budgets

    big = Image(data=png() + b"\x00" * 1_000_000, media_type="image/png")
    estimate = budgets.estimate_tokens(vision_messages("What is it?", [big, big]))
    assert 2 * budgets.IMAGE_TOKENS < estimate < 2 * budgets.IMAGE_TOKENS + 1_000


def test_the_openapi_schema_documents_images_and_the_concurrency_429(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    vision = schema["paths"]["/api/agents/vision/"]["post"]
    assert set(vision["responses"]) >= {"200", "503"}
    components = schema["components"]["schemas"]
    assert "base64" in components["ImageInputRequest"]["properties"]["data"]["description"]
    assert components["SessionListCreateApiInputRequest"]["properties"]["images"]["type"] == "array"
    assert "sha256" in components["SessionOutput"]["properties"]["images"]["description"]
    assert "429" in schema["paths"]["/api/agents/data-analysis/"]["post"]["responses"]
