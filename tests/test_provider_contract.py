"""The four paid built-in providers pass the contract suite acpbuild ships to plugin authors.

Each class below is what a plugin's author writes for their own adapter
(:mod:`acpbuild.testing.contract`): the adapter, its emulator, the environment
pointing one at the other, and one sample job per catalogued model.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from acpbuild.provider import Model, Provider
from acpbuild.providers.elevenlabs.adapter import ElevenLabsProvider
from acpbuild.providers.fal.adapter import FalProvider
from acpbuild.providers.google.gemini import GoogleProvider
from acpbuild.providers.openrouter.adapter import OpenRouterProvider
from acpbuild.testing import LoopbackServer, ProviderContract, Sample, real_mp4
from tests.emulators.elevenlabs import ElevenLabsEmulator, mp3_bytes
from tests.emulators.fal import FalEmulator
from tests.emulators.google import GoogleEmulator
from tests.emulators.openrouter import OpenRouterEmulator

FAST = {"ACPBUILD_RETRY_BASE_S": "0.01", "ACPBUILD_POLL_INTERVAL_S": "0.02"}


def _inputs(folder: Path) -> dict[str, str]:
    """A real image, audio and video to feed steps that take files."""
    png = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(png, "PNG")
    files = {"image": ("input.png", png.getvalue()), "audio": ("input.mp3", mp3_bytes()), "video": ("input.mp4", real_mp4())}
    for name, data in files.values():
        (folder / name).write_bytes(data)
    return {param: str(folder / name) for param, (name, _) in files.items()}


def _one_per_model(provider: type[Provider], inputs: Path, *, long: bool = False) -> list[Sample]:
    """A sample per catalogued model, of its first kind, with its required parameters set."""
    files = _inputs(inputs)
    samples = []
    for model in provider({}).catalogue().values():
        kind = model.kinds[0]
        samples.append(Sample(kind, model.name, _required(model, kind, files), long=long))
    return samples


def _required(model: Model, kind: str, files: dict[str, str]) -> dict[str, object]:
    params: dict[str, object] = {}
    for name, param in model.params_for(kind).items():
        if param.required:
            params[name] = files.get(param.type, "a lighthouse at dusk")
    return params


class TestFalContract(ProviderContract):
    provider = FalProvider
    key = "test-fal-key-0000"

    def emulator(self) -> LoopbackServer:
        return FalEmulator(key=self.key)

    def env(self, server: LoopbackServer, key: str) -> dict[str, str]:
        return {"FAL_KEY": key, "ACPBUILD_FAL_URL": server.url, **FAST}

    def samples(self, inputs: Path) -> list[Sample]:
        return _one_per_model(FalProvider, inputs, long=True)  # every fal call goes through its queue


class TestElevenLabsContract(ProviderContract):
    provider = ElevenLabsProvider
    key = "test-el-key-0000"

    def emulator(self) -> LoopbackServer:
        return ElevenLabsEmulator(key=self.key)

    def env(self, server: LoopbackServer, key: str) -> dict[str, str]:
        return {"ELEVENLABS_API_KEY": key, "ACPBUILD_ELEVENLABS_URL": server.url, **FAST}

    def samples(self, inputs: Path) -> list[Sample]:
        return _one_per_model(ElevenLabsProvider, inputs)


class TestGoogleContract(ProviderContract):
    provider = GoogleProvider
    key = "test-google-key-0000"

    def emulator(self) -> LoopbackServer:
        return GoogleEmulator()

    def env(self, server: LoopbackServer, key: str) -> dict[str, str]:
        return {"GEMINI_API_KEY": key, "ACPBUILD_GOOGLE_URL": server.url, **FAST}

    def samples(self, inputs: Path) -> list[Sample]:
        # Veo's videos are long-running operations; Gemini answers at once
        return [
            Sample(s.kind, s.model, s.params, long=s.model.startswith("veo"))
            for s in _one_per_model(GoogleProvider, inputs)
        ]


class TestOpenRouterContract(ProviderContract):
    provider = OpenRouterProvider
    key = "test-or-key-0000"

    def emulator(self) -> LoopbackServer:
        return OpenRouterEmulator(key=self.key)

    def env(self, server: LoopbackServer, key: str) -> dict[str, str]:
        return {"OPENROUTER_API_KEY": key, "ACPBUILD_OPENROUTER_URL": f"{server.url}/api/v1", **FAST}

    def samples(self, inputs: Path) -> list[Sample]:
        return _one_per_model(OpenRouterProvider, inputs)
