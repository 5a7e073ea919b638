"""Writing a report: media copied once each, a poster frame per video, and the page, swapped in whole.

Everything is written into a temporary folder beside the report's, which then
takes the report's place: a crash leaves the old report (or none), never half
of one. Media files are named by digest, so an output that several steps (or
generations) share is copied once.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from acpbuild.errors import AcpbuildError
from acpbuild.media import run_ffmpeg
from acpbuild.report.data import Asset, Report
from acpbuild.report.render import page

#: how long the bundled ffmpeg may take to cut one poster frame
POSTER_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Written:
    """A report on disk: its page, and what it holds."""

    index: Path
    steps: int
    media: int
    report: Report


def write(report: Report, out: Path) -> Written:
    """Write ``report`` to the folder ``out`` (replacing an earlier report there); return what was written.

    A folder that holds something other than a report is refused, never replaced.
    """
    out = out.absolute()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "index.html").is_file())):
        raise AcpbuildError(f"{out} exists and is not a report; choose another folder with -o")
    temp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    old = out.with_name(f".{out.name}.{os.getpid()}.old")
    try:
        shutil.rmtree(temp, ignore_errors=True)
        (temp / "media").mkdir(parents=True)
        posters = _copy_media(report.assets, temp / "media")
        (temp / "index.html").write_text(page(report, posters), encoding="utf-8")
        count = sum(1 for _ in (temp / "media").iterdir())
        if out.exists():
            os.replace(out, old)
        os.replace(temp, out)
    except OSError as exc:
        raise AcpbuildError(f"cannot write the report to {out}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return Written(out / "index.html", len(report.cards), count, report)


def _copy_media(assets: list[Asset], media: Path) -> set[str]:
    """Copy each asset once into ``media``; return the names of the videos given a poster frame."""
    posters: set[str] = set()
    for asset in assets:
        target = media / asset.name
        if target.exists():
            continue
        shutil.copyfile(asset.source, target)
        if asset.media == "video" and _poster(target, media / asset.poster):
            posters.add(asset.name)
    return posters


def _poster(video: Path, poster: Path) -> bool:
    """Cut the first frame of ``video`` to ``poster`` with the bundled ffmpeg; False when it cannot."""
    try:
        run_ffmpeg(["-i", video, "-frames:v", "1", "-update", "1", poster], timeout=POSTER_TIMEOUT_S)
    except AcpbuildError:
        return False  # an audio-only file, or one ffmpeg cannot read: the player shows no poster
    return poster.is_file()
