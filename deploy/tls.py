"""A small private PKI for development and tests: a CA, the broker's certificate, one client cert per gateway.

Production uses the operator's own CA (docs/deploy.md); the file layout is the same.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TlsFiles:
    """PEM paths: the CA certificate and one certificate + key."""

    ca: Path
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "coldwatch dev"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _issue(subject: str, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate | None, *,
           server_hosts: tuple[str, ...] = (), client: bool = False, days: int = 365,
           ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1()) if ca_cert is not None else ca_key
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject))
               .issuer_name(ca_cert.subject if ca_cert is not None else _name(subject))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days)))
    if ca_cert is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if server_hosts:
        names: list[x509.GeneralName] = []
        for host in server_hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def make_dev_pki(directory: Path, *, broker_hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
                 clients: tuple[str, ...] = ()) -> tuple[TlsFiles, dict[str, TlsFiles]]:
    """Write ca.pem, broker.pem/.key and <client>.pem/.key into `directory`; returns the broker's and clients' files."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _issue("coldwatch dev CA", ec.generate_private_key(ec.SECP256R1()), None, days=3650)
    ca = directory / "ca.pem"
    ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    def save(name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> TlsFiles:
        (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, directory / f"{name}.key")
        return TlsFiles(ca, directory / f"{name}.pem", directory / f"{name}.key")

    broker = save("broker", *_issue("coldwatch broker", ca_key, ca_cert, server_hosts=broker_hosts))
    issued = {c: save(c, *_issue(c, ca_key, ca_cert, client=True)) for c in clients}
    return broker, issued


# -- the fleet's CA on disk (`coldwatch certs`) ------------------------------------------------------------------

CA_CERT, CA_KEY = "ca.crt", "ca.key"


def init_ca(directory: Path, *, days: int = 3650, name: str = "coldwatch fleet CA") -> TlsFiles:
    """A new CA in `directory` (ca.crt, ca.key 0600); refused when one is there (re-keying a fleet is a decision,
    not a side effect)."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / CA_CERT).exists() or (directory / CA_KEY).exists():
        raise FileExistsError(f"{directory} already holds a CA ({CA_CERT}, {CA_KEY})")
    key, cert = _issue(name, ec.generate_private_key(ec.SECP256R1()), None, days=days)
    (directory / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, directory / CA_KEY)
    return TlsFiles(directory / CA_CERT, directory / CA_CERT, directory / CA_KEY)


def issue(directory: Path, name: str, *, server_hosts: tuple[str, ...] = (), client: bool = False,
          days: int = 365) -> TlsFiles:
    """A certificate and a new key signed by the CA in `directory`: `NAME.crt`, `NAME.key` (a renewal writes both
    again). `server_hosts` makes a server certificate (the broker), `client` a gateway's client certificate."""
    try:
        ca_cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
        ca_key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
    except OSError as exc:
        raise FileNotFoundError(f"no CA in {directory}: run `coldwatch certs init` first ({exc.strerror})") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{directory / CA_KEY} is not an EC private key")
    key, cert = _issue(name, ca_key, ca_cert, server_hosts=server_hosts, client=client, days=days)
    (directory / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, directory / f"{name}.key")
    return TlsFiles(directory / CA_CERT, directory / f"{name}.crt", directory / f"{name}.key")


def expiries(directory: Path) -> list[tuple[str, dt.datetime]]:
    """Each certificate in `directory` and when it expires, soonest first."""
    out = []
    for path in sorted(directory.glob("*.crt")):
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        out.append((path.name, cert.not_valid_after_utc))
    return sorted(out, key=lambda item: item[1])
