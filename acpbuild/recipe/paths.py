"""Where a step's output goes: a relative path inside ``output_dir`` whose suffix fits its media."""

from __future__ import annotations

import os
from pathlib import Path

from acpbuild.recipe.file import Where
from acpbuild.recipe.kinds import SUFFIXES, Media, media_of_suffix


def output_path(
    output: str, output_dir: Path, media: Media, at: tuple[str, ...], where: Where, what: str
) -> Path:
    if not output or Path(output).is_absolute():
        raise where.error(
            f"output {output!r} must be a relative path inside output_dir", at, f"output_dir is {output_dir}"
        )
    # lexical: output_dir is already resolved, and a syscall per output adds up over 10,000 items
    path = Path(os.path.normpath(output_dir / output))
    if not path.is_relative_to(output_dir):
        raise where.error(f"output {output!r} escapes output_dir", at, f"keep outputs inside {output_dir}")
    if media_of_suffix(path.suffix) != media:
        raise where.error(
            f"output {output!r} does not fit {what}, which makes {media}",
            at,
            "use a suffix among " + ", ".join(SUFFIXES[media]),
        )
    return path
