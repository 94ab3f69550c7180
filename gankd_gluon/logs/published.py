"""Where the authors' two published training logs are, and how to download them.

Hong, Yu, Fan published no code for "GAN-Knowledge Distillation for one-stage Object Detection"
(2019, https://arxiv.org/abs/1906.08467), but two training logs, in their public repository
https://github.com/p517332051/GAN-Knowledge-Distillation-SSD. This project's log format, log
parser and comparisons are checked against them, so they are read from one place:
``$GANKD_PUBLISHED_LOGS`` if set, else ``published_logs/`` beside the repository's folder
(``../shared/published_logs`` from the repository root). :func:`fetch_published_logs` downloads
them there and checks them against the SHA-256 of the files this project was tested with.
"""
import hashlib
import os
import urllib.error
import urllib.request

__all__ = ["ENV_VAR", "REPOSITORY", "BASE_URL", "FILES", "SSD_LOG", "FRCNN_LOG",
           "published_logs_dir", "published_log", "fetch_published_logs", "FetchError"]

ENV_VAR = "GANKD_PUBLISHED_LOGS"
REPOSITORY = "https://github.com/p517332051/GAN-Knowledge-Distillation-SSD"
BASE_URL = "https://raw.githubusercontent.com/p517332051/GAN-Knowledge-Distillation-SSD/master"
SSD_LOG = "ssd_512_mobilenet1_0_resnet50_v1_voc_g_d_new_train.log"
FRCNN_LOG = "faster_rcnn_resnet50_resnet101_v1b_g_d_voc_train.log"
#: file name -> SHA-256 of the copy every test and report of this project was made with
FILES = {
    SSD_LOG: "6e6702b98fac7df28b236298f0116a60bd3cc3fecb1ac3805dcefdd999afc632",
    FRCNN_LOG: "da288ad9650947630e9203b1a004935039edf68ebc2042afce627331c7134801",
}

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class FetchError(RuntimeError):
    """A published log could not be downloaded, or is not the expected file."""


def published_logs_dir():
    """``$GANKD_PUBLISHED_LOGS``, else ``<repository>/../shared/published_logs``."""
    return os.environ.get(ENV_VAR) or os.path.join(os.path.dirname(_REPO_ROOT), "shared",
                                                   "published_logs")


def published_log(name):
    """Path of published log ``name`` (:data:`SSD_LOG` or :data:`FRCNN_LOG`), or None when
    it is not there."""
    path = os.path.join(published_logs_dir(), name)
    return path if os.path.isfile(path) else None


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def fetch_published_logs(dest, base_url=BASE_URL, verify=True, timeout=60.0):
    """Download the published logs into ``dest``.

    Each file is downloaded whole and checked before anything is written, then written to a
    temporary name and renamed, so ``dest`` never holds a partial or unexpected log. A file
    already in ``dest`` with the expected checksum is not downloaded again.

    Parameters
    ----------
    dest : str
        Folder (created).
    base_url : str
        Where the files are: ``<base_url>/<file name>`` (``file://`` URLs work too).
    verify : bool
        Refuse a download whose SHA-256 is not :data:`FILES`'.
    timeout : float
        Seconds per request.

    Returns
    -------
    list of (str, str)
        ``(path, 'downloaded' | 'present')`` per file.

    Raises
    ------
    FetchError
        A download failed or a checksum differs (the message names the URL); files already
        written stay, none is half written.
    """
    done = []
    for name, digest in FILES.items():
        path = os.path.join(dest, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                if _sha256(f.read()) == digest:
                    done.append((path, "present"))
                    continue
        url = "%s/%s" % (base_url.rstrip("/"), name)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                data = response.read()
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise FetchError("%s: download failed (%s)" % (url, getattr(err, "reason", err))) \
                from err
        if verify and _sha256(data) != digest:
            raise FetchError("%s: SHA-256 %s is not the expected %s (the repository changed "
                             "the file?); nothing written" % (url, _sha256(data), digest))
        os.makedirs(dest, exist_ok=True)
        tmp = "%s.tmp-%d" % (path, os.getpid())
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        done.append((path, "downloaded"))
    return done
