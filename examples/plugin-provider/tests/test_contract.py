"""acpbuild's provider contract, run against the Runway emulator through the real SDK."""

from __future__ import annotations

from pathlib import Path

from acpbuild.testing import LoopbackServer, ProviderContract, Sample
from PIL import Image

from acpbuild_runway import RunwayProvider

from emulator import RunwayEmulator


class TestRunwayContract(ProviderContract):
    provider = RunwayProvider
    key = "test-runway-key"

    def emulator(self) -> LoopbackServer:
        return RunwayEmulator(key=self.key)

    def env(self, server: LoopbackServer, key: str) -> dict[str, str]:
        return {
            "RUNWAYML_API_SECRET": key,
            "RUNWAYML_BASE_URL": server.url,
            # short waits: Runway's own advice is a poll every 5 s
            "ACPBUILD_POLL_INTERVAL_S": "0.01",
            "ACPBUILD_RETRY_BASE_S": "0.01",
        }

    def samples(self, inputs: Path) -> list[Sample]:
        first = inputs / "first.png"
        Image.new("RGB", (64, 48), (20, 120, 220)).save(first)
        # every Runway generation is a task to poll: both samples are long
        return [
            Sample(
                "image_to_video",
                "gen4-turbo",
                {"image": str(first), "prompt": "slow push in", "seed": 1},
                ".mp4",
                long=True,
            ),
            Sample(
                "text_to_image",
                "gen4-image",
                {
                    "prompt": "@Hero on a pier",
                    "resolution": "720p",
                    "references": [str(first)],
                    "reference_tags": ["Hero"],
                },
                ".png",
                long=True,
            ),
        ]
