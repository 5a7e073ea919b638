"""The older YAML tool's vocabulary, and the acpbuild name each word becomes.

Plain data for :mod:`acpbuild.cli.importer` and :mod:`acpbuild.cli.import_models`,
whose docstrings say how each table is applied. Teaching ``acpbuild import``
another step type, model name or parameter spelling of the older tool means
adding a row here. Model names are looked up after normalising (lower case,
``_`` and spaces -> ``-``), so one row serves ``flux_dev`` and ``flux-dev``.
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
    "replicate_multitalk": "avatar",  # and a mix_audio step for its two voices
    "multitalk": "avatar",
    "llm": "text",
    "text": "text",
    "text_generation": "text",
    "prompt_generation": "text",  # image_understanding when an image comes before it
    "image_understanding": "image_understanding",
    "add_audio": "add_audio",
    "upscale": "upscale_video",
    "upscale_video": "upscale_video",
    "video_upscale": "upscale_video",
    "generate_subtitles": "subtitles",
    "subtitles": "subtitles",
    "mux": "mux",
    "merge_audio_video": "mux",
    "concat": "concat",
    "concat_videos": "concat",
    "thumbnail": "thumbnail",
    "transcode": "transcode",
}

#: step types of the older tool that acpbuild has no kind for -> why; such a step is
#: kept in the recipe, commented out, and the step after it takes the one before
NO_KIND: dict[str, str] = {
    "upscale_image": "acpbuild has no image upscaler (no kind upscales an image)",
    "split_image": "acpbuild has no kind that splits an image into parts",
    "speech_to_text": "acpbuild has no speech-to-text kind",
    "transcribe": "acpbuild has no speech-to-text kind",
    "stt": "acpbuild has no speech-to-text kind",
}

#: names the older tool used for a model acpbuild serves -> (provider, catalogue key);
#: a key of None means "the provider's only model for the step's kind"
MODEL_ALIASES: dict[str, tuple[str, str | None]] = {
    "local": ("local", None),
    "flux": ("fal", "flux-dev"),
    "seedream-v3": ("fal", "seedream"),
    "seedream3": ("fal", "seedream"),
    "imagen-4": ("fal", "imagen4"),
    "kontext": ("fal", "flux-kontext"),
    "hailuo": ("fal", "hailuo-02"),
    "minimax-hailuo": ("fal", "hailuo-02"),
    "minimax-hailuo-02": ("fal", "hailuo-02"),
    "kling-2.1": ("fal", "kling"),
    "kling-2-1": ("fal", "kling"),
    "kling-v2.1": ("fal", "kling"),
    "kling-v2-1": ("fal", "kling"),
    "kling-2.1-master": ("fal", "kling"),
    "veo-3": ("fal", "veo3"),
    "seedance-v1-pro": ("fal", "seedance"),
    "mmaudio-v2": ("fal", "mmaudio"),
    "topaz-upscale": ("fal", "topaz"),
    "ai-avatar": ("fal", "kling-avatar"),
    "ai-avatar-single-text": ("fal", "kling-avatar"),  # with a text_to_speech step before it
    "elevenlabs": ("elevenlabs", "eleven_multilingual_v2"),
    "elevenlabs-v2": ("elevenlabs", "eleven_multilingual_v2"),
    "elevenlabs-v3": ("elevenlabs", "eleven_v3"),
    "elevenlabs-turbo": ("elevenlabs", "eleven_turbo_v2_5"),
    "elevenlabs-flash": ("elevenlabs", "eleven_flash_v2_5"),
    "gemini": ("google", "gemini-2.5-flash"),
    "gemini-pro": ("google", "gemini-2.5-pro"),
    "nano-banana": ("google", "gemini-2.5-flash-image"),
    "nano-banana-edit": ("google", "gemini-2.5-flash-image"),
    "veo3-google": ("google", "veo-3.0-generate-001"),
    "veo3-fast": ("google", "veo-3.0-fast-generate-001"),
    "video-tools": ("local", "captions"),
}

#: names the older tool used for a model acpbuild does not serve -> (provider, catalogue
#: key, why this one): the closest model of the same kind, chosen by hand. The recipe
#: names the original in a comment and the import warns.
SUBSTITUTES: dict[str, tuple[str, str, str]] = {
    "eleven-monolingual-v1": ("elevenlabs", "eleven_multilingual_v2", "ElevenLabs retired Monolingual v1 for Multilingual v2"),
    "eleven-multilingual-v1": ("elevenlabs", "eleven_multilingual_v2", "Multilingual v2 replaces v1"),
    "eleven-turbo-v2": ("elevenlabs", "eleven_turbo_v2_5", "Turbo v2.5 replaces v2"),
    "eleven-flash-v2": ("elevenlabs", "eleven_flash_v2_5", "Flash v2.5 replaces v2"),
    "minimax-hailuo-pro": ("fal", "hailuo-02", "acpbuild serves MiniMax Hailuo-02 Standard (768P), not Pro (1080p)"),
    "hailuo-pro": ("fal", "hailuo-02", "acpbuild serves MiniMax Hailuo-02 Standard (768P), not Pro (1080p)"),
    "veo2": ("fal", "veo3", "Veo 3 on fal is the successor of fal's Veo 2"),
    "gen4": ("fal", "imagen4", "acpbuild does not serve Runway; Imagen 4 is its closest prompt-faithful image model"),
    "dalle3": ("fal", "imagen4", "acpbuild does not serve OpenAI's image models; Imagen 4 is its closest prompt-faithful one"),
    "dall-e-3": ("fal", "imagen4", "acpbuild does not serve OpenAI's image models; Imagen 4 is its closest prompt-faithful one"),
    "stable-diffusion": ("fal", "flux-dev", "acpbuild does not serve Stable Diffusion; FLUX.1 dev takes the same steps and guidance"),
    "photon-flash": ("fal", "flux-kontext", "acpbuild does not serve Luma Photon; FLUX.1 Kontext edits an image from a prompt"),
    "photon-base": ("fal", "flux-kontext", "acpbuild does not serve Luma Photon; FLUX.1 Kontext edits an image from a prompt"),
    "flux-kontext-multi": ("fal", "flux-kontext", "acpbuild's FLUX.1 Kontext takes one image, not several"),
    "seededit-v3": ("fal", "flux-kontext", "acpbuild does not serve SeedEdit; FLUX.1 Kontext edits an image from a prompt"),
    "clarity-upscaler": ("fal", "flux-kontext", "acpbuild serves no image upscaler; FLUX.1 Kontext redraws the image from a prompt"),
    "thinksound": ("fal", "mmaudio", "acpbuild does not serve ThinkSound; MMAudio v2 also makes a video's soundtrack from a prompt"),
    "ai-avatar-multi": ("fal", "kling-avatar", "acpbuild's Kling avatar animates one person"),
    "multitalk": ("fal", "kling-avatar", "acpbuild does not serve MultiTalk; the Kling avatar animates one person speaking"),
}

#: the older tool's image_understanding models: each is Gemini with a preset instruction,
#: which becomes the step's prompt ({question} is the step's question parameter)
UNDERSTANDING_PRESETS: dict[str, str] = {
    "gemini-describe": "Describe this image briefly.",
    "gemini-detailed": "Describe this image in detail: its subjects, setting, colours, lighting and mood.",
    "gemini-classify": "Classify this image: say what kind of image it is and name its main category.",
    "gemini-objects": "List the objects in this image, one per line.",
    "gemini-ocr": "Read out all the text in this image, exactly as it is written.",
    "gemini-composition": "Describe the composition of this image: framing, balance, lines, colour and light.",
    "gemini-qa": "Answer this question about the image: {question}",
}
#: the model those presets run on (the older tool used Gemini through Google's API)
UNDERSTANDING_MODEL = ("google", "gemini-2.5-flash")

#: the older tool's prompt_generation models: each is an LLM on OpenRouter with a style
#: preset for writing a video-motion prompt from the image and the input text
PROMPT_STYLES: dict[str, str] = {
    "openrouter-video-prompt": "clear and general",
    "openrouter-video-cinematic": "cinematic: camera moves, framing, lighting and pacing of a film shot",
    "openrouter-video-realistic": "realistic, like a documentary: natural motion, light and sound",
    "openrouter-video-artistic": "artistic and creative: expressive motion and stylised visuals",
    "openrouter-video-dramatic": "dramatic: strong emotion, tension, bold motion and light",
}
#: the model those presets run on: the older tool used google/gemini-2.0-flash-001 on
#: OpenRouter, which acpbuild does not serve; this is its successor there
PROMPT_MODEL = ("openrouter", "google/gemini-2.5-flash")
PROMPT_MODEL_WAS = "google/gemini-2.0-flash-001"

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
    "subtitles": ("local", "captions"),
    "mux": ("local", "ffmpeg"),
    "concat": ("local", "ffmpeg"),
    "mix_audio": ("local", "ffmpeg"),
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
    "analysis_prompt": "prompt",
    "max_output_tokens": "max_tokens",
    "inference_steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "scale": "upscale_factor",
    # fixed texts: they replace the text flowing in from the step before
    "text_override": "text",
    "subtitle_text": "text",
}
#: fixed texts, which win over a plain ``text`` in the same step
FIXED_TEXTS = ("text_override", "subtitle_text")

#: the older tool's default prompt for image_to_image, and for its upscaler
I2I_PROMPT = "modify this image"
UPSCALE_PROMPT = "Keep this image exactly as it is, redrawn sharper and at higher detail."
#: the older tool's subtitle timing: words shown per second
WORDS_PER_SECOND = 2.0

#: the older tool's premade ElevenLabs voices (lower case) -> the voice acpbuild writes:
#: the name as ElevenLabs lists it, or the voice id where ElevenLabs renamed the voice
VOICES: dict[str, str] = {
    name: name.title()
    for name in ["rachel", "drew", "clyde", "paul", "domi", "dave", "fin", "antoni", "thomas", "charlie", "emily", "elli", "callum", "patrick", "harry", "liam", "dorothy", "josh", "arnold", "charlotte", "matilda", "james", "joseph", "jeremy", "michael", "ethan", "gigi", "freya", "grace", "daniel", "serena", "adam", "nicole", "jessie", "ryan", "sam", "glinda", "giovanni", "mimi"]
}
VOICES["bella"] = "EXAVITQu4vr4xnSDxMaL"  # listed as "Sarah" since ElevenLabs renamed it

#: where the older tool named a step's output file
OUTPUT_KEYS = ("output_filename", "output_file", "output", "output_path")
#: image counts: one step makes one file
COUNT_KEYS = ("num_images", "num_outputs")
#: keys of a step that are not parameters (everything else of a step goes under params/config)
STEP_KEYS = {
    "type", "step_type", "model", "params", "config", "enabled", "name", "output_filename",
    "retry_count", "input_from", "description", "provider",
}  # fmt: skip
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
#: aspect ratios for fal's named sizes, for models that take aspect_ratio
ASPECT_OF: dict[str, str] = {
    "landscape_16_9": "16:9",
    "landscape_4_3": "4:3",
    "square_hd": "1:1",
    "square": "1:1",
    "portrait_4_3": "3:4",
    "portrait_16_9": "9:16",
}
#: the top-level keys of a pipeline file that import
TOP_KEYS: set[str] = {
    "name", "pipeline_name", "description", "prompt", "steps", "output_dir", "output_directory",
    "global_config", "cost_limit", "budget_usd", "input_image", "input_video", "input_type",
}  # fmt: skip
#: settings of the older tool that acpbuild has no use for -> why
IGNORED: dict[str, str] = {
    "temp_dir": "acpbuild keeps work files in its store",
    "cleanup_temp": "acpbuild cleans its own work files",
    "save_intermediates": "acpbuild keeps every step's output",
    "config": "the older tool's run settings",
}
