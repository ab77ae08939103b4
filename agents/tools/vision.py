"""The multimodal agent: a question about images, answered by an OpenAI-compatible vision model.

Images come as base64 in JSON (`images: [{"data": "<base64>"}]`), are recognised by their magic
bytes (PNG, JPEG, WebP; the claimed type is never trusted) and bounded in count
(`VISION_MAX_IMAGES`) and size (`VISION_MAX_IMAGE_BYTES`, checked on the base64 length before
decoding). They go to `VISION_MODEL` (else `LLM_MODEL`) as `image_url` content parts with the
question, through the same client as the other agents (`agents.runtime.llm.json_steps`,
purpose `supervisor.vision`: budget, retries, breaker, an `LLMCall` row with the tokens).
Nothing keeps an image: logs, sessions and answers hold its SHA-256, size and type only.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from openai.types.chat import ChatCompletionContentPartParam, ChatCompletionMessageParam

from agents.runtime import llm
from agents.runtime.llm import LLMError, llm_client
from core.cache import layered_get, layered_set
from reflection.llm.steps import Steps, run_sync

VISION = "vision"
# How long a session's images wait in the cache for its run: queueing plus every iteration.
SESSION_IMAGES_SECONDS = 900
NO_LLM_MESSAGE = (
    "The vision agent needs an LLM that reads images and none is configured (set OPENAI_API_KEY and "
    "VISION_MODEL, or LLM_MODEL to a vision model)."
)
VISION_SCHEMA = {
    "type": "object",
    "required": ["answer"],
    "properties": {"answer": {"type": "string", "minLength": 1}},
}


class ImageRejected(ValueError):
    """An image that is not one we accept; `str()` says why (a 400)."""


@dataclass(frozen=True)
class Image:
    data: bytes
    media_type: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def ref(self) -> dict[str, Any]:
        """What may be stored and shown: never the bytes."""
        return {"sha256": self.sha256, "bytes": len(self.data), "media_type": self.media_type}

    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{base64.b64encode(self.data).decode('ascii')}"


def media_type_of(data: bytes) -> str | None:
    """PNG, JPEG or WebP by their signatures; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def decode_images(items: list[dict[str, Any]]) -> list[Image]:
    """Decode and check `[{"data": base64}, ...]` (already shaped by the serializer)."""
    max_images, max_bytes = int(settings.VISION_MAX_IMAGES), int(settings.VISION_MAX_IMAGE_BYTES)
    if len(items) > max_images:
        raise ImageRejected(f"At most {max_images} images per request (VISION_MAX_IMAGES); got {len(items)}.")
    images = []
    for index, item in enumerate(items):
        text = item["data"]
        if text.startswith("data:") and "," in text:
            text = text.split(",", 1)[1]  # a data URL's header says nothing we trust
        # Checked before decoding: base64 is 4 characters per 3 bytes.
        if len(text) > 4 * math.ceil(max_bytes / 3):
            raise ImageRejected(f"Image {index} is larger than {max_bytes} bytes (VISION_MAX_IMAGE_BYTES).")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ImageRejected(f"Image {index} is not valid base64.") from None
        if not data:
            raise ImageRejected(f"Image {index} is empty.")
        if len(data) > max_bytes:
            raise ImageRejected(f"Image {index} is larger than {max_bytes} bytes (VISION_MAX_IMAGE_BYTES).")
        media_type = media_type_of(data)
        if media_type is None:
            raise ImageRejected(f"Image {index} is not a PNG, JPEG or WebP image (by its first bytes).")
        images.append(Image(data=data, media_type=media_type))
    return images


def images_keep(session_id: object, images: list[Image]) -> None:
    """Hold a session's images for its run in the shared cache (Redis in production: every
    runner reads it), for `SESSION_IMAGES_SECONDS`; never in the database."""
    layered_set(_images_key(session_id), [(image.media_type, image.data) for image in images], SESSION_IMAGES_SECONDS)


def images_load(session_id: object, refs: list[dict[str, Any]]) -> list[Image] | None:
    """The session's images, checked against their stored hashes; None when they are gone."""
    kept = layered_get(_images_key(session_id))
    if not isinstance(kept, list):
        return None
    images = [Image(data=data, media_type=media_type) for media_type, data in kept]
    if [image.sha256 for image in images] != [ref.get("sha256") for ref in refs]:
        return None
    return images


def _images_key(session_id: object) -> str:
    return f"agents:session-images:{session_id}"


@dataclass
class VisionAnswer:
    answer: str
    images: list[dict[str, Any]]
    tokens_in: int
    tokens_out: int
    cost_usd: float
    model: str

    def as_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "images": self.images, "tokens_in": self.tokens_in,
                "tokens_out": self.tokens_out, "cost_usd": self.cost_usd, "model": self.model}


def vision_available() -> bool:
    return llm_client() is not None


def vision_messages(question: str, images: list[Image]) -> list[ChatCompletionMessageParam]:
    parts: list[ChatCompletionContentPartParam] = [{"type": "text", "text": question}]
    parts += [{"type": "image_url", "image_url": {"url": image.data_url()}} for image in images]
    return [
        {"role": "system", "content": "You answer questions about the attached images. Say only what the images show."},
        {"role": "user", "content": parts},
    ]


def vision_answer(*, question: str, images: list[Image], listener: llm.BudgetListener | None = None) -> VisionAnswer:
    """Ask the vision model; raises `LLMError` (or `LLMUnavailable`) when it cannot answer."""
    return run_sync(vision_steps(question=question, images=images, listener=listener))


def vision_steps(*, question: str, images: list[Image], listener: llm.BudgetListener | None = None) -> Steps[VisionAnswer]:
    """`vision_answer` as steps (a session awaits the call on its event loop)."""
    result = yield from llm.json_steps(name=VISION, messages=vision_messages(question, images), schema=VISION_SCHEMA,
                               model=str(settings.VISION_MODEL), listener=listener)
    return VisionAnswer(answer=str(result.data["answer"]), images=[image.ref() for image in images],
                        tokens_in=result.tokens_in, tokens_out=result.tokens_out, cost_usd=result.cost_usd,
                        model=result.model)


__all__ = ["NO_LLM_MESSAGE", "VISION", "Image", "ImageRejected", "LLMError", "VisionAnswer", "decode_images",
           "media_type_of", "vision_answer", "vision_available", "vision_steps"]
