"""The line formatter reproduces the published logs byte for byte (the log format is a contract)."""
import argparse
import math

import pytest

from gankd_gluon.logs import format as fmt
from gankd_gluon.logs.parse import (BatchRecord, EpochRecord, NewBestRecord, ValidationRecord,
                                    parse_lines, parse_log, parse_namespace)


def _render(parsed):
    """Write a parsed log back with the formatter, one entry per original line number."""
    lines = {}
    for run in parsed.runs:
        if run.header is not None:
            lines[run.line_no] = fmt.format_namespace(run.settings)
        for rec in run.timeline():
            if isinstance(rec, BatchRecord):
                kind = fmt.format_ssd_batch if rec.style == "ssd" else fmt.format_frcnn_batch
                text = kind(rec.epoch, rec.batch, rec.speed, list(rec.metrics.items()))
            elif isinstance(rec, EpochRecord) and rec.cost is None:
                text = fmt.format_ssd_epoch(rec.epoch, rec.speed, list(rec.metrics.items()))
            elif isinstance(rec, EpochRecord):
                text = fmt.format_frcnn_epoch(rec.epoch, rec.cost, list(rec.metrics.items()))
            elif isinstance(rec, ValidationRecord):
                text = fmt.format_validation(rec.epoch, list(rec.aps), list(rec.aps.values()),
                                             rec.mean_ap, title=rec.title)
            elif isinstance(rec, NewBestRecord):
                prev = rec.previous_best
                text = fmt.format_frcnn_best(rec.epoch, rec.current_map,
                                             int(prev) if prev.is_integer() else prev, rec.path)
            else:
                continue
            lines[rec.line_no] = text
        for event in run.events:
            lines[event.line_no] = _render_event(event)
        for best in run.best_maps:
            lines[best.line_no] = fmt.format_best_map(best.value)
    out = []
    for line_no in sorted(lines):
        out.extend(lines[line_no].split("\n"))
    return out


def _render_event(event):
    if event.kind == "saving":
        return fmt.format_frcnn_saving(event.epoch, event.value)
    if event.kind == "lr":
        return fmt.format_lr_change(event.epoch, event.value, event.detail)
    if event.kind == "start":
        return fmt.format_start(event.epoch)
    if event.kind == "resumed":
        stage, epoch = [int(w) for w in event.detail.replace(",", "").split() if w.isdigit()]
        return fmt.format_resumed(event.value, stage, epoch)
    if event.kind == "interrupted":
        return fmt.format_interrupted(event.value, event.epoch, int(event.detail))
    if event.kind == "saved":
        return fmt.format_interrupted_saved(event.value)
    assert event.kind == "stopped"
    return fmt.format_stopping(event.value)


@pytest.mark.parametrize("which", ["published_ssd_log", "published_frcnn_log"])
def test_formatter_reproduces_published_log_exactly(request, which):
    path = request.getfixturevalue(which)
    with open(path, encoding="utf-8") as handle:
        original = handle.read().splitlines()
    assert _render(parse_log(path)) == original


def test_format_namespace_sorts_keys_plain_string_order():
    args = argparse.Namespace(lr=0.001, GAN_epochs=26, gpus="4,5,6,7", resume="", mixup=False,
                              norm_layer=None, lr_warmup=-1)
    assert fmt.format_namespace(args) == (
        "Namespace(GAN_epochs=26, gpus='4,5,6,7', lr=0.001, lr_warmup=-1, mixup=False, "
        "norm_layer=None, resume='')")
    assert fmt.format_namespace({"b": 1, "a": "x"}) == "Namespace(a='x', b=1)"
    with pytest.raises(TypeError):
        fmt.format_namespace(["a", 1])


def test_namespace_round_trip_published(published_ssd_log):
    with open(published_ssd_log, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n")
    settings, complete = parse_namespace(header)
    assert complete and settings["batch_size"] == 64 and settings["network"] == "vgg16_atrous"
    assert fmt.format_namespace(settings) == header


def test_ssd_lines_match_published_separators():
    metrics = [("Loss_D", -13.622), ("Loss_G", 3.784), ("Loss_D_real", -10.771),
               ("Loss_D_fake", 2.851), ("train_student_ori_net_CrossEntropy", 6.191),
               ("train_student_ori_net_SmoothL1", 2.686), ("cosine_length_loss_metric", 0.643)]
    assert fmt.format_ssd_batch(1, 99, 32.788, metrics) == (
        "[Epoch 1][Batch 99], Speed: 32.788 samples/sec,Loss_D=-13.622. Loss_G=3.784.  "
        "Loss_D_real=-10.771. Loss_D_fake=2.851. train_student_ori_net_CrossEntropy=6.191. "
        "train_student_ori_net_SmoothL1=2.686. cosine_length_loss_metric=0.643.")
    nan = float("nan")
    stage2 = [("Loss_D", nan), ("Loss_G", nan), ("Loss_D_real", nan), ("Loss_D_fake", nan),
              ("train_student_ori_net_CrossEntropy", 1.378),
              ("train_student_ori_net_SmoothL1", 0.66)]
    assert fmt.format_ssd_epoch(1, 455747.803, stage2) == (
        "[Epoch 1], Speed: 455747.803 samples/sec,Loss_D=nan. Loss_G=nan.Loss_D_real=nan. "
        "Loss_D_fake=nan. train_student_ori_net_CrossEntropy=1.378. "
        "train_student_ori_net_SmoothL1=0.660.")
    assert fmt.format_ssd_batch(3, 9, 1.0, [("a", 0.12345)]) == (
        "[Epoch 3][Batch 9], Speed: 1.000 samples/sec,a=0.123.")


def test_validation_block_and_best_map():
    block = fmt.format_validation(221, ["aeroplane", "bicycle"],
                                  [0.8235239077265817, float("nan")], 0.7827056887461108)
    assert block.split("\n") == ["[Epoch 221] StudentNet Validation: ",
                                 "aeroplane=0.8235239077265817", "bicycle=nan",
                                 "mAP=0.7827056887461108"]
    assert fmt.format_validation(0, [], [], 0.5, title="Validation").startswith(
        "[Epoch 0] Validation: \n")
    assert fmt.format_best_map(0.782009186748712) == "best_map is 0.782009186748712"
    with pytest.raises(ValueError):
        fmt.format_validation(1, ["a"], [0.1, 0.2], 0.1)


def test_frcnn_lines():
    metrics = [("RPN_Conf", 0.114), ("Loss_G", float("nan")), ("Loss_D", -0.149)]
    assert fmt.format_frcnn_batch(0, 99, 5.167, metrics) == (
        "[Epoch 0][Batch 99], Speed: 5.167 samples/sec, RPN_Conf=0.114,Loss_G=nan,Loss_D=-0.149")
    assert fmt.format_frcnn_epoch(27, 463.796, metrics) == (
        "[Epoch 27] Training cost: 463.796, RPN_Conf=0.114,Loss_G=nan,Loss_D=-0.149")
    assert fmt.format_frcnn_best(0, 0.3655010840748371, [0], "x_best.params") == (
        "[Epoch 0] mAP 0.3655010840748371 higher than current best [0] saving to x_best.params")
    assert fmt.format_frcnn_best(1, 0.45, 0.38503243685134314, "p") == (
        "[Epoch 1] mAP 0.45 higher than current best [0.38503243685134314] saving to p")
    assert fmt.format_frcnn_saving(3, "a.params") == "[Epoch 3] Saving parameters to a.params"
    assert fmt.format_lr_change(5, 0.00025, "GAN") == "[Epoch 5] Set GAN learning rate to 0.00025"
    assert fmt.format_lr_change(80, 0.0001) == "[Epoch 80] Set learning rate to 0.0001"


def test_log_lines_objects_pick_each_formats_lines():
    """The loop's line kinds per format: SSD prints the epoch's speed and ``best_map is`` after
    every validation, Faster R-CNN the epoch's wall time and a line per new best only."""
    metrics = [("Loss_D", -0.091), ("Loss_G", 6.315), ("Loss_D_real", 6.223)]
    assert fmt.SSD_LINES.batch(1, 99, 35.872, metrics) == fmt.format_ssd_batch(1, 99, 35.872,
                                                                                metrics)
    assert fmt.SSD_LINES.epoch(221, 398863.976, 12.5, metrics) == (
        "[Epoch 221], Speed: 398863.976 samples/sec,Loss_D=-0.091. Loss_G=6.315.Loss_D_real=6.223.")
    assert fmt.SSD_LINES.new_best is None
    assert fmt.SSD_LINES.best_so_far(0.5) == "best_map is 0.5"
    assert fmt.FRCNN_LINES.batch(0, 99, 5.167, metrics[:1]) == (
        "[Epoch 0][Batch 99], Speed: 5.167 samples/sec, Loss_D=-0.091")
    assert fmt.FRCNN_LINES.epoch(27, 1.0, 463.796, metrics[:1]) == (
        "[Epoch 27] Training cost: 463.796, Loss_D=-0.091")
    assert fmt.FRCNN_LINES.new_best(0, 0.45, 0, "p") == (
        "[Epoch 0] mAP 0.45 higher than current best [0] saving to p")
    assert fmt.FRCNN_LINES.best_so_far is None


def test_setup_logger_plain_append_no_duplicates(tmp_path):
    path = tmp_path / "deep" / "dir" / "train.log"
    logger = fmt.setup_logger(str(path), name="gankd_test_logger", to_console=False)
    logger.info(fmt.format_start(1))
    # A second setup (a restarted run in one process) appends and does not double lines.
    logger = fmt.setup_logger(str(path), name="gankd_test_logger", to_console=False)
    logger.info(fmt.format_best_map(0.5))
    for handler in logger.handlers:
        handler.flush()
    assert path.read_text().splitlines() == ["Start training from [Epoch 1]", "best_map is 0.5"]
    assert not logger.propagate
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def test_trainer_event_lines_round_trip():
    """The extra lines our trainer writes (resume, SIGTERM, non-finite-loss stop) parse back."""
    lines = [fmt.format_namespace({"resume": "auto"}),
             fmt.format_resumed("out/x-epoch-s1-e0003.params", 1, 3),
             fmt.format_start(4),
             fmt.format_ssd_batch(4, 9, 30.0, [("Loss_D", -0.5), ("CE", 1.0)]),
             fmt.format_interrupted("SIGTERM", 4, 12),
             fmt.format_interrupted_saved("out/x-interrupted.params"),
             fmt.format_stopping(FloatingPointError(
                 "non-finite loss at epoch 4, batch 13, before the update: Loss_D=nan"))]
    parsed = parse_lines(lines)
    assert parsed.unreadable_count == 0
    run = parsed.runs[0]
    assert [_render_event(e) for e in run.events] == lines[1:3] + lines[4:]
    assert run.stop_messages == [
        "non-finite loss at epoch 4, batch 13, before the update: Loss_D=nan"]


def test_nan_and_inf_print_as_words():
    line = fmt.format_frcnn_batch(1, 1, float("inf"), [("x", float("nan")), ("y", -math.inf)])
    assert line.endswith("Speed: inf samples/sec, x=nan,y=-inf")


def test_one_ap_line_formatter_for_the_log_and_the_eval_scripts():
    """The AP lines ``eval_voc.py``/``eval_coco.py`` print are the log's, from one formatter:
    a validation block is its head line followed by them."""
    from gankd_gluon import eval as evaluation
    from gankd_gluon.eval import voc
    assert voc.format_ap_lines is fmt.format_ap_lines is evaluation.format_ap_lines
    names, aps = ["aeroplane", "bicycle"], [0.8235239077265817, float("nan")]
    block = fmt.format_validation(7, names, aps, 0.8235239077265817)
    assert block == ("[Epoch 7] StudentNet Validation: \n"
                     + fmt.format_ap_lines(names + ["mAP"], aps + [0.8235239077265817]))
    assert fmt.format_ap_line("bicycle", float("nan")) == "bicycle=nan"


def test_aps_above_one_by_rounding_print_as_one():
    from gankd_gluon.eval.voc import format_ap_lines
    eleven = 0.0
    for _ in range(11):                    # VOC07's 11-point AP of a perfect class, as GluonCV
        eleven += 1.0 / 11.0               # sums it (voc_detection.py, _average_precision)
    assert eleven == 1.0000000000000002
    assert fmt.format_ap(eleven) == "1.0"
    assert fmt.format_ap(0.5) == "0.5" and fmt.format_ap(1.5) == "1.5"   # only rounding
    assert format_ap_lines(["a", "mAP"], [eleven, 0.25]) == "a=1.0\nmAP=0.25"
    block = fmt.format_validation(3, ["a"], [eleven], eleven)
    assert block == "[Epoch 3] StudentNet Validation: \na=1.0\nmAP=1.0"


def test_validation_names_a_metric_other_than_voc07_and_parses_back():
    block = fmt.format_validation(2, ["a", "b"], [0.25, 0.5], 0.375, metric="COCO AP@[.5:.95]")
    assert block.splitlines()[-1] == "mAP=0.375 (COCO AP@[.5:.95])"
    log = parse_lines([fmt.format_namespace({"lr": 0.1})] + block.splitlines()
                      + fmt.format_validation(3, ["a", "b"], [0.5, 0.5], 0.5).splitlines())
    first, second = log.runs[0].validations
    assert (first.mean_ap, first.metric, first.aps) == (0.375, "COCO AP@[.5:.95]",
                                                        {"a": 0.25, "b": 0.5})
    assert (second.mean_ap, second.metric) == (0.5, None)
    assert log.unreadable_count == 0


class _FullDisk:
    """A stream whose writes fail as on a full disk."""

    def write(self, _text):
        raise OSError(28, "No space left on device")

    def flush(self):
        pass


def test_a_failed_log_write_raises_naming_the_file(tmp_path, capsys):
    path = tmp_path / "run_train.log"
    logger = fmt.setup_logger(str(path), name="test_full_log", to_console=False)
    logger.info("written")
    handler = logger.handlers[0]
    handler.stream = _FullDisk()
    with pytest.raises(fmt.LogWriteError, match=r"cannot write the log %s: \[Errno 28\] No "
                       "space left on device" % path):
        logger.info("lost")
    assert "Logging error" not in capsys.readouterr().err
    assert path.read_text() == "written\n"
    # the control: the standard handler prints a traceback and carries on
    import logging
    plain = logging.FileHandler(str(tmp_path / "plain.log"))
    plain.stream = _FullDisk()
    logger.removeHandler(handler)
    logger.addHandler(plain)
    logger.info("lost")
    assert "--- Logging error ---" in capsys.readouterr().err
    logger.removeHandler(plain)
