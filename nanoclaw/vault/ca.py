"""The vault's certificate authority: lets the proxy read HTTPS requests it must add a secret to.

The CA key stays in `~/.config/nanoclaw` (0600, outside every mount); only the
certificate goes into sandboxes, as part of their CA bundle. Leaf certificates
for intercepted hosts are made on first use and kept under the home's state.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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
        if not (config_dir / CA_KEY).exists() or not (config_dir / CA_CERT).exists():
            self._create()
        self.key = serialization.load_pem_private_key((config_dir / CA_KEY).read_bytes(), password=None)
        self.cert = x509.load_pem_x509_certificate((config_dir / CA_CERT).read_bytes())

    @property
    def cert_path(self) -> Path:
        return self.config_dir / CA_CERT

    def _create(self) -> None:
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
        key = ec.generate_private_key(ec.SECP256R1())
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            san = x509.DNSName(host)
        now = dt.datetime.now(dt.timezone.utc)
        cert = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64])]))
            .issuer_name(self.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())  # type: ignore[arg-type]
        )
        _write_private(key_file, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + self.cert.public_bytes(serialization.Encoding.PEM))
        return cert_file, key_file

    def bundle(self, path: Path, also: Sequence[Path] = ()) -> Path:
        """The system's CA bundle plus this CA (and the certificates in `also`), for sandboxes (SSL_CERT_FILE)."""
        import certifi

        system = Path("/etc/ssl/certs/ca-certificates.crt")
        base = system.read_bytes() if system.exists() else Path(certifi.where()).read_bytes()
        return self.certificates(path, also, base)

    def certificates(self, path: Path, also: Sequence[Path] = (), base: bytes = b"") -> Path:
        """This CA's certificate and those in `also`, in one file (NODE_EXTRA_CA_CERTS takes a single file)."""
        pems = [self.cert.public_bytes(serialization.Encoding.PEM), *(extra.read_bytes() for extra in also)]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\n".join([base, *pems]) if base else b"\n".join(pems))
        return path
