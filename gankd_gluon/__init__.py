"""GAN-Knowledge Distillation for object detection (Hong, Yu, Fan 2019) on MXNet Gluon + GluonCV.

Importing the package checks the two versions everything else depends on: MXNet 1.9.1 only
works with numpy < 1.24 (mxnet 1.9.1 ``mxnet/numpy/utils.py`` sets ``bool = onp.bool``, an alias
numpy 1.24.0 removed: its release notes, "Expired deprecations"), and a wrong numpy fails far
from its cause.
"""
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
    try:
        import mxnet
    except ImportError as err:
        raise ImportError("gankd_gluon needs mxnet==%s (CPU) or mxnet-cu112==%s (GPU), which "
                          "failed to import (%s); %s"
                          % (REQUIRED_MXNET, REQUIRED_MXNET, err, _INSTALL_HINT)) from err
    if mxnet.__version__ != REQUIRED_MXNET:
        raise ImportError("gankd_gluon needs mxnet %s (found %s); %s"
                          % (REQUIRED_MXNET, mxnet.__version__, _INSTALL_HINT))


_check_versions()
