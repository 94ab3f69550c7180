"""The parser on the two published logs (numbers read off the logs by hand), on our own logs,
and on damage."""
import math

import pytest

from gankd_gluon.logs import format as fmt
from gankd_gluon.logs.parse import parse_lines, parse_log

NAN = float("nan")
VOC = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
       "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
       "train", "tvmonitor"]


@pytest.fixture(scope="module")
def ssd(published_ssd_log):
    return parse_log(published_ssd_log)


@pytest.fixture(scope="module")
def frcnn(published_frcnn_log):
    return parse_log(published_frcnn_log)


# -- published SSD log ---------------------------------------------------------------------
def test_ssd_runs_and_stage_switch(ssd):
    assert ssd.kind == "ssd" and ssd.unreadable_count == 0 and ssd.n_lines == 574
    assert len(ssd.runs) == 2
    assert [r.settings["num_workers"] for r in ssd.runs] == [16, 32]
    run = ssd.run(-1)
    assert run.index == 2 and run.start_epoch == 1
    stage1, stage2 = run.segments
    assert (stage1.stage, stage1.kind, stage1.first_epoch, stage1.last_epoch) == (
        1, "adversarial", 1, 221)
    assert (stage2.stage, stage2.kind, stage2.first_epoch, stage2.last_epoch) == (
        2, "plain", 1, 4)
    assert stage2.reason == "epoch counter restarts (221 -> 1)"
    assert (stage2.first_global_epoch, stage2.last_global_epoch) == (222, 225)
    assert run.n_epochs_trained == 225


def test_ssd_validations_and_best(ssd):
    run = ssd.run(2)
    maps = [round(v.mean_ap, 5) for v in run.validations]
    assert maps == [0.78271, 0.78201, 0.78021, 0.78010, 0.78052]
    assert [v.epoch for v in run.validations] == [221, 1, 2, 3, 4]
    assert [v.stage for v in run.validations] == [1, 2, 2, 2, 2]
    assert all(list(v.aps) == VOC for v in run.validations)
    assert run.validations[0].aps["aeroplane"] == 0.8235239077265817
    # The log's own best_map is the best of stage 2; the maximum is stage-1 epoch 221.
    assert round(run.logged_best_map, 5) == 0.78201
    assert round(run.best_validation.mean_ap, 5) == 0.78271
    assert run.best_validation.epoch == 221
    assert run.validations[0].logged_best is None  # no best_map line after stage 1
    assert [round(b.value, 5) for b in run.best_maps] == [0.78201] * 4
    assert ssd.run(1).validations == []


def test_ssd_stage2_not_computed_not_divergence(ssd):
    run = ssd.run(2)
    stage1, stage2 = run.segments
    assert stage2.not_computed == ["Loss_D", "Loss_G", "Loss_D_real", "Loss_D_fake"]
    assert stage1.not_computed == []
    assert stage2.absent == ["cosine_length_loss_metric"]
    assert run.divergences == []
    # Unknown metrics are kept by name.
    assert run.batches[0].metrics["cosine_length_loss_metric"] == 0.637
    assert "cosine_length_loss_metric" in run.metric_names
    nan_line = [b for b in run.batches if b.stage == 2][0]
    assert math.isnan(nan_line.metrics["Loss_D"])
    assert nan_line.metrics["train_student_ori_net_CrossEntropy"] == 1.376


def test_ssd_speeds_median_and_glitches(ssd):
    stage1, stage2 = ssd.run(2).segments
    assert stage1.median_speed == pytest.approx(35.03, abs=0.01)
    assert stage2.median_speed == pytest.approx(57.22, abs=0.01)
    assert stage2.median_speed / stage1.median_speed == pytest.approx(1.63, abs=0.01)
    assert (448, 398863.976) in stage1.speed_outliers
    assert [s for _, s in stage2.speed_outliers] == [455747.803, 1383687.918, 1777718.252,
                                                       1607397.940]
    assert stage1.n_batch_lines == 442 and stage2.n_batch_lines == 8
    assert stage1.n_epoch_lines == 1 and stage2.n_epoch_lines == 4


def test_ssd_epoch_line_separators(ssd):
    epoch221 = ssd.run(2).epochs[0]
    assert epoch221.epoch == 221 and epoch221.speed == 398863.976
    assert epoch221.metrics == {"Loss_D": -0.091, "Loss_G": 6.315, "Loss_D_real": 6.223,
                                "Loss_D_fake": 6.314,
                                "train_student_ori_net_CrossEntropy": 1.381,
                                "train_student_ori_net_SmoothL1": 0.655}


# -- published Faster R-CNN log --------------------------------------------------------------
def test_frcnn_runs_and_validations(frcnn):
    assert frcnn.kind == "frcnn" and frcnn.unreadable_count == 0
    assert len(frcnn.runs) == 45
    assert frcnn.n_validations == 39
    assert [r.index for r in frcnn.runs if r.validations] == [44, 45]
    assert [v.epoch for v in frcnn.run(44).validations] == [0]
    assert [v.epoch for v in frcnn.run(45).validations] == list(range(38))
    assert all(len(v.aps) == 20 for r in frcnn.runs for v in r.validations)
    assert all(v.title == "Validation" for v in frcnn.run(45).validations)


def test_frcnn_best(frcnn):
    run = frcnn.run(-1)
    best = run.best_validation
    assert round(best.mean_ap, 5) == 0.73838 and best.epoch == 35
    assert round(run.logged_best_map, 5) == 0.73838
    assert run.new_bests[0].previous_best == 0 and run.new_bests[-1].epoch == 35
    assert sum(e.kind == "saving" for e in run.events) == 38
    assert [(e.epoch, e.value, e.detail) for e in run.events if e.kind == "lr"] == [
        (5, 0.00025, "GAN"), (5, 0.000125, "GAN")]


def test_frcnn_stage2_starts_where_adversarial_columns_turn_nan(frcnn):
    run = frcnn.run(45)
    stage1, stage2 = run.segments
    assert (stage1.first_epoch, stage1.last_epoch, stage1.kind) == (0, 26, "adversarial")
    assert (stage2.first_epoch, stage2.last_epoch, stage2.kind) == (27, 37, "plain")
    assert stage2.reason == "adversarial columns turn nan from epoch 27"
    assert stage2.not_computed == ["Loss_G", "Loss_D"]
    assert stage2.notes == ["switch at epoch 27 agrees with GAN_epochs=26"]
    assert run.divergences == []
    # The validation of epoch 26 belongs to stage 1, that of 27 to stage 2.
    assert [v.stage for v in run.validations if v.epoch in (26, 27)] == [1, 2]
    assert stage1.median_epoch_cost == pytest.approx(833.3, abs=0.1)
    assert stage2.median_epoch_cost == pytest.approx(463.9, abs=0.1)
    assert stage2.median_speed / stage1.median_speed == pytest.approx(1.80, abs=0.01)
    assert frcnn.run(1).kind == "frcnn"  # header only: told from save_prefix


# -- our own logs ------------------------------------------------------------------------------
def _our_log(tmp_path, diverge=False):
    """A small log written through setup_logger and the formatter, as the trainer will."""
    path = tmp_path / "logs" / "ssd_512_mobilenet1.0_resnet50_v1_voc_gankd_train.log"
    logger = fmt.setup_logger(str(path), name="gankd_parse_test", to_console=False)
    logger.info(fmt.format_namespace({"stage1_epochs": 2, "lr": 0.001, "gpus": "0"}))
    logger.info(fmt.format_start(1))
    for epoch in (1, 2):
        for batch in (9, 19):
            loss_d = NAN if diverge and epoch == 2 and batch == 19 else -1.25 + epoch
            logger.info(fmt.format_ssd_batch(epoch, batch, 30.0 + batch, [
                ("Loss_D", loss_d), ("Loss_G", 0.5), ("Loss_D_real", 0.25),
                ("Loss_D_fake", 0.75), ("CrossEntropy", 3.0 / epoch), ("SmoothL1", 1.5),
                ("new_metric", 0.001 * batch)]))
        logger.info(fmt.format_ssd_epoch(epoch, 99999.0, [("Loss_D", -0.5), ("Loss_G", 0.5),
                                                          ("CrossEntropy", 2.0)]))
    logger.info(fmt.format_validation(2, ["cat", "dog"], [0.5, 0.25], 0.375))
    logger.info(fmt.format_best_map(0.375))
    logger.info(fmt.format_start(1))  # our trainer opens each stage with a Start line
    for batch in (9, 19):  # stage 2: counter restarts, adversarial columns print nan
        logger.info(fmt.format_ssd_batch(1, batch, 60.0, [
            ("Loss_D", NAN), ("Loss_G", NAN), ("Loss_D_real", NAN), ("Loss_D_fake", NAN),
            ("CrossEntropy", 1.0), ("SmoothL1", 0.5)]))
    logger.info(fmt.format_validation(1, ["cat", "dog"], [0.625, 0.5], 0.5625))
    logger.info(fmt.format_best_map(0.5625))
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    return path


def test_formatter_parser_round_trip(tmp_path):
    parsed = parse_log(str(_our_log(tmp_path)))
    assert parsed.unreadable_count == 0 and parsed.kind == "ssd" and len(parsed.runs) == 1
    run = parsed.runs[0]
    assert run.settings == {"gpus": "0", "lr": 0.001, "stage1_epochs": 2}
    assert [(b.epoch, b.batch, b.speed) for b in run.batches[:2]] == [(1, 9, 39.0),
                                                                    (1, 19, 49.0)]
    assert run.batches[0].metrics == {"Loss_D": -0.25, "Loss_G": 0.5, "Loss_D_real": 0.25,
                                      "Loss_D_fake": 0.75, "CrossEntropy": 3.0,
                                      "SmoothL1": 1.5, "new_metric": 0.009}
    assert run.epochs[1].metrics == {"Loss_D": -0.5, "Loss_G": 0.5, "CrossEntropy": 2.0}
    assert [(v.epoch, v.aps, v.mean_ap, v.logged_best) for v in run.validations] == [
        (2, {"cat": 0.5, "dog": 0.25}, 0.375, 0.375),
        (1, {"cat": 0.625, "dog": 0.5}, 0.5625, 0.5625)]
    stage1, stage2 = run.segments
    assert (stage1.stage, stage2.stage) == (1, 2)
    assert stage2.not_computed == ["Loss_D", "Loss_G", "Loss_D_real", "Loss_D_fake"]
    assert stage2.absent == ["new_metric"]
    assert stage1.speed_outliers == [(5, 99999.0), (8, 99999.0)]  # the epoch lines
    assert stage2.reason == "new 'Start training from [Epoch 1]' line"
    assert (stage2.first_global_epoch, stage2.last_global_epoch) == (3, 3)
    assert run.divergences == []


def test_start_line_splits_stages_with_same_epoch_number():
    """A one-epoch stage 1 followed by stage 2 epoch 1: the counter does not go down, the
    trainer's Start line marks the switch, so the nan columns are not a divergence."""
    adv = [("Loss_D", -0.5), ("Loss_G", 0.5), ("CE", 2.0)]
    plain = [("Loss_D", NAN), ("Loss_G", NAN), ("CE", 1.0)]
    lines = [fmt.format_namespace({}), fmt.format_start(1),
             fmt.format_ssd_batch(1, 9, 30.0, adv), fmt.format_ssd_epoch(1, 30.0, adv),
             fmt.format_start(1),
             fmt.format_ssd_batch(1, 9, 50.0, plain), fmt.format_ssd_epoch(1, 50.0, plain)]
    run = parse_lines(lines).runs[0]
    assert [(s.stage, s.first_global_epoch) for s in run.segments] == [(1, 1), (2, 2)]
    assert run.segments[1].not_computed == ["Loss_D", "Loss_G"]
    assert run.divergences == []


def test_nan_after_finite_in_adversarial_stage_is_divergence(tmp_path):
    run = parse_log(str(_our_log(tmp_path, diverge=True))).runs[0]
    assert [(d.metric, d.epoch, d.batch, d.stage) for d in run.divergences] == [
        ("Loss_D", 2, 19, 1)]
    assert run.segments[0].kind == "adversarial"


def test_nan_tail_mid_epoch_is_not_a_stage_switch():
    line = fmt.format_frcnn_batch
    lines = [fmt.format_namespace({"a": 1})]
    lines += [line(0, b, 5.0, [("RPN_Conf", 0.1), ("Loss_G", 0.05), ("Loss_D", -0.1)])
              for b in (99, 199)]
    lines += [line(1, 99, 5.0, [("RPN_Conf", 0.1), ("Loss_G", 0.05), ("Loss_D", -0.1)])]
    lines += [line(1, b, 5.0, [("RPN_Conf", 0.1), ("Loss_G", NAN), ("Loss_D", NAN)])
              for b in (199, 299)]
    run = parse_lines(lines).runs[0]
    assert len(run.segments) == 1 and run.segments[0].kind == "adversarial"
    assert [(d.metric, d.epoch, d.batch) for d in run.divergences] == [
        ("Loss_G", 1, 199), ("Loss_D", 1, 199)]


# -- damage ----------------------------------------------------------------------------------
def test_corrupted_and_truncated_log_counts_unreadable(published_ssd_log, tmp_path):
    with open(published_ssd_log, "rb") as handle:
        raw = handle.read().split(b"\n")
    raw[10] = raw[10][:70]  # a batch line cut in the middle of a metric name
    raw.insert(20, b"\x00\x00\xff\xfe garbage \x89PNG")
    damaged = b"\n".join(raw[:461])  # ends inside the stage-1 validation block (11 classes)
    path = tmp_path / "damaged.log"
    path.write_bytes(damaged)
    parsed = parse_log(str(path))
    assert parsed.unreadable_count == 3
    reasons = [ex.reason for ex in parsed.unreadable_examples]
    assert reasons[0] == "batch line with unreadable metrics"
    assert reasons[1] == "binary or undecodable bytes"
    assert reasons[2].startswith("validation block truncated at end of file")
    assert "3 unreadable line(s)" in parsed.describe_unreadable()
    assert parsed.run(-1).validations == []
    assert len(parsed.run(-1).batches) == 442 - 1  # all stage-1 batch lines but the cut one
    assert len(parsed.run(-1).epochs) == 1


def test_lines_before_namespace_and_truncated_namespace():
    lines = [fmt.format_ssd_batch(3, 99, 30.0, [("Loss_D", 1.0)]),
             "Namespace(batch_size=64, gpus='0,1', lr_decay_epo"]
    parsed = parse_lines(lines)
    assert [r.header is None for r in parsed.runs] == [True, False]
    assert parsed.runs[1].settings == {"batch_size": 64, "gpus": "0,1"}
    assert parsed.unreadable_count == 1
    assert parsed.unreadable_examples[0].reason.startswith("Namespace line truncated")


def test_empty_and_unknown_lines():
    parsed = parse_lines(["", "hello world", "   "])
    assert parsed.runs == [] and parsed.unreadable_count == 1 and parsed.kind == "unknown"
    with pytest.raises(IndexError, match="has 0 run"):
        parsed.run(-1)


# -- our stage-1 monitors (engine/diagnostics.py) ----------------------------------------------
def _stage1_metrics(cosine, w):
    return ([("Loss_D", -sum(w)), ("Loss_G", 0.5), ("Loss_D_real", 0.25),
             ("Loss_D_fake", 0.25 + sum(w)), ("train_student_ori_net_CrossEntropy", 3.0),
             ("train_student_ori_net_SmoothL1", 1.5), ("cosine_length_loss_metric", cosine)]
            + [("W_%d" % i, v) for i, v in enumerate(w)])


def test_stage1_lines_with_monitors_parse_beside_stage2_lines_without():
    """Stage 1 prints cosine_length_loss_metric and W_0..W_5 after the published columns (as
    the published log prints its cosine column after SmoothL1), on batch and epoch lines;
    stage 2 does not print them. 0 unreadable lines, stages found, not a divergence."""
    w = [0.125, -0.25, 0.5, 0.0, 0.0625, 0.25]
    stage1 = _stage1_metrics(0.643, w)
    stage2 = [("Loss_D", NAN), ("Loss_G", NAN), ("Loss_D_real", NAN), ("Loss_D_fake", NAN),
              ("train_student_ori_net_CrossEntropy", 1.0), ("train_student_ori_net_SmoothL1", 0.5)]
    lines = [fmt.format_namespace({"method": "gan"}), fmt.format_start(1),
             fmt.format_ssd_batch(1, 0, 3.5, stage1), fmt.format_ssd_epoch(1, 3.5, stage1),
             fmt.format_start(1),
             fmt.format_ssd_batch(1, 0, 5.0, stage2), fmt.format_ssd_epoch(1, 5.0, stage2)]
    assert lines[2].endswith("train_student_ori_net_SmoothL1=1.500. cosine_length_loss_metric="
                             "0.643. W_0=0.125. W_1=-0.250. W_2=0.500. W_3=0.000. W_4=0.062. "
                             "W_5=0.250.")
    parsed = parse_lines(lines)
    assert parsed.unreadable_count == 0, parsed.describe_unreadable()
    run = parsed.runs[0]
    names = [n for n, _ in stage1]
    assert list(run.batches[0].metrics) == names and list(run.epochs[0].metrics) == names
    assert run.batches[0].metrics["W_2"] == 0.5
    assert run.batches[0].metrics["cosine_length_loss_metric"] == 0.643
    assert [s.stage for s in run.segments] == [1, 2] and run.divergences == []
    assert run.segments[1].absent == names[6:]


def test_monitors_not_computed_print_nan_and_are_labelled_so():
    """--method none: no teacher, no critics; the monitor columns print nan throughout."""
    metrics = [("Loss_D", NAN), ("Loss_G", NAN), ("Loss_D_real", NAN), ("Loss_D_fake", NAN),
               ("train_student_ori_net_CrossEntropy", 3.0), ("train_student_ori_net_SmoothL1", 1.5),
               ("cosine_length_loss_metric", NAN)] + [("W_%d" % i, NAN) for i in range(6)]
    lines = [fmt.format_namespace({"method": "none"}), fmt.format_start(1),
             fmt.format_ssd_batch(1, 0, 3.5, metrics), fmt.format_ssd_batch(1, 1, 3.5, metrics),
             fmt.format_ssd_epoch(1, 3.5, metrics)]
    parsed = parse_lines(lines)
    assert parsed.unreadable_count == 0
    seg = parsed.runs[0].segments[0]
    assert "cosine_length_loss_metric" in seg.not_computed and "W_5" in seg.not_computed
    assert parsed.runs[0].divergences == []


def test_frcnn_stage1_lines_with_monitors(published_frcnn_log):
    """Faster R-CNN stage 1 appends the same monitors (one critic: W_0) after Loss_D."""
    metrics = [("RPN_Conf", 0.185), ("RPN_SmoothL1", 0.138), ("RCNN_CrossEntropy", 0.5),
               ("RCNN_SmoothL1", 0.25), ("RPNAcc", 0.9), ("RPNL1Loss", 0.1), ("RCNNAcc", 0.8),
               ("RCNNL1Loss", 0.2), ("Loss_G", 0.083), ("Loss_D", -0.149),
               ("cosine_length_loss_metric", 0.75), ("W_0", 0.149)]
    line = fmt.format_frcnn_batch(0, 99, 6.217, metrics)
    assert line.endswith("Loss_G=0.083,Loss_D=-0.149,cosine_length_loss_metric=0.750,W_0=0.149")
    parsed = parse_lines([fmt.format_namespace({"GAN_epochs": 26}), line,
                          fmt.format_frcnn_epoch(0, 647.9, metrics)])
    assert parsed.unreadable_count == 0 and parsed.kind == "frcnn"
    assert list(parsed.runs[0].batches[0].metrics) == [n for n, _ in metrics]
    assert parse_log(published_frcnn_log).unreadable_count == 0


def resumed_ssd_log_lines():
    """A GAN-KD run (stage 1: 4 epochs, stage 2) interrupted after stage-1 epoch 3 and
    resumed from its epoch-2 checkpoint (epoch 3 is trained again, with another mAP), run
    into stage 2, then resumed once more with nothing left to do."""
    nan = float("nan")

    def adversarial(e):
        return [("Loss_D", -1.0 / e), ("Loss_G", 0.5), ("Loss_D_real", 0.2),
                ("Loss_D_fake", 0.7), ("train_student_ori_net_CrossEntropy", 3.0 / e),
                ("train_student_ori_net_SmoothL1", 1.0)]

    def plain(e):
        return [("Loss_D", nan), ("Loss_G", nan), ("Loss_D_real", nan), ("Loss_D_fake", nan),
                ("train_student_ori_net_CrossEntropy", 1.0 / e),
                ("train_student_ori_net_SmoothL1", 0.5)]
    settings = {"gan_epochs": 4, "epochs": 3, "stage": "both", "save_prefix": "run"}
    lines = []
    best = [0.0]

    def epoch(e, metrics, mean_ap):
        lines.append(fmt.format_ssd_batch(e, 9, 10.0, metrics))
        lines.append(fmt.format_ssd_epoch(e, 10.0, metrics))
        lines.append(fmt.format_validation(e, ["a", "b"], [mean_ap, mean_ap], mean_ap))
        best[0] = max(best[0], mean_ap)
        lines.append(fmt.format_best_map(best[0]))
    lines += [fmt.format_namespace(settings), fmt.format_start(1)]
    for e, mean_ap in ((1, 0.1), (2, 0.5), (3, 0.2)):
        epoch(e, adversarial(e), mean_ap)
    best[0] = 0.5                     # the epoch-2 checkpoint's best
    lines += [fmt.format_namespace(dict(settings, resume="run-epoch-s1-e0002.json")),
              fmt.format_resumed("run-epoch-s1-e0002.json", 1, 2), fmt.format_start(3)]
    for e, mean_ap in ((3, 0.3), (4, 0.35)):
        epoch(e, adversarial(e), mean_ap)
    lines.append(fmt.format_start(1))
    epoch(1, plain(1), 0.4)
    lines += [fmt.format_namespace(dict(settings, resume="run-epoch-s2-e0001.json")),
              fmt.format_resumed("run-epoch-s2-e0001.json", 2, 1), fmt.format_start(2)]
    return [piece for line in lines for piece in line.split("\n")]


def test_whole_run_joins_resumed_blocks_by_epoch():
    log = parse_lines(resumed_ssd_log_lines())
    assert len(log.runs) == 3 and not log.runs[-1].validations
    whole = log.whole_run()
    assert whole.blocks == [1, 2, 3]
    # epoch 3 of the first block is replaced by the second block's: no epoch twice
    assert [(v.global_epoch, v.epoch, v.mean_ap) for v in whole.validations] == [
        (1, 1, 0.1), (2, 2, 0.5), (3, 3, 0.3), (4, 4, 0.35), (5, 1, 0.4)]
    assert [e.global_epoch for e in whole.epochs] == [1, 2, 3, 4, 5]
    assert whole.best_validation.mean_ap == 0.5 and whole.best_validation.epoch == 2
    assert whole.logged_best_map == 0.5
    assert [(s.stage, s.first_epoch, s.last_epoch) for s in whole.segments] == [
        (1, 1, 4), (2, 1, 1)]
    # resumed after cumulative epoch 2 (block 2) and after 5 (block 3, which did nothing)
    assert whole.resume_points == [(2, 2), (5, 3)]
    # the blocks themselves are left as parsed
    assert [v.mean_ap for v in log.runs[0].validations] == [0.1, 0.5, 0.2]


def test_a_fresh_start_is_a_new_run_and_published_blocks_stay_blocks():
    lines = resumed_ssd_log_lines()
    # a Namespace line without "Resumed from": a new run, the earlier blocks are not joined
    fresh = lines + [fmt.format_namespace({"gan_epochs": 4, "epochs": 3}), fmt.format_start(1),
                     fmt.format_ssd_batch(1, 9, 10.0, [("train_student_ori_net_CrossEntropy",
                                                        2.0)])]
    whole = parse_lines(fresh).whole_run()
    assert whole.blocks == [4] and not whole.validations and not whole.resume_points


def test_every_event_line_kind_is_read_back_as_its_kind():
    """Each line kind our trainer writes besides batches, epochs and validations is read by its
    own entry of the line table, with its values; none is left unreadable."""
    lines = [fmt.format_namespace({"lr": 0.1}),
             "data: VOC(2007trainval): kept 200 images; nothing skipped",
             fmt.format_resumed("ck-s1-e0002.json", 1, 2),
             fmt.format_start(3),
             fmt.format_lr_change(5, 0.00025, "GAN"),
             fmt.format_frcnn_saving(5, "run_0005_0.3850.params"),
             fmt.format_interrupted("SIGTERM", 5, 19),
             fmt.format_interrupted_saved("ck-s1-e0005.json"),
             fmt.format_stopping("FloatingPointError: Loss_G is nan")]
    log = parse_lines(lines)
    assert log.unreadable_count == 0 and len(log.runs) == 1
    assert [(e.kind, e.epoch, e.value, e.detail) for e in log.runs[0].events] == [
        ("data", None, "VOC(2007trainval): kept 200 images; nothing skipped", ""),
        ("resumed", None, "ck-s1-e0002.json", "stage 1, epoch 2 done"),
        ("start", 3, 3, ""),
        ("lr", 5, 0.00025, "GAN"),
        ("saving", 5, "run_0005_0.3850.params", ""),
        ("interrupted", 5, "SIGTERM", "19"),
        ("saved", None, "ck-s1-e0005.json", ""),
        ("stopped", None, "FloatingPointError: Loss_G is nan", "")]
    assert log.runs[0].start_epoch == 3
    assert log.runs[0].stop_messages == ["FloatingPointError: Loss_G is nan"]
