"""The local provider's models and their parameters.

Parameter names mirror fal's where fal has one (``prompt``, ``image_size``,
``seed``, ``image``), because ``--draft`` swaps paid steps for these stand-ins
with the same parameters. A :class:`Param` is either required for every kind a
model serves or for none, so ``prompt``, which ``text_to_image`` needs and
``image_to_image`` only accepts, is declared optional and checked in ``image.py``.
"""

from __future__ import annotations

from acpbuild.provider import Model, Param

# fal's named sizes, width x height.
IMAGE_SIZES: dict[str, tuple[int, int]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}

OPERATIONS: tuple[str, ...] = ("grayscale", "blur", "sharpen", "mirror", "posterize")

# How transcode reframes a video into a width x height of another shape.
REFRAMES: tuple[str, ...] = ("stretch", "crop", "pad")


def _size(help_: str, kinds: tuple[str, ...] | None = None) -> Param:
    return Param("int", min=16, max=4096, kinds=kinds, help=help_)


_SEED = Param("int", default=0, help="changes the output; the same seed gives the same file")

CATALOGUE: dict[str, Model] = {
    "template": Model(
        name="template",
        endpoints={"text": "local/template"},
        params={
            "prompt": Param("str", required=True, help="the words the text is built from"),
            "seed": _SEED,
            "sentences": Param("int", default=2, min=1, max=20, help="how many sentences"),
        },
        description="Deterministic sentences built from the prompt's words; no language model.",
    ),
    "facts": Model(
        name="facts",
        endpoints={"image_understanding": "local/facts"},
        params={
            "image": Param("image", required=True, help="the image to describe"),
            "prompt": Param("str", help="the question; quoted in the answer, not interpreted"),
        },
        description="Measurable facts about an image: size, mode, dominant colours.",
    ),
    "pillow": Model(
        name="pillow",
        endpoints={"text_to_image": "local/pillow", "image_to_image": "local/pillow-ops"},
        params={
            "prompt": Param("str", help="drawn on the image; required for text_to_image"),
            "image_size": Param(
                "str",
                default="landscape_4_3",
                choices=tuple(IMAGE_SIZES),
                kinds=("text_to_image",),
                help="a named size; width and height together override it",
            ),
            "width": _size("output width in pixels"),
            "height": _size("output height in pixels"),
            "seed": Param("int", default=0, kinds=("text_to_image",), help="changes the colours"),
            "image": Param(
                "image", required=True, kinds=("image_to_image",), help="the image to transform"
            ),
            "operation": Param(
                "str",
                default="grayscale",
                choices=OPERATIONS,
                kinds=("image_to_image",),
                help="the transform to apply",
            ),
        },
        description="A gradient card with the prompt drawn on it, or a Pillow transform.",
    ),
    "espeak": Model(
        name="espeak",
        endpoints={"text_to_speech": "local/espeak-ng"},
        params={
            "text": Param("str", required=True, help="what to say"),
            "voice": Param(
                "str", default="en", help='an eSpeak NG voice: "en", "en-us", "de", "en+f3"'
            ),
            "speed": Param("int", default=175, min=80, max=450, help="words per minute"),
            "pitch": Param("int", default=50, min=0, max=99, help="base pitch, 0 to 99"),
        },
        description="Offline speech synthesis with eSpeak NG.",
    ),
    "kenburns": Model(
        name="kenburns",
        endpoints={"image_to_video": "local/kenburns"},
        params={
            "image": Param("image", required=True, help="the still to pan over"),
            "prompt": Param("str", help="accepted for compatibility; not used"),
            "duration_s": Param("float", default=5.0, min=0.5, max=120, help="length in seconds"),
            "fps": Param("int", default=25, min=1, max=60, help="frames per second"),
            "zoom": Param("float", default=1.2, min=1.0, max=2.0, help="zoom at the last frame"),
            "width": _size("output width; default: the image's, rounded down to even"),
            "height": _size("output height; default: the image's, rounded down to even"),
        },
        description="A slow zoom and pan over a still image (ffmpeg zoompan, H.264).",
    ),
    "titlecard": Model(
        name="titlecard",
        endpoints={"text_to_video": "local/titlecard"},
        params={
            "prompt": Param("str", required=True, help="the text on the card"),
            "duration_s": Param("float", default=5.0, min=0.5, max=120, help="length in seconds"),
            "fps": Param("int", default=25, min=1, max=60, help="frames per second"),
            "width": Param("int", default=1280, min=16, max=4096, help="output width"),
            "height": Param("int", default=720, min=16, max=4096, help="output height"),
            "seed": _SEED,
        },
        description="The prompt drawn on a card, with the Ken Burns pan.",
    ),
    "ffmpeg": Model(
        name="ffmpeg",
        endpoints={
            "mux": "local/ffmpeg-mux",
            "thumbnail": "local/ffmpeg-thumbnail",
            "transcode": "local/ffmpeg-transcode",
            "concat": "local/ffmpeg-concat",
            "mix_audio": "local/ffmpeg-mix",
        },
        params={
            "video": Param(
                "video", required=True, kinds=("mux", "thumbnail", "transcode"), help="the input video"
            ),
            "videos": Param(
                "files", required=True, kinds=("concat",), help="the videos to join, in order"
            ),
            "audio": Param("audio", required=True, kinds=("mux",), help="the soundtrack"),
            "fit": Param(
                "str",
                default="longest",
                choices=("longest", "shortest"),
                kinds=("mux",),
                help="longest: hold the last frame so audio is never cut; shortest: cut both",
            ),
            "at_s": Param(
                "float", default=0.0, min=0, kinds=("thumbnail",), help="time of the frame"
            ),
            "width": _size("output width; alone, keeps the aspect ratio", ("transcode",)),
            "height": _size("output height; alone, keeps the aspect ratio", ("transcode",)),
            "fps": Param("int", min=1, max=120, kinds=("transcode", "concat"), help="frames per second"),
            "reframe": Param(
                "str",
                choices=REFRAMES,
                kinds=("transcode",),
                help="with width and height: stretch (default), crop to fill, or pad",
            ),
            "subtitles": Param(
                "file", kinds=("transcode",), help="an .srt whose captions are drawn onto the video"
            ),
            "audios": Param(
                "files", required=True, kinds=("mix_audio",), help="the audio files, in order"
            ),
            "mode": Param(
                "str",
                default="sequence",
                choices=("sequence", "overlay"),
                kinds=("mix_audio",),
                help="sequence: one after another; overlay: all at once",
            ),
            "gap_s": Param(
                "float",
                default=0.0,
                min=0,
                max=10,
                kinds=("mix_audio",),
                help="silence between clips in sequence mode",
            ),
        },
        description="Local ffmpeg operations: mux, thumbnail, transcode, concat, mix_audio.",
    ),
    "captions": Model(
        name="captions",
        endpoints={"subtitles": "local/captions"},
        params={
            "text": Param("str", required=True, help="the words the captions show"),
            "audio": Param("audio", help="the narration; the captions span its duration"),
            "duration_s": Param(
                "float", min=0.1, max=36000, help="how long the captions span, without audio"
            ),
            "words_per_cue": Param(
                "int", default=6, min=1, max=40, help="at most this many words on screen at once"
            ),
        },
        description="An .srt or .vtt from a text, timed across a narration or a duration.",
    ),
}
