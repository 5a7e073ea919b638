"""Step kinds: what each produces, and which media types its inputs take."""

from __future__ import annotations

from typing import Literal

Media = Literal["text", "image", "audio", "video", "subtitles"]

# kind -> the type of its output. A text output is inlined where another step
# references it; a media output is passed as a file.
KINDS: dict[str, Media] = {
    "text": "text",
    "image_understanding": "text",
    "text_to_image": "image",
    "image_to_image": "image",
    "text_to_video": "video",
    "image_to_video": "video",
    "text_to_speech": "audio",
    "avatar": "video",
    "add_audio": "video",
    "upscale_video": "video",
    "mux": "video",
    "concat": "video",
    "mix_audio": "audio",
    "subtitles": "subtitles",
    "transcode": "video",
    "thumbnail": "image",
}

# The file suffixes that fit each media type; the first is the default.
SUFFIXES: dict[Media, tuple[str, ...]] = {
    "text": (".txt", ".md", ".json"),
    "image": (".png", ".jpg", ".jpeg", ".webp"),
    "audio": (".mp3", ".wav"),
    "video": (".mp4", ".mov", ".webm"),
    "subtitles": (".srt", ".vtt"),
}


def media_of_suffix(suffix: str) -> Media | None:
    """The media type a file suffix stands for, or None."""
    suffix = suffix.lower()
    for media, suffixes in SUFFIXES.items():
        if suffix in suffixes:
            return media
    return None
