"""OneCLI as the vault's backend (`NANOCLAW_VAULT_BACKEND=onecli`): a thin facade over the `onecli` CLI and a
route through OneCLI's gateway.

Secrets are managed with `onecli secrets create|list|delete`; nothing of them is
kept by NanoClaw. The egress proxy still authenticates each session and applies
the egress policy; a CONNECT to a host a OneCLI secret matches (its
`hostPattern`, from `onecli secrets list`, at most `REFRESH` seconds old) is then
tunnelled through OneCLI's gateway (`ONECLI_GATEWAY_URL`), which intercepts the
TLS with its own CA (`ONECLI_CA_CERT`, added to the sandbox's CA bundle) and
injects the header.

What OneCLI cannot do, said rather than faked:
* no agent groups: a OneCLI secret serves every agent group (a rule with groups, or
  with a method, is refused);
* the value goes to `onecli secrets create --file /dev/stdin` on stdin, never in argv
  (a CLI older than 2.2.2 has no --file: upgrade it); it is kept out of every log
  line and error message, and OneCLI trims spaces around a value read that way.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import fnmatch
import json
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Mapping
from urllib.parse import unquote, urlsplit

from nanoclaw.errors import ConfigError
from nanoclaw.logs import get_logger
from nanoclaw.vault.store import SecretRule, VaultError, validate

if TYPE_CHECKING:
    import httpx

log = get_logger("nanoclaw.vault.onecli")

DEFAULT_GATEWAY = "http://127.0.0.1:10255"  # OneCLI's gateway (CONNECT proxy) port, per its self-hosting docs
REFRESH = 5.0  # seconds an answer of `onecli secrets list` is trusted by the proxy
TIMEOUT = 30.0  # seconds one `onecli` call may take
# The real CLI prints JSON always (it has no --output); --fields keeps the value's preview out of our hands,
# --max lifts its default of 20.
LIST = ("secrets", "list", "--fields", "id,name,type,hostPattern,pathPattern,injectionConfig,createdAt",
        "--max", "10000")
FIX = "start OneCLI and log in (`onecli auth login`), or set NANOCLAW_VAULT_BACKEND=builtin"


@dataclass(frozen=True)
class Gateway:
    """OneCLI's gateway: an HTTP proxy taking CONNECT, intercepting TLS with OneCLI's CA, injecting secrets."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)  # from user:token in the URL (an agent's token)

    @classmethod
    def parse(cls, url: str) -> Gateway:
        parts = urlsplit(url)
        try:
            port = parts.port or 80
        except ValueError:
            port = 0
        if parts.scheme != "http" or not parts.hostname or not port:
            raise ConfigError(f"ONECLI_GATEWAY_URL must look like {DEFAULT_GATEWAY} "
                              "(or http://user:agent-token@host:port when the gateway wants a token)")
        authorization = None
        if parts.username is not None or parts.password is not None:
            pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode()
        return cls(parts.hostname, port, authorization)

    def connect_head(self, host: str, port: int) -> bytes:
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        if self.authorization:
            lines.append(f"Proxy-Authorization: {self.authorization}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass(frozen=True)
class _Entry:
    id: str
    rule: SecretRule
    by_header: bool  # injected as a header: NanoClaw can re-create it (rotate)


class OneCliVault:
    """The OneCLI backend (nanoclaw.vault.backend.SecretBackend)."""

    name: ClassVar[str] = "onecli"
    scoped: ClassVar[bool] = False

    def __init__(self, executable: str, gateway: Gateway, ca_cert: Path | None = None, *,
                 refresh: float = REFRESH) -> None:
        self.executable = executable
        self.gateway = gateway
        self.ca_cert = ca_cert
        self.refresh = refresh
        self._entries: list[_Entry] = []
        self._loaded_at = float("-inf")  # time.monotonic() of the last good list
        self._lock = asyncio.Lock()

    @classmethod
    def open(cls, extra: Mapping[str, str], *, for_host: bool = False) -> OneCliVault:
        """The `onecli` on PATH, checked with one `onecli secrets list`; ConfigError saying what to fix."""
        executable = shutil.which("onecli")
        if executable is None:
            raise ConfigError("NANOCLAW_VAULT_BACKEND=onecli, but there is no `onecli` executable on PATH: "
                              "install OneCLI's CLI (https://onecli.sh), or set NANOCLAW_VAULT_BACKEND=builtin")
        gateway = Gateway.parse(extra.get("ONECLI_GATEWAY_URL") or DEFAULT_GATEWAY)
        ca_cert = Path(extra["ONECLI_CA_CERT"]).expanduser() if extra.get("ONECLI_CA_CERT") else None
        if for_host:
            _check_ca(ca_cert)
        vault = cls(executable, gateway, ca_cert)
        try:
            vault._keep(vault._run(*LIST))
        except VaultError as exc:
            raise ConfigError(f"NANOCLAW_VAULT_BACKEND=onecli, but {exc}: {FIX}") from None
        return vault

    # -- reading ---------------------------------------------------------------

    def rules(self) -> list[SecretRule]:
        """The secrets as OneCLI listed them at most `refresh` seconds ago (the last list, and a warning, when
        it cannot answer now: `open` and every change ask it afresh and fail loudly)."""
        if self._stale():
            try:
                self._keep(self._run(*LIST))
            except VaultError as exc:
                self._failed(exc)
        return sorted((e.rule for e in self._entries), key=lambda r: r.name)

    def wants(self, host: str, group: str) -> bool:
        """Whether OneCLI holds a secret for `host`, whatever the group (OneCLI has none)."""
        self.rules()
        return self._covers(host)

    async def routes(self, host: str) -> bool:
        """Whether the proxy sends `host` through OneCLI's gateway. The list is refreshed without blocking the
        loop; when OneCLI cannot answer, the last list is kept and the failure logged."""
        async with self._lock:
            if self._stale():
                try:
                    self._keep(await self._run_async(*LIST))
                except VaultError as exc:
                    self._failed(exc)
        return self._covers(host)

    def http_client(self) -> httpx.AsyncClient:
        """An HTTP client whose requests go through the gateway, trusting OneCLI's CA (for requests the proxy
        itself sends: the model API, and HTTPS it intercepts to judge by path)."""
        import httpx  # only a host configured for OneCLI loads it

        context = ssl.create_default_context()
        if self.ca_cert is not None:
            context.load_verify_locations(self.ca_cert)
        headers = {"Proxy-Authorization": self.gateway.authorization} if self.gateway.authorization else None
        proxy = httpx.Proxy(f"http://{self.gateway.host}:{self.gateway.port}", headers=headers)
        return httpx.AsyncClient(proxy=proxy, verify=context, timeout=httpx.Timeout(30.0, read=600.0),
                                 follow_redirects=False)

    # -- writing ---------------------------------------------------------------

    def add(self, rule: SecretRule, value: str) -> SecretRule:
        validate(rule, value)
        if rule.groups:
            raise VaultError("OneCLI has no agent groups: its secrets serve every agent group. Leave out --group, "
                             "or use NANOCLAW_VAULT_BACKEND=builtin")
        if rule.method != "*":
            raise VaultError("OneCLI cannot keep a secret to one HTTP method; leave out --method")
        self._keep(self._run(*LIST))  # the name is checked against OneCLI now, not a cached list
        if any(e.rule.name == rule.name for e in self._entries):
            raise VaultError(f"a secret named {rule.name!r} exists in OneCLI; use `nanoclaw secrets rotate {rule.name}`")
        self._create(rule, value)
        now = time.time()
        return replace(rule, created_at=now, rotated_at=now)

    def rotate(self, name: str, value: str) -> SecretRule:
        """Delete and create again with the same rule (a new OneCLI id)."""
        entry = self._one(name)
        _check_value(value)
        if not entry.by_header:
            raise VaultError(f"OneCLI secret {name!r} is not injected as a header; change it with "
                             f"`onecli secrets update --id {entry.id}`")
        self._run("secrets", "delete", "--id", entry.id)
        try:
            self._create(entry.rule, value)
        except VaultError as exc:
            raise VaultError(f"OneCLI deleted the old value of {name!r} but did not take the new one ({exc}); "
                             f"store it again with `nanoclaw secrets add {name} --host {entry.rule.host}`") from None
        return replace(entry.rule, rotated_at=time.time())

    def remove(self, name: str) -> None:
        self._run("secrets", "delete", "--id", self._one(name).id)
        self._loaded_at = float("-inf")

    # -- the CLI ---------------------------------------------------------------

    def _create(self, rule: SecretRule, value: str) -> None:
        _check_value(value)
        args = ["secrets", "create", "--name", rule.name, "--type", "generic", "--file", "/dev/stdin",
                "--host-pattern", rule.host, "--header-name", rule.header, "--value-format", rule.format]
        if rule.path != "*":
            args += ["--path-pattern", rule.path]
        try:
            self._run(*args, secret=value)
        finally:
            self._loaded_at = float("-inf")

    def _one(self, name: str) -> _Entry:
        self._keep(self._run(*LIST))
        found = [e for e in self._entries if e.rule.name == name]
        if not found:
            known = ", ".join(sorted({e.rule.name for e in self._entries})) or "none"
            raise VaultError(f"no secret named {name!r} in OneCLI (stored: {known})")
        if len(found) > 1:
            raise VaultError(f"OneCLI holds {len(found)} secrets named {name!r}; delete the extra ones with "
                             f"`onecli secrets delete --id …` ({', '.join(e.id for e in found)})")
        return found[0]

    def _run(self, *args: str, secret: str | None = None) -> str:
        log.debug("onecli.run", command=" ".join(args[:2]))
        try:
            done = subprocess.run([self.executable, *args], input=secret or "", capture_output=True, text=True,
                                  timeout=TIMEOUT)
        except subprocess.TimeoutExpired:  # its text holds the argv: not raised on
            raise VaultError(f"`onecli {' '.join(args[:2])}` did not answer within {TIMEOUT:g} s") from None
        except OSError as exc:
            raise VaultError(f"cannot run {self.executable}: {exc.strerror or exc}") from None
        return _checked(args, done.returncode, done.stdout, done.stderr, secret)

    async def _run_async(self, *args: str) -> str:
        try:
            process = await asyncio.create_subprocess_exec(
                self.executable, *args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise VaultError(f"cannot run {self.executable}: {exc.strerror or exc}") from None
        try:
            out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            raise VaultError(f"`onecli {' '.join(args[:2])}` did not answer within {TIMEOUT:g} s") from None
        return _checked(args, process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))

    def _keep(self, out: str) -> None:
        """Parse `onecli secrets list`: a JSON list (or {"data": [...]}) of objects with id, name, hostPattern."""
        try:
            data = json.loads(out)
        except ValueError:
            raise VaultError("`onecli secrets list` did not print JSON") from None
        if isinstance(data, dict):
            data = data.get("data")
        if not isinstance(data, list):
            raise VaultError("`onecli secrets list` did not print a list of secrets")
        entries = []
        for item in data:
            if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("id", "name", "hostPattern")):
                raise VaultError("`onecli secrets list` printed a secret without id, name or hostPattern")
            inject = item.get("injectionConfig") if isinstance(item.get("injectionConfig"), dict) else {}
            header = str(inject.get("headerName") or "")
            shown = header or (f"?{inject['paramName']}=" if inject.get("paramName") else f"({item.get('type') or '?'})")
            created = _epoch(item.get("createdAt"))
            rule = SecretRule(item["name"], item["hostPattern"], shown,
                              str(inject.get("valueFormat") or inject.get("paramFormat") or "{value}"),
                              path=str(item.get("pathPattern") or "*"), created_at=created, rotated_at=created)
            entries.append(_Entry(item["id"], rule, bool(header)))
        self._entries = entries
        self._loaded_at = time.monotonic()

    def _failed(self, exc: VaultError) -> None:
        log.warning("onecli.list_failed", error=str(exc), fix=FIX)
        self._loaded_at = time.monotonic()  # keep the last list; ask again after `refresh`, not at every request

    def _stale(self) -> bool:
        return time.monotonic() - self._loaded_at > self.refresh

    def _covers(self, host: str) -> bool:
        return any(_host_matches(e.rule.host, host) for e in self._entries)


def _host_matches(pattern: str, host: str) -> bool:
    # OneCLI's patterns may carry a scheme or a path (`calendar.google.com/calendar/*`): the host part decides.
    pattern = pattern.split("://", 1)[-1].split("/", 1)[0]
    return bool(pattern) and fnmatch.fnmatchcase(host.lower().rstrip("."), pattern.lower())


def _checked(args: tuple[str, ...], code: int, out: str, err: str, secret: str | None = None) -> str:
    if code == 0:
        return out
    text = (err.strip() or out.strip())[:400]
    if secret:
        for variant in {secret, secret.strip()} - {""}:
            text = text.replace(variant, "[redacted]")
    if "--file" in text and "unknown" in text.lower():
        text += " (this onecli is older than 2.2.2, which added --file; upgrade it: https://onecli.sh)"
    raise VaultError(f"`onecli {' '.join(args[:2])}` failed (exit {code}): {text or 'no message'}")


def _check_value(value: str) -> None:
    if not value or any(c in value for c in "\r\n\0"):
        raise VaultError("the value is empty or contains a line break")
    if value != value.strip():
        raise VaultError("OneCLI trims spaces around a value; this one starts or ends with a space")


def _check_ca(path: Path | None) -> None:
    if path is None:
        raise ConfigError("NANOCLAW_VAULT_BACKEND=onecli needs ONECLI_CA_CERT: the path of OneCLI's CA certificate "
                          "(PEM), which sandboxes must trust for the hosts OneCLI injects secrets into")
    from cryptography import x509  # only a host configured for OneCLI loads it

    try:
        x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"ONECLI_CA_CERT={path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError:
        raise ConfigError(f"ONECLI_CA_CERT={path} is not a PEM certificate") from None


def _epoch(text: object) -> float:
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
