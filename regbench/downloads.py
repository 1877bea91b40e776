"""The built-in datasets' canonical downloads, through `keras.datasets`.

Keras fetches each file from its canonical origin into its own cache (`~/.keras/datasets`, or
`$KERAS_HOME`), checks the file's SHA-256 against the one it ships, and parses it; regbench
then checks every array against its own registry (`data._check`) and keeps one npz in its
cache. `$REGBENCH_DOWNLOAD_URL` names a mirror folder: every request Keras makes to a
canonical origin goes to that folder instead, by the file's name. A mirror holds copies of the
canonical files, so Keras's own checksums still apply there.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import urllib.request

from regbench import interrupts, startup

# The folders keras/src/datasets/{mnist,fashion_mnist,cifar10}.py download from.
CANONICAL_ORIGINS = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "https://www.cs.toronto.edu/~kriz/",
)


class DownloadError(Exception):
    """The download or Keras's parsing failed; the message is one line."""


def fetch(name: str) -> tuple[dict, str]:
    """`(arrays, origin)`: dataset `name` as `keras.datasets.<name>.load_data()` returns it,
    labels flattened to 1-D (Keras gives CIFAR-10's as (N, 1))."""
    keras = startup.import_keras()
    loader = getattr(keras.datasets, name).load_data  # the built-ins carry Keras's names
    mirror = os.environ.get("REGBENCH_DOWNLOAD_URL")
    origin = mirror or f"keras.datasets.{name}"
    try:
        # Keras prints "Downloading data from ..." and a progress bar on stdout, before it
        # knows whether the server answers; regbench says one line once it has (`_Announce`).
        with _opener(name, mirror), contextlib.redirect_stdout(io.StringIO()):
            (x_train, y_train), (x_test, y_test) = loader()
    except Exception as error:  # Keras raises a bare Exception for HTTP and URL errors
        interrupts.reraise(error)
        kind = "" if type(error) is Exception else f"{type(error).__name__}: "
        raise DownloadError(" ".join(f"{kind}{error}".split())) from None
    arrays = {"x_train": x_train, "y_train": y_train.reshape(-1),
              "x_test": x_test, "y_test": y_test.reshape(-1)}
    return arrays, origin


@contextlib.contextmanager
def _opener(name: str, mirror: str | None):
    """While inside, urllib (which Keras downloads with) announces each file the server sends,
    and sends canonical URLs to `mirror` if there is one."""
    handlers = [_Announce(name)] + ([_ToMirror(mirror)] if mirror else [])
    urllib.request.install_opener(urllib.request.build_opener(*handlers))
    try:
        yield
    finally:
        urllib.request.install_opener(None)  # urlopen's default again


class _Announce(urllib.request.BaseHandler):
    """Says which file is coming, once the server has answered with it."""

    handler_order = 1001  # after urllib's HTTPErrorProcessor: only successful answers

    def __init__(self, name: str):
        self.name = name
        self.said = set()  # a mirrored answer passes here twice: as the mirror's, as the origin's

    def _announce(self, request, response):
        if response.geturl() not in self.said:
            self.said.add(response.geturl())
            print(f"regbench: downloading {self.name} from {response.geturl()}",
                  file=sys.stderr)
        return response

    http_response = https_response = _announce


class _ToMirror(urllib.request.BaseHandler):
    """Answers a request for a canonical file with the mirror's file of the same name."""

    handler_order = 100  # before urllib's own HTTP(S) handlers

    def __init__(self, mirror: str):
        self.mirror = mirror.rstrip("/") + "/"

    def _redirect(self, request):
        url = request.full_url
        if not url.startswith(CANONICAL_ORIGINS):
            return None  # not a dataset file: urllib's own handlers take it
        return self.parent.open(self.mirror + url.rsplit("/", 1)[-1], timeout=request.timeout)

    http_open = https_open = _redirect
