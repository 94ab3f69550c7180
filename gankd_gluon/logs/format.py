"""Training-log line formatter: one function per line kind, as the authors' published logs
print them (:mod:`gankd_gluon.logs.published`).

The log format is a contract: the trainers write every line through these
functions, :mod:`gankd_gluon.logs.parse` reads the lines back, and ``tests/test_logs_format.py``
checks that formatting the values parsed from each published line gives the published line
again, byte for byte. The published logs are the authors' (Hong, Yu, Fan,
github.com/p517332051/GAN-Knowledge-Distillation-SSD; :mod:`gankd_gluon.logs.published` fetches
them and says where they are read, never copied into the repository):

- SSD (``ssd_512_mobilenet1_0_resnet50_v1_voc_g_d_new_train.log``)::

    Namespace(batch_size=64, beta1=0.5, ...)
    Start training from [Epoch 1]
    [Epoch 1][Batch 99], Speed: 35.872 samples/sec,Loss_D=-13.583. Loss_G=3.534.  Loss_D_real=...
    [Epoch 221], Speed: 398863.976 samples/sec,Loss_D=-0.091. Loss_G=6.315.Loss_D_real=6.223. ...
    [Epoch 221] StudentNet Validation: 
    aeroplane=0.8235239077265817
    ...
    mAP=0.7827056887461108
    best_map is 0.782009186748712

- Faster R-CNN (``faster_rcnn_resnet50_resnet101_v1b_g_d_voc_train.log``)::

    [Epoch 0][Batch 99], Speed: 6.217 samples/sec, RPN_Conf=0.185,RPN_SmoothL1=0.138,...
    [Epoch 0] Training cost: 647.914, RPN_Conf=0.114,...,Loss_G=0.083,Loss_D=-0.149
    [Epoch 0] Validation: 
    ...
    [Epoch 0] mAP 0.38503243685134314 higher than current best [0] saving to ..._best.params
    [Epoch 0] Saving parameters to ..._0000_0.3850.params

Losses and speeds print with 3 decimals (``%.3f``, so NaN prints ``nan``); APs, mAP and
``best_map`` print at full float precision (``str(float)``), as published.
"""
import argparse
import logging
import os
import sys

__all__ = [
    "format_namespace", "format_start", "format_ap", "format_ap_line", "format_ap_lines",
    "format_ssd_batch", "format_ssd_epoch",
    "format_validation", "format_best_map", "format_frcnn_batch", "format_frcnn_epoch",
    "format_frcnn_best", "format_frcnn_saving", "format_lr_change", "format_resumed",
    "format_interrupted", "format_interrupted_saved", "format_stopping", "setup_logger",
    "LogWriteError", "LogLines", "SSD_LINES", "FRCNN_LINES",
]


def _settings_items(args):
    """Return the (key, value) pairs of an argparse.Namespace or a dict, sorted by key."""
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    if not isinstance(args, dict):
        raise TypeError("format_namespace expects an argparse.Namespace or a dict, got %s"
                        % type(args).__name__)
    # Plain string order, so 'GAN_epochs' sorts before 'batch_size' as in the Faster R-CNN log:
    # the authors' Python sorted Namespace keys; Python >= 3.9 keeps insertion order instead.
    return sorted(args.items())


def format_namespace(args):
    """Format the settings line that opens every run.

    Parameters
    ----------
    args : argparse.Namespace or dict
        The parsed command-line arguments.

    Returns
    -------
    str
        ``Namespace(a=1, b='x', ...)``, keys sorted, values as ``repr``.
    """
    return "Namespace(%s)" % ", ".join("%s=%r" % (key, value)
                                       for key, value in _settings_items(args))


def format_start(epoch):
    """Format ``Start training from [Epoch N]`` (written after the Namespace line)."""
    return "Start training from [Epoch %d]" % epoch


def _ssd_metrics(metrics, gap_after_second):
    """Join SSD metrics as ``name=x.`` items.

    The published script wrote the first two metrics (``Loss_D``, ``Loss_G``) with their own
    format string and appended the rest, which left a different gap after the second item: two
    spaces in batch lines (``Loss_G=3.784.  Loss_D_real=``), none in epoch lines
    (``Loss_G=6.315.Loss_D_real=``). Reproducing it keeps our lines diffable against theirs.
    """
    items = ["%s=%.3f." % (name, float(value)) for name, value in metrics]
    if len(items) <= 2:
        return " ".join(items)
    return " ".join(items[:2]) + gap_after_second + " ".join(items[2:])


def format_ssd_batch(epoch, batch, speed, metrics):
    """Format an SSD batch line, written every ``--log-interval`` batches.

    Parameters
    ----------
    epoch : int
        Epoch number as the run counts it.
    batch : int
        Batch index within the epoch (0-based, so the first line is ``Batch 99``).
    speed : float
        Samples per second over the last interval.
    metrics : list of (str, float)
        Metric name and value, in print order: ``Loss_D``, ``Loss_G``, ``Loss_D_real``,
        ``Loss_D_fake``, then the detection losses. NaN prints as ``nan`` (stage-2 lines
        print the adversarial columns as nan, as published).

    Returns
    -------
    str
        ``[Epoch E][Batch B], Speed: S samples/sec,Loss_D=x. Loss_G=x.  Loss_D_real=x. ...``
    """
    return "[Epoch %d][Batch %d], Speed: %.3f samples/sec,%s" % (
        epoch, batch, float(speed), _ssd_metrics(metrics, "  "))


def format_ssd_epoch(epoch, speed, metrics):
    """Format the SSD end-of-epoch line ``[Epoch E], Speed: S samples/sec,...``.

    Parameters are as in :func:`format_ssd_batch`. ``speed`` is the epoch's samples per
    second; the published values there are timer glitches (``455747.803``), which the parser
    treats as outliers.
    """
    return "[Epoch %d], Speed: %.3f samples/sec,%s" % (
        epoch, float(speed), _ssd_metrics(metrics, ""))


def format_ap(value):
    """An AP as the logs print it: Python's ``str(float)``, except that a value above 1 by
    rounding only (VOC07's mean of eleven 1.0s is 1.0000000000000002) prints as 1.0."""
    value = float(value)
    return str(1.0 if 1.0 < value <= 1.0 + 1e-9 else value)


def format_ap_line(name, value):
    """Format one ``name=AP`` line of a validation block (a class, or ``mAP``).

    Parameters
    ----------
    name : str
        Class name, or ``'mAP'``.
    value : float
        Average precision in [0, 1] (NaN for a class without ground truth), printed at full
        precision (:func:`format_ap`).

    Returns
    -------
    str
        e.g. ``'aeroplane=0.8235239077265817'``, as GluonCV's ``train_ssd.py`` logs it.
    """
    return "%s=%s" % (name, format_ap(value))


def format_ap_lines(names, values):
    """Format ``name=AP`` lines (:func:`format_ap_line`) joined by newlines.

    What ``scripts/eval_voc.py`` and ``scripts/eval_coco.py`` print: the lines of a validation
    block without its ``[Epoch E] ... Validation:`` head.

    Parameters
    ----------
    names : list of str
        Class names, usually ending with ``'mAP'``.
    values : list of float
        One per name.

    Returns
    -------
    str
        e.g. ``'aeroplane=0.8235239077265817\\n...\\nmAP=0.7827056887461108'``.
    """
    return "\n".join(format_ap_line(name, value) for name, value in zip(names, values))


def format_validation(epoch, class_names, aps, mean_ap, title="StudentNet Validation",
                      metric=None):
    """Format a validation block (several lines joined by newlines).

    Parameters
    ----------
    epoch : int
        Epoch just validated.
    class_names : list of str
        Class names, in the order of ``aps``.
    aps : list of float
        Average precision per class (NaN for a class without ground truth).
    mean_ap : float
        Mean AP.
    title : str
        ``'StudentNet Validation'`` (the SSD GAN-KD log) or ``'Validation'`` (Faster R-CNN).
    metric : str, optional
        The metric, when not VOC07 mAP@0.5 (the published logs' only one): the mAP line then
        reads ``mAP=x (<metric>)``, e.g. ``mAP=0.21 (COCO AP@[.5:.95])``.

    Returns
    -------
    str
        ``[Epoch E] <title>: `` (with the published trailing space), one ``name=AP`` line per
        class, then ``mAP=x``; values at full precision (:func:`format_ap`).
    """
    if len(class_names) != len(aps):
        raise ValueError("format_validation: %d class names but %d APs"
                         % (len(class_names), len(aps)))
    lines = ["[Epoch %d] %s: " % (epoch, title)]
    lines.extend(format_ap_line(name, ap) for name, ap in zip(class_names, aps))
    lines.append(format_ap_line("mAP", mean_ap) + (" (%s)" % metric if metric else ""))
    return "\n".join(lines)


def format_best_map(best):
    """Format ``best_map is x`` (SSD log, after each validation of the running stage)."""
    return "best_map is %s" % float(best)


def format_frcnn_batch(epoch, batch, speed, metrics):
    """Format a Faster R-CNN batch line.

    Parameters are as in :func:`format_ssd_batch`; metrics print as ``name=x`` joined by commas:
    ``[Epoch E][Batch B], Speed: S samples/sec, RPN_Conf=x,RPN_SmoothL1=x,...,Loss_D=x``.
    """
    return "[Epoch %d][Batch %d], Speed: %.3f samples/sec, %s" % (
        epoch, batch, float(speed), _frcnn_metrics(metrics))


def _frcnn_metrics(metrics):
    return ",".join("%s=%.3f" % (name, float(value)) for name, value in metrics)


def format_frcnn_epoch(epoch, cost, metrics):
    """Format the Faster R-CNN end-of-epoch line.

    Parameters
    ----------
    epoch : int
        Epoch number.
    cost : float
        Wall time of the epoch in seconds.
    metrics : list of (str, float)
        As in :func:`format_frcnn_batch` (the published line has only the losses).

    Returns
    -------
    str
        ``[Epoch E] Training cost: T, RPN_Conf=x,...``
    """
    return "[Epoch %d] Training cost: %.3f, %s" % (epoch, float(cost), _frcnn_metrics(metrics))


def format_frcnn_best(epoch, current_map, best_map, path):
    """Format the new-best line GluonCV's ``save_params`` writes.

    Parameters
    ----------
    epoch : int
        Epoch just validated.
    current_map : float
        Its mAP, the new best.
    best_map : float or list of one float
        The previous best. GluonCV keeps it in a one-element list, hence the brackets in
        ``current best [0]``; an int 0 prints as ``[0]`` as in the published first epoch.
    path : str
        Where the best parameters are saved.

    Returns
    -------
    str
        ``[Epoch E] mAP x higher than current best [y] saving to path``
    """
    if isinstance(best_map, (list, tuple)):
        best_map = best_map[0]
    return "[Epoch %d] mAP %s higher than current best [%s] saving to %s" % (
        epoch, float(current_map), best_map, path)


def format_frcnn_saving(epoch, path):
    """Format ``[Epoch E] Saving parameters to path`` (GluonCV's periodic checkpoint line)."""
    return "[Epoch %d] Saving parameters to %s" % (epoch, path)


class LogLines:
    """The line kinds in which two published logs differ, for the training loop: one object
    per format, so that the loop asks it for a line instead of asking which format it writes.

    Parameters
    ----------
    batch : callable
        ``batch(epoch, batch, speed, metrics)`` -> the batch line (speed in samples/s,
        metrics a list of (name, value)).
    epoch : callable
        ``epoch(epoch, speed, cost, metrics)`` -> the end-of-epoch line (speed in samples/s,
        cost the epoch's wall time in s); each format prints one of the two.
    new_best : callable or None
        ``new_best(epoch, mean_ap, previous_best, path)`` -> the line written when a
        validation beats the best mAP (after its checkpoint is saved); None: no such line.
    best_so_far : callable or None
        ``best_so_far(best_map)`` -> the line written after every validation; None: none.
    """

    def __init__(self, batch, epoch, new_best=None, best_so_far=None):
        self.batch = batch
        self.epoch = epoch
        self.new_best = new_best
        self.best_so_far = best_so_far


def _ssd_epoch_line(epoch, speed, cost, metrics):      # the SSD line prints the speed
    return format_ssd_epoch(epoch, speed, metrics)


def _frcnn_epoch_line(epoch, speed, cost, metrics):    # the Faster R-CNN line the wall time
    return format_frcnn_epoch(epoch, cost, metrics)


#: The published SSD log: ``best_map is x`` after every validation
SSD_LINES = LogLines(format_ssd_batch, _ssd_epoch_line, best_so_far=format_best_map)
#: The published Faster R-CNN log (GluonCV's ``train_faster_rcnn.py``): a line per new best
FRCNN_LINES = LogLines(format_frcnn_batch, _frcnn_epoch_line, new_best=format_frcnn_best)


def format_lr_change(epoch, lr, what=""):
    """Format a learning-rate change, ``[Epoch E] Set learning rate to x``.

    ``what='GAN'`` gives the Faster R-CNN log's ``[Epoch 5] Set GAN learning rate to 0.00025``.
    """
    return "[Epoch %d] Set %slearning rate to %s" % (epoch, what + " " if what else "", lr)


def format_resumed(path, stage, epoch):
    """Format ``Resumed from PATH (stage S, epoch E done)`` (our trainer, after --resume)."""
    return "Resumed from %s (stage %d, epoch %d done)" % (path, stage, epoch)


def format_interrupted(signal_name, epoch, batch):
    """Format ``Stopping on SIGNAL after [Epoch E][Batch B]; saving`` (SIGTERM/SIGINT)."""
    return "Stopping on %s after [Epoch %d][Batch %d]; saving" % (signal_name, epoch, batch)


def format_interrupted_saved(path):
    """Format ``Saved PATH; continue with --resume PATH`` (after :func:`format_interrupted`)."""
    return "Saved %s; continue with --resume %s" % (path, path)


def format_stopping(error):
    """Format ``stopping: MESSAGE``, the last line of a run ended by an error such as the
    ``FloatingPointError`` of a non-finite loss (:func:`gankd_gluon.engine.guards.check_finite`)."""
    return "stopping: %s" % (error,)


class LogWriteError(OSError):
    """The training log could not be written (a full disk, a file-size limit): the run stops
    instead of training on without its record."""


class _StrictFileHandler(logging.FileHandler):
    """A ``FileHandler`` whose failed write stops the caller with :class:`LogWriteError`.

    ``logging.Handler.handleError`` prints ``--- Logging error ---`` and a traceback to stderr
    and carries on, so a run whose log disk is full trains to the end with no record and exits
    0. Here the error reaches the ``logger.info`` call (one line at the entry point).
    """

    def handleError(self, record):
        err = sys.exc_info()[1]
        raise LogWriteError("cannot write the log %s: %s" % (self.baseFilename, err)) from err


class _PlainFormatter(logging.Formatter):
    """Bare messages: the published logs have no timestamps or level names."""

    def __init__(self):
        super().__init__("%(message)s")


def setup_logger(log_path, name="gankd", to_console=True):
    """Return a logger that writes bare lines to ``log_path`` (append) and the terminal.

    Parameters
    ----------
    log_path : str
        Log file; parent directories are created. Opened in append mode so a restarted run
        continues the same file with a new ``Namespace`` line, as the published logs do.
    name : str
        Logger name.
    to_console : bool
        Also write to stderr (as GluonCV's training scripts do).

    Returns
    -------
    logging.Logger
        Level INFO, not propagating to the root logger (so a root handler set up elsewhere
        does not print every line twice). Calling again replaces the handlers this function
        added before, so a second run in the same process does not double its lines.

    Raises
    ------
    LogWriteError
        From any logging call whose line cannot be written to ``log_path`` (full disk,
        file-size limit), naming the file; never printed and ignored as ``logging`` does.
    """
    parent = os.path.dirname(os.path.abspath(log_path))
    os.makedirs(parent, exist_ok=True)
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        if getattr(handler, "_gankd_handler", False):
            logger.removeHandler(handler)
            handler.close()
    handlers = [_StrictFileHandler(log_path, mode="a", encoding="utf-8")]
    if to_console:
        handlers.append(logging.StreamHandler())
    for handler in handlers:
        handler._gankd_handler = True
        handler.setFormatter(_PlainFormatter())
        logger.addHandler(handler)
    return logger
