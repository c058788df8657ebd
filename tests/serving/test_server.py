"""`ModelServer` itself: argument checks, ports, TLS, a graceful stop."""

import shutil
import subprocess
import threading
import time

import numpy as np
import pytest

from keras_gen.serving import BatchingParameters, ModelServer, RestSamplerClient, SamplerClient, ServerUnavailableError
from tests.serving.helpers import _base, _keras, _uint8, _z


def test_server_arguments_are_validated(tmp_path):
    with pytest.raises(FileNotFoundError):
        ModelServer(tmp_path / "missing")
    with pytest.raises(ValueError, match="backend"):
        ModelServer(tmp_path, backend="tflite")
    with pytest.raises(ValueError, match="grpc_port"):
        ModelServer(tmp_path, grpc_port=70000)
    with pytest.raises(ValueError, match="tls_key"):
        ModelServer(tmp_path, tls_cert="cert.pem")
    with pytest.raises(ValueError, match="nothing would be served"):
        ModelServer(tmp_path, grpc_port=None, rest_port=None)
    with pytest.raises(ValueError, match="max_images"):
        ModelServer(tmp_path, max_images=0)
    with pytest.raises(ValueError, match="model"):
        SamplerClient("127.0.0.1:1", model="")
    with pytest.raises(ValueError, match="URL path"):
        ModelServer(tmp_path, monitoring="metrics")
    with pytest.raises(FileNotFoundError):
        ModelServer(tmp_path, monitoring_config_file=tmp_path / "monitoring.config")
    (tmp_path / "monitoring.config").write_text('prometheus_config { enable: true path: "/m" }')
    assert ModelServer(tmp_path, monitoring_config_file=tmp_path / "monitoring.config").metrics_path == "/m"


def test_a_busy_port_is_a_clear_error(server, tmp_path):
    with pytest.raises(OSError, match="Cannot listen"):
        ModelServer(tmp_path, grpc_port=server.grpc_port, rest_port=None).start()
    with pytest.raises(OSError, match="Cannot listen"):
        ModelServer(tmp_path, grpc_port=None, rest_port=server.rest_port).start()


def _self_signed(tmp_path):
    """A certificate for localhost / 127.0.0.1: with the `cryptography` package, else the openssl command."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl command is here to make a certificate")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True, timeout=60,
        )
        return cert, key
    import ipaddress

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return cert, key


def test_tls_on_both_ports(exported, tmp_path):
    models, paths = exported
    cert, key = _self_signed(tmp_path)
    base = _base(tmp_path, paths, "a")
    with ModelServer(base, grpc_port=0, rest_port=0, poll_interval=0, tls_cert=cert, tls_key=key) as srv:
        assert srv.rest_url.startswith("https://")
        expected = _uint8(models["a"].generate(3, seed=2)).astype(int)
        with SamplerClient(srv.grpc_address, model="dcgan", root_certificates=str(cert)) as client:
            assert np.abs(client.sample(3, seed=2).astype(int) - expected).max() <= 1
        with RestSamplerClient(srv.rest_url, model="dcgan", ca_file=str(cert)) as client:
            assert np.abs(client.sample(3, seed=2).astype(int) - expected).max() <= 1
        with SamplerClient(srv.grpc_address, model="dcgan", retries=0, timeout=5) as plain:
            with pytest.raises(ServerUnavailableError):
                plain.status()
        with RestSamplerClient(srv.rest_url, model="dcgan", retries=0, timeout=5) as untrusted:  # no CA given
            with pytest.raises(ServerUnavailableError, match="CERTIFICATE"):
                untrusted.status()


def test_stop_lets_requests_in_flight_finish(exported, tmp_path):
    models, paths = exported
    base = _base(tmp_path, paths, "a")
    z = _z(1, seed=15)
    parameters = BatchingParameters(max_batch_size=8, batch_timeout_micros=700_000)  # the request waits 0.7 s
    srv = ModelServer(base, grpc_port=0, rest_port=None, poll_interval=0, batching=parameters)
    srv.start()
    result = {}
    client = SamplerClient(srv.grpc_address, model="dcgan", retries=0)
    try:
        thread = threading.Thread(target=lambda: result.update(images=client.generate(z, uint8=False)))
        thread.start()
        time.sleep(0.3)  # the request is waiting in its batch
        srv.stop(grace=5)
        thread.join(10)
        np.testing.assert_allclose(result["images"], _keras(models["a"], z), atol=1e-5)
        with pytest.raises(ServerUnavailableError):
            client.generate(z)
    finally:
        client.close()
        srv.stop(grace=0)

