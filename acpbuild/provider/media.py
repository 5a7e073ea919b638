"""Media helpers for adapters: the bundled ffmpeg, probing and decoding a file.

:func:`run_ffmpeg` runs the ffmpeg acpbuild ships (imageio-ffmpeg) in its own
process group, under a timeout; :func:`probe` reads a file's streams, size and
duration; :func:`decode` decodes its first seconds; :func:`input_file` resolves
a step's input path with a clear error when it is missing.
"""

from acpbuild.media import MediaInfo, decode, ffmpeg_exe, input_file, probe, run_ffmpeg

__all__ = ["MediaInfo", "decode", "ffmpeg_exe", "input_file", "probe", "run_ffmpeg"]
