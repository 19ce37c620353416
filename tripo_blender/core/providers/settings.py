"""Connection settings as plain values, resolved from preferences and the environment.

Environment variables win over preferences so batch runs can be configured without touching a
user's profile: TRIPO_API_KEY, TRIPO_API_BASE, TRIPO_PROVIDER, TRIPO_DOWNLOAD_DIR, AISTUDIO_API_KEY, AISTUDIO_API_BASE.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

TRIPO_GLOBAL_URL = "https://openapi.tripo3d.ai"
TRIPO_CHINA_URL = "https://openapi.tripo3d.com"
AISTUDIO_URL = "https://api.3daistudio.com"

OFFLINE_MESSAGE = (
    "Online access is off, so Tripo cannot be reached. Turn it on in Preferences > System > "
    "Network > Allow Online Access, or start Blender with --online-mode."
)


@dataclass(frozen=True)
class ConnectionSettings:
    provider: str = "tripo"  # "tripo" or "3daistudio"
    api_key: str = ""
    base_url: str = TRIPO_GLOBAL_URL
    proxy_mode: str = "system"  # "system", "none" or "custom"
    proxy_url: str = ""
    download_dir: str = ""

    def with_environment(self, environ=os.environ) -> "ConnectionSettings":
        provider = environ.get("TRIPO_PROVIDER") or self.provider
        settings = replace(self, provider=provider,
                           download_dir=environ.get("TRIPO_DOWNLOAD_DIR") or self.download_dir)
        if provider == "3daistudio":
            return replace(
                settings,
                api_key=environ.get("AISTUDIO_API_KEY") or settings.api_key,
                base_url=environ.get("AISTUDIO_API_BASE") or settings.base_url,
            )
        return replace(
            settings,
            api_key=environ.get("TRIPO_API_KEY") or settings.api_key,
            base_url=environ.get("TRIPO_API_BASE") or settings.base_url,
        )

    def __repr__(self) -> str:  # never show the key in logs or tracebacks
        shown = f"{self.api_key[:4]}…" if self.api_key else "(none)"
        return (f"ConnectionSettings(provider={self.provider!r}, api_key={shown!r}, "
                f"base_url={self.base_url!r}, proxy_mode={self.proxy_mode!r})")


def make_provider(settings: ConnectionSettings, *, for_engine: bool = False):
    """The provider for these settings (the seam: the Blender layer never names a wire format).

    `for_engine`: the job engine queues refused creates itself (429/2000), so the provider must
    hand them back at once instead of sleeping in the worker thread that polls every job.
    """
    from .http import ProxyConfig

    proxy = ProxyConfig(mode=settings.proxy_mode, url=settings.proxy_url or None)
    if settings.provider == "3daistudio":
        from .aistudio import AIStudioProvider

        return AIStudioProvider(api_key=settings.api_key, base_url=settings.base_url, proxy=proxy)
    from .tripo_v3 import TripoV3Provider

    options = {"create_attempts": 1} if for_engine else {}
    return TripoV3Provider(api_key=settings.api_key, base_url=settings.base_url, proxy=proxy, **options)
