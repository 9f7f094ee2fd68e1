"""`coldwatch certs`: a CA once, server and client certificates signed by it, renewals with new keys, expiries."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from cloud.cli.main import main


def _certs(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["certs", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_fleet_ca_signs_the_broker_and_each_gateway_and_renewals_change_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = str(tmp_path / "tls")
    assert _certs(capsys, "init", "--dir", folder)[0] == 0
    code, _, err = _certs(capsys, "init", "--dir", folder)
    assert code == 2 and "already holds a CA" in err  # re-keying a fleet is never a side effect
    assert _certs(capsys, "broker", "--dir", folder, "--host", "mqtt.example.com", "--host", "10.0.0.5")[0] == 0
    code, out, _ = _certs(capsys, "gateway", "reefer-0042", "--dir", folder)
    files = json.loads(out)
    gateway = x509.load_pem_x509_certificate(Path(files["cert"]).read_bytes())
    assert gateway.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "reefer-0042"
    eku = gateway.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    broker = x509.load_pem_x509_certificate((tmp_path / "tls" / "broker.crt").read_bytes())
    names = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "mqtt.example.com" in names.get_values_for_type(x509.DNSName)
    # A TLS client accepts the pair and the CA (what the agent's check-config does).
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=files["ca"])
    context.load_cert_chain(files["cert"], files["key"])
    before = Path(files["key"]).read_bytes()
    assert _certs(capsys, "gateway", "reefer-0042", "--dir", folder)[0] == 0  # renewal
    assert Path(files["key"]).read_bytes() != before


def test_check_lists_expiries_and_fails_when_one_is_due(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = str(tmp_path / "tls")
    _certs(capsys, "init", "--dir", folder)
    _certs(capsys, "gateway", "gw-soon", "--dir", folder, "--days", "10")
    code, out, err = _certs(capsys, "check", "--dir", folder)
    rows = json.loads(out)
    assert code == 1 and rows[0]["file"] == "gw-soon.crt" and rows[0]["days_left"] <= 10
    assert "renew within 30 days: gw-soon.crt" in err
    assert _certs(capsys, "check", "--dir", folder, "--within", "5")[0] == 0
