"""GAN-Knowledge Distillation for object detection (Hong, Yu, Fan 2019) on MXNet Gluon + GluonCV.

Importing the package checks the two versions everything else depends on: MXNet 1.9.1 only
works with numpy < 1.24 (mxnet 1.9.1 ``mxnet/numpy/utils.py`` sets ``bool = onp.bool``, an alias
numpy 1.24.0 removed: its release notes, "Expired deprecations"), and a wrong numpy fails far
from its cause. MXNet's version is read from its installed files, not by importing it (several
seconds: its import generates the Python code of every operator), so that a script that only
runs others (``scripts/reproduce.py``) starts at once; the modules that compute import it
themselves.
"""
import os
import re

__version__ = "0.1.0"

REQUIRED_NUMPY = "1.23.5"
REQUIRED_MXNET = "1.9.1"
_INSTALL_HINT = ("install the pinned versions with `pip install -r requirements.txt` "
                 "(CPU) or `pip install -r requirements-gpu.txt` (CUDA 11.2)")


def _check_versions():
    import numpy
    if not numpy.__version__.startswith("1.23"):
        raise ImportError(
            "gankd_gluon needs numpy %s (found %s): numpy >= 1.24 breaks MXNet 1.9.1; %s"
            % (REQUIRED_NUMPY, numpy.__version__, _INSTALL_HINT))
    found = _mxnet_version()
    if found is None:
        raise ImportError("gankd_gluon needs mxnet==%s (CPU) or mxnet-cu112==%s (GPU), which "
                          "is not installed; %s" % (REQUIRED_MXNET, REQUIRED_MXNET, _INSTALL_HINT))
    if found != REQUIRED_MXNET:
        raise ImportError("gankd_gluon needs mxnet %s (found %s); %s"
                          % (REQUIRED_MXNET, found, _INSTALL_HINT))


def _mxnet_version():
    """The installed MXNet's ``__version__`` as its ``libinfo.py`` sets it (every build: the CPU
    and the CUDA wheels), without importing MXNet; None when there is no ``mxnet`` package, and
    ``'unknown'`` when its version cannot be read."""
    import importlib.util
    spec = importlib.util.find_spec("mxnet")
    if spec is None or not spec.origin:
        return None
    try:
        with open(os.path.join(os.path.dirname(spec.origin), "libinfo.py")) as f:
            match = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", f.read(), re.M)
    except OSError:
        return "unknown"
    return match.group(1) if match else "unknown"


_check_versions()
