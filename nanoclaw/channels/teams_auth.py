"""Tokens of the Teams channel: checking the Bot Framework's JWT on each inbound activity, and the bot's own
access token for the Bot Connector (OAuth 2.0 client credentials).

The Agents SDK's JwtTokenValidator always fetches keys from login.botframework.com (its JWKS address
is fixed, no setting), so the same checks are made here with PyJWT, the library the SDK uses, from
a metadata address that can be changed (a sovereign cloud, or a test server). Likewise the SDK's
token provider is MSAL, which accepts only https authorities; the client-credentials request is
one form POST.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import jwt

from nanoclaw.errors import ChannelUnavailable

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
DEFAULT_OPENID_URL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
CONNECTOR_SCOPE = "https://api.botframework.com/.default"
LEEWAY = 300  # seconds, as the Agents SDK allows between the Bot Framework's clock and ours
METADATA_MAX_AGE = 24 * 3600.0


class TokenRefused(Exception):
    """The bearer token of an inbound activity is not the Bot Framework's for this bot (the text says why)."""


class TokenValidator:
    def __init__(self, app_id: str, openid_url: str | None = None) -> None:
        self.app_id = app_id
        self.openid_url = openid_url or DEFAULT_OPENID_URL
        self._keys: jwt.PyJWKClient | None = None
        self._issuer = BOT_FRAMEWORK_ISSUER
        self._fetched = 0.0
        self._lock = asyncio.Lock()

    async def check(self, token: str, service_url: str | None) -> dict[str, Any]:
        """The token's claims; TokenRefused when it is missing, forged, expired, for another bot or service."""
        if not token:
            raise TokenRefused("no bearer token")
        try:
            keys = await self._key_client()
            key = await asyncio.to_thread(keys.get_signing_key_from_jwt, token)
            claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=self.app_id, issuer=self._issuer,
                                leeway=LEEWAY, options={"require": ["exp", "iss", "aud"]})
        except (jwt.PyJWTError, httpx.HTTPError, ValueError, KeyError) as exc:
            raise TokenRefused(f"token not valid: {type(exc).__name__}") from exc
        claimed = claims.get("serviceurl")
        if service_url is not None and claimed is not None and _norm(str(claimed)) != _norm(service_url):
            raise TokenRefused("the activity's serviceUrl is not the one the token was issued for")
        return claims

    async def _key_client(self) -> jwt.PyJWKClient:
        async with self._lock:
            if self._keys is None or time.monotonic() - self._fetched > METADATA_MAX_AGE:
                async with httpx.AsyncClient(timeout=15) as client:
                    response = await client.get(self.openid_url)
                    response.raise_for_status()
                    metadata = response.json()
                self._keys = jwt.PyJWKClient(str(metadata["jwks_uri"]), cache_keys=True, lifespan=METADATA_MAX_AGE)
                self._issuer = str(metadata.get("issuer") or BOT_FRAMEWORK_ISSUER)
                self._fetched = time.monotonic()
            return self._keys


class BotToken:
    """The bot's access token for the Bot Connector, fetched with its app id and secret, kept until near expiry."""

    def __init__(self, app_id: str, secret: str, tenant: str | None, token_url: str | None = None) -> None:
        self._form = {"grant_type": "client_credentials", "client_id": app_id, "client_secret": secret,
                      "scope": CONNECTOR_SCOPE}
        # Single-tenant bots (all new ones) get tokens from their tenant; older multi-tenant ones from botframework.com.
        self._url = token_url or f"https://login.microsoftonline.com/{tenant or 'botframework.com'}/oauth2/v2.0/token"
        self._token = ""
        self._until = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        async with self._lock:
            if not self._token or time.monotonic() > self._until:
                async with httpx.AsyncClient(timeout=20) as client:
                    response = await client.post(self._url, data=self._form)
                if response.status_code >= 500:
                    raise ChannelUnavailable(f"Microsoft's token service is unavailable ({response.status_code})")
                if response.status_code != 200:
                    # Retried later, not dropped: nothing is lost while the owner fixes the secret.
                    raise ChannelUnavailable(f"Microsoft refused the bot's credentials ({response.status_code}):"
                                             " check TEAMS_APP_ID, TEAMS_APP_PASSWORD and TEAMS_TENANT_ID")
                try:
                    data = response.json()
                    self._token = str(data["access_token"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise ChannelUnavailable("Microsoft's token service answered without a token") from exc
                self._until = time.monotonic() + max(60.0, float(data.get("expires_in") or 3600) - 300)
            return self._token

    def forget(self) -> None:
        self._token = ""


def _norm(url: str) -> str:
    return url.strip().rstrip("/").lower()
