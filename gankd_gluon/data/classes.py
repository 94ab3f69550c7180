"""Class names of one's own dataset (``--classes a,b,c`` or ``--classes FILE``) and text files
read robustly.

Every script that reads a dataset or names classes (training, ``eval_voc.py``,
``eval_coco.py``, ``detect.py``, ``probe_critics.py``) parses ``--classes`` with
:func:`parse_classes`, so a list is refused or accepted the same way everywhere. The order of
the names is the label order: label ``k`` is ``names[k]``, as in GluonCV's ``VOCDetection``
(``index_map = dict(zip(CLASSES, range(len(CLASSES))))``).
"""
import argparse
import codecs
import os

__all__ = ["ClassListError", "parse_classes", "classes_arg", "read_text_lines"]

#: Endings of a class-list file (Darknet's ``.names``, plain text lists); a ``--classes`` value
#: that ends so and is not a file is a mistyped path, not one class name.
LIST_FILE_EXTENSIONS = (".txt", ".names", ".list", ".lst", ".csv", ".labels", ".yaml", ".yml",
                        ".json")


class ClassListError(ValueError):
    """A ``--classes`` value or file that cannot be a list of class names."""


def read_text_lines(path):
    """The lines of a text file written by any common editor, without their line endings.

    UTF-8 (with or without the byte-order mark Windows editors write) and UTF-16 with a
    byte-order mark (Windows Notepad's "Unicode") are decoded; CRLF and CR endings are split
    like LF. Any other encoding is refused rather than guessed: a misread byte would make an id
    or a class name that matches nothing.

    Parameters
    ----------
    path : str

    Returns
    -------
    list of (int, str)
        ``(line number from 1, text)`` per line.

    Raises
    ------
    UnicodeError
        A ``ValueError`` whose message names the file, the line and the byte, e.g.
        ``'list.txt line 3: byte 0xe9 at column 5 is not UTF-8 (save the file as UTF-8)'``.
    OSError
        The file cannot be read.
    """
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as err:
            raise UnicodeError("%s: not valid UTF-16 (byte %d): save the file as UTF-8"
                               % (path, err.start)) from None
        return list(enumerate(text.splitlines(), start=1))
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    lines = []
    for lineno, raw in enumerate(data.splitlines(), start=1):
        try:
            lines.append((lineno, raw.decode("utf-8")))
        except UnicodeDecodeError as err:
            raise UnicodeError("%s line %d: byte 0x%02x at column %d is not UTF-8 (save the "
                               "file as UTF-8)" % (path, lineno, raw[err.start], err.start + 1)
                               ) from None
    return lines


def parse_classes(value, flag="--classes"):
    """Class names from ``a,b,c`` or from a file with one name per line.

    A value naming an existing file is read as a file (blank lines and ``#`` comments skipped,
    spaces around names stripped); anything else is a comma-separated list. A single value that
    looks like a path (a ``/`` or ``\\``, or a list-file ending such as ``.txt``) but is not a
    file is refused, not taken as one class name. Names are lowercased as GluonCV's
    ``VOCDetection`` lowercases ``<name>`` (``_validate_class_names`` refuses upper case). A
    name becomes a file name (the devkit's ``comp4_det_test_<name>.txt``), so ``/`` and ``\\``
    are refused in it.

    Parameters
    ----------
    value : str
    flag : str
        How the command line names the value, for messages.

    Returns
    -------
    tuple of str
        The names in label order, at least one.

    Raises
    ------
    ClassListError
        No names, an empty name (``a,,b``), a name given twice, a name with a comma, a tab,
        ``=``, ``[``, ``]`` or a path separator inside, a file that does not exist or cannot be read as text; the
        message names the flag, and the file and line where there is one.
    """
    value = str(value)
    if os.path.isfile(value):
        try:
            lines = read_text_lines(value)
        except UnicodeError as err:
            raise ClassListError("%s %s" % (flag, err)) from None      # names file and line
        except OSError as err:
            raise ClassListError("%s %s: %s" % (flag, value, err)) from None
        entries = [(ln, text.strip()) for ln, text in lines]
        entries = [(ln, t) for ln, t in entries if t and not t.startswith("#")]
        where = lambda ln: "%s %s line %d" % (flag, value, ln)   # noqa: E731
        if not entries:
            raise ClassListError("%s %s: the file names no class (one name per line)"
                                 % (flag, value))
    else:
        if os.path.isdir(value):
            raise ClassListError("%s %s: a folder; give names 'a,b,c' or a file with one "
                                 "name per line" % (flag, value))
        parts = value.split(",")
        if len(parts) == 1 and ("/" in value or "\\" in value
                                or value.strip().lower().endswith(LIST_FILE_EXTENSIONS)):
            raise ClassListError("%s %s: no such file (give names 'a,b,c' or an existing file "
                                 "with one name per line)" % (flag, value))
        entries = [(k, p.strip()) for k, p in enumerate(parts, start=1)]
        where = lambda k: "%s %s: name %d" % (flag, value, k)    # noqa: E731
        if len(parts) == 1 and not parts[0].strip():
            raise ClassListError("%s: no class names (give 'a,b,c' or a file with one name "
                                 "per line)" % flag)
    names, seen = [], {}
    for pos, text in entries:
        name = text.lower()
        if not name:
            raise ClassListError("%s is empty" % where(pos))
        if "," in name or "\t" in name:
            raise ClassListError("%s: %r has a comma or a tab inside (a class name must also "
                                 "be writable as --classes a,b,c)" % (where(pos), text))
        if any(c in name for c in "=[]"):
            raise ClassListError("%s: %r has '=', '[' or ']' inside (a class name starts the "
                                 "log's 'classname=AP' lines, which tools parse)"
                                 % (where(pos), text))
        if "/" in name or "\\" in name:
            raise ClassListError("%s: %r has a path separator inside (a class name is also a "
                                 "file name, comp4_det_test_<name>.txt)" % (where(pos), text))
        if name in seen:
            raise ClassListError("%s: %r is repeated (first at %d)" % (where(pos), text,
                                                                      seen[name]))
        seen[name] = pos
        names.append(name)
    return tuple(names)


def classes_arg(value):
    """argparse ``type`` for ``--classes``: :func:`parse_classes`, as an argparse error."""
    try:
        return parse_classes(value)
    except ClassListError as err:
        text = str(err)
        if text.startswith("--classes "):
            text = text[len("--classes "):]
        elif text.startswith("--classes: "):
            text = text[len("--classes: "):]
        raise argparse.ArgumentTypeError(text) from None
