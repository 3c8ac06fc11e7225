"""The vault's certificate authority: lets the proxy read HTTPS requests it must add a secret to.

The CA key stays in `~/.config/nanoclaw` (0600, outside every mount); only the
certificate goes into sandboxes, as part of their CA bundle. Leaf certificates
for intercepted hosts are made on first use and kept under the home's state.

The CA is made when something first needs it (the first sandbox's CA bundle),
and `cryptography` is imported only then, or to make a leaf certificate (the
first interception of a host): a host that has not yet started a sandbox since
the CA exists never holds the library in memory.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from cryptography import x509

from nanoclaw.config import private_dir

CA_KEY, CA_CERT = "ca.key", "ca.pem"


def _write_private(path: Path, data: bytes) -> None:
    private_dir(path.parent)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class CertificateAuthority:
    def __init__(self, config_dir: Path, cert_dir: Path) -> None:
        self.config_dir = config_dir
        self.cert_dir = cert_dir
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._loaded: tuple[Any, x509.Certificate] | None = None
        self._cert_pem: bytes | None = None

    @property
    def cert_pem(self) -> bytes:
        """The CA's certificate (PEM), made with its key on first use."""
        if self._cert_pem is None:
            if not (self.config_dir / CA_KEY).exists() or not (self.config_dir / CA_CERT).exists():
                self._create()
            self._cert_pem = (self.config_dir / CA_CERT).read_bytes()
        return self._cert_pem

    def _key_and_cert(self) -> tuple[Any, x509.Certificate]:
        if self._loaded is None:
            from cryptography import x509
            from cryptography.hazmat.primitives import serialization

            pem = self.cert_pem  # made first if missing
            key = serialization.load_pem_private_key((self.config_dir / CA_KEY).read_bytes(), password=None)
            self._loaded = (key, x509.load_pem_x509_certificate(pem))
        return self._loaded

    @property
    def cert_path(self) -> Path:
        self.cert_pem  # noqa: B018 - made if missing
        return self.config_dir / CA_CERT

    def _create(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "NanoClaw vault CA"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NanoClaw (this machine only)")])
        now = dt.datetime.now(dt.timezone.utc)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256())
        )
        _write_private(self.config_dir / CA_KEY, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        (self.config_dir / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def server_context(self, host: str) -> ssl.SSLContext:
        """A TLS server context presenting a certificate for `host`, signed by this CA."""
        context = self._contexts.get(host)
        if context is None:
            cert_file, key_file = self._leaf(host)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert_file, key_file)
            self._contexts[host] = context
        return context

    def _leaf(self, host: str) -> tuple[Path, Path]:
        safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in host)[:200]
        cert_file, key_file = self.cert_dir / f"{safe}.pem", self.cert_dir / f"{safe}.key"
        if cert_file.exists() and key_file.exists():
            return cert_file, key_file
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        ca_key, ca_cert = self._key_and_cert()
        key = ec.generate_private_key(ec.SECP256R1())
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            san = x509.DNSName(host)
        now = dt.datetime.now(dt.timezone.utc)
        cert = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write_private(key_file, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + self.cert_pem)
        return cert_file, key_file

    def bundle(self, path: Path, also: Sequence[Path] = ()) -> Path:
        """The system's CA bundle plus this CA (and the certificates in `also`), for sandboxes (SSL_CERT_FILE)."""
        import certifi

        system = Path("/etc/ssl/certs/ca-certificates.crt")
        base = system.read_bytes() if system.exists() else Path(certifi.where()).read_bytes()
        return self.certificates(path, also, base)

    def certificates(self, path: Path, also: Sequence[Path] = (), base: bytes = b"") -> Path:
        """This CA's certificate and those in `also`, in one file (NODE_EXTRA_CA_CERTS takes a single file)."""
        pems = [self.cert_pem, *(extra.read_bytes() for extra in also)]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\n".join([base, *pems]) if base else b"\n".join(pems))
        return path
