"""The download path for real: a local HTTPS server with a self-signed certificate we trust."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import ssl
import subprocess
import threading

import pytest
from omegaconf import OmegaConf

from lmbench.config import SourceFile
from lmbench.corpora.fetch import fetch
from lmbench.errors import ChecksumError

pytestmark = [pytest.mark.slow,  # openssl makes a key and a certificate
              pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")]

PAYLOAD = b"first line of a corpus\n" * 5000


@pytest.fixture
def https_server(tmp_path, monkeypatch):
    """Serve ``tmp_path/www`` over TLS on 127.0.0.1; yields the base URL."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts exactly this certificate
    monkeypatch.delenv("LMBENCH_MIRROR", raising=False)
    www = tmp_path / "www"
    www.mkdir()
    (www / "corpus.txt").write_bytes(PAYLOAD)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(www), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _spec(url: str, sha256: str):
    return OmegaConf.structured(SourceFile(path="web/corpus.txt", sha256=sha256, url=url))


def test_download_is_verified_and_moved_into_the_cache(https_server, isolated_cache):
    path = fetch(_spec(f"{https_server}/corpus.txt", hashlib.sha256(PAYLOAD).hexdigest()), "web")
    assert path == isolated_cache / "web" / "corpus.txt" and path.read_bytes() == PAYLOAD
    assert not list(path.parent.glob(".part-*"))


def test_a_download_with_the_wrong_checksum_leaves_nothing_in_the_cache(https_server, isolated_cache):
    with pytest.raises(ChecksumError, match="expected sha256 0{64}"):
        fetch(_spec(f"{https_server}/corpus.txt", "0" * 64), "web")
    assert not list((isolated_cache / "web").iterdir())
