"""The older YAML tool's vocabulary, and the acpbuild name each word becomes.

Plain data for :mod:`acpbuild.cli.importer`, whose docstring says how each table is
applied. Teaching ``acpbuild import`` another step type, model name or parameter
spelling of the older tool means adding a row here.
"""

from __future__ import annotations

#: the older tool's step types -> acpbuild kinds
KIND_OF: dict[str, str] = {
    "text_to_image": "text_to_image",
    "image_to_image": "image_to_image",
    "image_edit": "image_to_image",
    "text_to_video": "text_to_video",
    "image_to_video": "image_to_video",
    "text_to_speech": "text_to_speech",
    "tts": "text_to_speech",
    "avatar": "avatar",
    "avatar_generation": "avatar",
    "llm": "text",
    "text": "text",
    "text_generation": "text",
    "prompt_generation": "text",  # image_understanding when it follows an image
    "image_understanding": "image_understanding",
    "add_audio": "add_audio",
    "upscale": "upscale_video",
    "upscale_video": "upscale_video",
    "video_upscale": "upscale_video",
    "mux": "mux",
    "merge_audio_video": "mux",
    "concat": "concat",
    "concat_videos": "concat",
    "thumbnail": "thumbnail",
    "transcode": "transcode",
}

#: names the older tool used for models -> (provider, catalogue key); a key of
#: None means "the provider's only model for the step's kind"
MODEL_ALIASES: dict[str, tuple[str, str | None]] = {
    "local": ("local", None),
    "flux": ("fal", "flux-dev"),
    "seedream-v3": ("fal", "seedream"),
    "seedream3": ("fal", "seedream"),
    "imagen-4": ("fal", "imagen4"),
    "kontext": ("fal", "flux-kontext"),
    "hailuo": ("fal", "hailuo-02"),
    "hailuo-pro": ("fal", "hailuo-02"),
    "minimax-hailuo-02": ("fal", "hailuo-02"),
    "kling-2.1": ("fal", "kling"),
    "kling-2-1": ("fal", "kling"),
    "kling-v2.1": ("fal", "kling"),
    "kling-v2-1": ("fal", "kling"),
    "kling-2.1-master": ("fal", "kling"),
    "veo-3": ("fal", "veo3"),
    "seedance-v1-pro": ("fal", "seedance"),
    "thinksound": ("fal", "mmaudio"),
    "mmaudio-v2": ("fal", "mmaudio"),
    "topaz-upscale": ("fal", "topaz"),
    "elevenlabs": ("elevenlabs", "eleven_multilingual_v2"),
    "elevenlabs-v2": ("elevenlabs", "eleven_multilingual_v2"),
    "elevenlabs-v3": ("elevenlabs", "eleven_v3"),
    "elevenlabs-turbo": ("elevenlabs", "eleven_turbo_v2_5"),
    "elevenlabs-flash": ("elevenlabs", "eleven_flash_v2_5"),
    "gemini": ("google", "gemini-2.5-flash"),
    "gemini-describe": ("google", "gemini-2.5-flash"),
    "gemini-detailed": ("google", "gemini-2.5-flash"),
    "gemini-classify": ("google", "gemini-2.5-flash"),
    "gemini-qa": ("google", "gemini-2.5-flash"),
    "gemini-pro": ("google", "gemini-2.5-pro"),
    "nano-banana": ("google", "gemini-2.5-flash-image"),
    "nano-banana-edit": ("google", "gemini-2.5-flash-image"),
    "veo3-google": ("google", "veo-3.0-generate-001"),
    "veo3-fast": ("google", "veo-3.0-fast-generate-001"),
}

#: kind -> the model a step without one gets (the older tool's own defaults)
DEFAULT_MODEL: dict[str, tuple[str, str]] = {
    "text": ("openrouter", "google/gemini-2.5-flash"),
    "image_understanding": ("google", "gemini-2.5-flash"),
    "text_to_image": ("fal", "flux-dev"),
    "image_to_image": ("fal", "flux-kontext"),
    "text_to_video": ("fal", "hailuo-02"),
    "image_to_video": ("fal", "hailuo-02"),
    "text_to_speech": ("elevenlabs", "eleven_multilingual_v2"),
    "avatar": ("fal", "kling-avatar"),
    "add_audio": ("fal", "mmaudio"),
    "upscale_video": ("fal", "topaz"),
    "mux": ("local", "ffmpeg"),
    "concat": ("local", "ffmpeg"),
    "thumbnail": ("local", "ffmpeg"),
    "transcode": ("local", "ffmpeg"),
}

#: the older tool's parameter names -> acpbuild's, where they differ
PARAM_RENAMES: dict[str, str] = {
    "duration": "duration_s",
    "duration_seconds": "duration_s",
    "voice_id": "voice",
    "voice_name": "voice",
    "image_url": "image",
    "input_image": "image",
    "image_path": "image",
    "image_file": "image",
    "audio_url": "audio",
    "input_audio": "audio",
    "audio_path": "audio",
    "audio_file": "audio",
    "video_url": "video",
    "input_video": "video",
    "video_path": "video",
    "video_file": "video",
    "system_prompt": "system",
    "question": "prompt",
    "max_output_tokens": "max_tokens",
    "inference_steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "scale": "upscale_factor",
}

#: where the older tool named a step's output file
OUTPUT_KEYS = ("output_filename", "output_file", "output", "output_path")
#: image counts: one step makes one file, so only 1 converts
COUNT_KEYS = ("num_images", "num_outputs")
#: merge strategies and the older tool's spellings of them
MERGES: dict[str, str] = {
    "collect_all": "collect_all",
    "all": "collect_all",
    "collect": "collect_all",
    "first_success": "first_success",
    "first": "first_success",
    "fallback": "first_success",
    "best_quality": "best_quality",
    "best": "best_quality",
}
#: image_size names for an aspect ratio, for models that take fal's named sizes
IMAGE_SIZE_OF: dict[str, str] = {
    "16:9": "landscape_16_9",
    "4:3": "landscape_4_3",
    "1:1": "square_hd",
    "3:4": "portrait_4_3",
    "9:16": "portrait_16_9",
}
#: the top-level keys of a pipeline file that import; any other is reported as ignored
TOP_KEYS: set[str] = {
    "name", "pipeline_name", "description", "prompt", "steps", "output_dir", "output_directory",
    "global_config", "cost_limit", "budget_usd",
}  # fmt: skip
