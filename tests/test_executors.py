"""The Dask connection (issue 16, finding 11 and "a secured cluster"): a wrong scheduler_address
is reported naming the parameter, before the model loads; TLS through params:dask.tls, tested on
a loopback cluster with certificates made here."""

from __future__ import annotations

import datetime
import re
import socket
from pathlib import Path

import pandas as pd
import pytest

from cnn_feature_behavior.executors import dask_client, dask_security

TIMEOUT_S = 60


def _params(address=None, tls=None, timeout=5):
    return {
        "scheduler_address": address,
        "n_workers": 1,
        "threads_per_worker": 1,
        "connect_timeout_s": timeout,
        "tls": tls or {"ca_file": None, "cert_file": None, "key_file": None},
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_wrong_scheduler_address_is_named_before_the_model_loads(monkeypatch):
    from cnn_feature_behavior.pipelines.feature_extraction import nodes

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the scheduler was checked")

    monkeypatch.setattr(nodes, "load_backbone", no_model)
    address = f"tcp://127.0.0.1:{_free_port()}"
    index = pd.DataFrame({"image_id": ["a"], "path": ["a.png"]})
    with pytest.raises(ConnectionError, match=rf"params:dask.scheduler_address {address}"):
        nodes.extract_embedding(
            index, "raw", {}, "tiny", 1, {}, "dask", _params(address, timeout=2)
        )


def test_an_unparsable_address_and_half_a_tls_setting_are_named(tmp_path):
    with pytest.raises(ConnectionError, match="params:dask.scheduler_address"):
        with dask_client("dask", _params("nonsense://x:1", timeout=2)):
            pass
    with pytest.raises(ValueError, match=r"params:dask.tls lacks \['cert_file', 'key_file'\]"):
        dask_security(_params(tls={"ca_file": str(tmp_path), "cert_file": None, "key_file": None}))
    missing = {"ca_file": str(tmp_path / "ca.pem"), "cert_file": "c", "key_file": "k"}
    with pytest.raises(FileNotFoundError, match=r"params:dask.tls.ca_file: no file .*ca\.pem"):
        dask_security(_params(tls=missing))


def _certificates(folder: Path) -> dict[str, str]:
    """A self-signed CA and a certificate it signs for the cluster and this client (PEM files)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(name, key, issuer, issuer_key, ca):
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(issuer_key, hashes.SHA256())
        )

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    files = {
        "ca_file": (certificate("test-ca", ca_key, "test-ca", ca_key, True), None),
        "cert_file": (certificate("dask", key, "test-ca", ca_key, False), None),
        "key_file": (None, key),
    }
    paths = {}
    for name, (cert, private) in files.items():
        path = folder / f"{name}.pem"
        path.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            if cert is not None
            else private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        paths[name] = str(path)
    return paths


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    """A TLS scheduler and worker on 127.0.0.1 (in this process), with test-made certificates."""
    from distributed import LocalCluster
    from distributed.security import Security

    tls = _certificates(tmp_path_factory.mktemp("certificates"))
    security = Security(
        tls_ca_file=tls["ca_file"],
        tls_scheduler_cert=tls["cert_file"],
        tls_scheduler_key=tls["key_file"],
        tls_worker_cert=tls["cert_file"],
        tls_worker_key=tls["key_file"],
        tls_client_cert=tls["cert_file"],
        tls_client_key=tls["key_file"],
        require_encryption=True,
    )
    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tls://",
        host="127.0.0.1",
        security=security,
        dashboard_address=None,
    ) as cluster:
        yield cluster.scheduler_address, tls


def test_a_tls_cluster_is_used_through_the_dask_parameters(tls_cluster):
    address, tls = tls_cluster
    assert address.startswith("tls://127.0.0.1:")
    with dask_client("dask", _params(address, tls, timeout=TIMEOUT_S)) as client:
        assert client.submit(sum, [1, 2, 3], pure=False).result(timeout=TIMEOUT_S) == 6


def test_a_tls_cluster_refuses_a_client_without_certificates_naming_the_parameter(tls_cluster):
    address, _ = tls_cluster
    with pytest.raises(ConnectionError, match=r"tls:// address.*params:dask.tls"):
        with dask_client("dask", _params(address, timeout=5)):
            pass
    plain = address.replace("tls://", "tcp://")
    with pytest.raises(ConnectionError, match="params:dask.scheduler_address"):
        with dask_client("dask", _params(plain, timeout=5)):
            pass


def test_a_local_cluster_with_tls_settings_runs_encrypted(tmp_path):
    tls = _certificates(tmp_path)
    params = {**_params(None, tls, timeout=TIMEOUT_S), "n_workers": 1}
    with dask_client("dask", params) as client:
        assert client.scheduler.address.startswith("tls://127.0.0.1:")
        assert client.submit(sum, [4, 5], pure=False).result(timeout=TIMEOUT_S) == 9


# Issue 27, finding 7: refusals tried, and no plain HTTP beside a TLS cluster.


def _handshake_refused(address: str, ca_file: str, cert: dict[str, str] | None = None) -> bool:
    """Whether the TLS server at `address` refuses a client that trusts `ca_file` and shows
    `cert` (none: no certificate): it ends the handshake with an alert, or closes at once."""
    import ssl

    host, port = address.removeprefix("tls://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = False
    if cert is not None:
        context.load_cert_chain(cert["cert_file"], cert["key_file"])
    try:
        with (
            socket.create_connection((host, int(port)), timeout=10) as raw,
            context.wrap_socket(raw) as tls,
        ):
            tls.sendall(b"\0" * 8)
            return tls.recv(1) == b""  # TLS 1.3: the refusal comes after the handshake
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:  # let in: the server waits for Dask's first message
        return False


def test_a_tls_cluster_refuses_a_client_without_a_certificate_or_of_another_ca(
    tls_cluster, tmp_path
):
    from distributed import Client
    from distributed.security import Security

    address, tls = tls_cluster
    foreign = _certificates(tmp_path)  # a valid certificate, of another CA
    assert _handshake_refused(address, tls["ca_file"])
    assert _handshake_refused(address, tls["ca_file"], foreign)
    assert not _handshake_refused(address, tls["ca_file"], tls)
    # Through Dask's own client and through the run's parameters, the foreign set is refused.
    other = Security(
        tls_ca_file=tls["ca_file"],
        tls_client_cert=foreign["cert_file"],
        tls_client_key=foreign["key_file"],
        require_encryption=True,
    )
    with pytest.raises((OSError, TimeoutError)):
        Client(address, security=other, timeout=5)
    with pytest.raises(ConnectionError, match="params:dask.scheduler_address"):
        with dask_client("dask", _params(address, foreign, timeout=5)):
            pass


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except OSError:
        return False
    return True


def test_a_tls_local_cluster_serves_no_plain_http(tmp_path):
    tls = _certificates(tmp_path)
    params = {**_params(None, tls, timeout=TIMEOUT_S), "n_workers": 1}
    with dask_client("dask", params) as client:
        ports = [client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.http_server.port)]
        ports += list(client.run(lambda dask_worker: dask_worker.http_server.port).values())
        assert len(ports) == 2 and all(ports)
        # /info, /metrics and /health were served in plain HTTP on these before issue 27.
        assert [port for port in ports if _listening(port)] == []


def test_the_docs_cluster_example_binds_to_loopback_with_tls_and_no_http():
    # Issue 27, finding 7: the example bound the scheduler to a private address (10.0.0.5), with
    # its dashboard in plain HTTP on every interface.
    text = (Path(__file__).resolve().parents[1] / "docs" / "dask.md").read_text()
    commands = [
        " ".join(c.replace("\\\n", " ").split())
        for c in re.findall(r"^dask (?:scheduler|worker) .*?(?<!\\)$", text, re.M | re.S)
    ]
    assert len(commands) == 2, commands
    for command in commands:
        assert "--host 127.0.0.1" in command, command
        assert "--tls-ca-file" in command and "--tls-cert" in command, command
        assert "--no-dashboard --preload cnn_feature_behavior.executors" in command, command
    assert "tls://127.0.0.1:8786" in commands[1]
