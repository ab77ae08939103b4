"""Request shapes shared by the agent endpoints and `POST /api/sessions/`: images as base64."""
from __future__ import annotations

from typing import Any

from rest_framework import serializers

from agents.tools.vision import Image, ImageRejected, decode_images


class _TextOnly(serializers.CharField):
    """A number is not base64 text, though DRF's CharField would take 42 as "42"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ImageInputSerializer(serializers.Serializer):
    # SerializerMetaclass moves declared fields off the class, so this does not shadow
    # Serializer.data; the stub cannot know that.
    data = _TextOnly(  # type: ignore[assignment]
        trim_whitespace=False,
        help_text="The image file as base64 (or a data: URL): PNG, JPEG or WebP, recognised by its first bytes; "
                  "at most VISION_MAX_IMAGE_BYTES (1,500,000) decoded. Never stored: only its SHA-256 and size.",
    )


def images_field(*, required: bool) -> ImageInputSerializer:
    return ImageInputSerializer(
        many=True, required=required, allow_empty=not required,
        help_text="Images for the vision agent, at most VISION_MAX_IMAGES (4).",
    )


def clean_images(value: list[dict[str, Any]]) -> list[Image]:
    """The serializer's `validate_images`: decoded images, or a field error saying why not."""
    try:
        return decode_images(value)
    except ImageRejected as error:
        raise serializers.ValidationError(str(error)) from None
