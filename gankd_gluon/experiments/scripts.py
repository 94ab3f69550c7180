"""The command-line scripts of ``scripts/`` as modules, for their ``parse_args`` and ``main``
(benchmarks and tests build a Namespace with exactly a script's defaults this way)."""
import importlib.util
import os

__all__ = ["SCRIPTS_DIR", "load_script"]

SCRIPTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "scripts")


def load_script(name, module_name=None):
    """Import ``scripts/<name>`` (for example ``"train_ssd_gan_kd.py"``) as a module.

    Parameters
    ----------
    name : str
        File name inside ``scripts/``.
    module_name : str or None
        The module's ``__name__`` (default: the file name without ``.py``).

    Raises
    ------
    FileNotFoundError
        No such script.
    """
    path = os.path.join(SCRIPTS_DIR, name)
    if not os.path.isfile(path):
        raise FileNotFoundError("no script %s" % path)
    spec = importlib.util.spec_from_file_location(module_name or name[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
