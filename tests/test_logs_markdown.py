"""The text of the log reports (gankd_gluon/logs/markdown.py): each template filled from the
numbers, checked line by line on small hand-made logs."""
from gankd_gluon.logs import format as fmt
from gankd_gluon.logs.markdown import gate_message, summarize_log
from gankd_gluon.logs.numbers import map_drop_gate
from gankd_gluon.logs.parse import parse_lines

NAN = float("nan")


def _frcnn_lines(diverge):
    lines = [fmt.format_namespace({"save_prefix": "faster_rcnn_x"})]
    for epoch in (0, 1):
        for batch in (99, 199):
            bad = diverge and (epoch, batch) == (1, 199)
            lines.append(fmt.format_frcnn_batch(epoch, batch, 5.0, [
                ("RPN_Conf", 0.1), ("Loss_G", NAN if bad else 0.05)]))
        lines.append(fmt.format_validation(epoch, ["a", "b"], [0.5, 0.25], 0.375 + epoch / 8,
                                           title="Validation"))
    return [piece for line in lines for piece in line.split("\n")]


def test_summary_of_a_log_line_by_line():
    """Two header-only runs share one row, a run that trained gets its row and stage table,
    and the stage notes say that nothing diverged."""
    lines = ([fmt.format_namespace({"save_prefix": "faster_rcnn_x"})] * 2 + _frcnn_lines(False)
             + ["not a log line"])
    text = summarize_log(parse_lines(lines, source="/tmp/x/frcnn.log"), title="T")
    assert text.splitlines()[:12] == [
        "## T",
        "",
        "- file: `frcnn.log`, detector: Faster R-CNN, 16 lines, 1 unreadable",
        "- runs (`Namespace` lines): 3; validation blocks: 2 (2 in run 3)",
        "- unreadable line 16 (unknown line kind): `not a log line`",
        "",
        "| run | line | epochs (per segment) | batch lines | validations | final mAP "
        "| best mAP (max) | best stated by log |",
        "|---|---|---|---|---|---|---|---|",
        "| 1-2 | 1-2 | header only (restarted before the first batch line) | 0 | 0 | - | - | - |",
        "| 3 | 3 | 0-1 | 4 | 2 | 0.50000 | 0.50000 at epoch 1 (stage 1) | - |",
        "",
        "### Stages of run 3"]
    assert text.endswith("\n\n- divergences: none (no metric turns nan/inf after finite values "
                         "within a stage)\n")


def test_a_divergence_is_noted_with_its_line_epoch_and_batch():
    text = summarize_log(parse_lines(_frcnn_lines(True)))
    assert text.endswith("\n\n- **DIVERGENCE**: Loss_G turned nan at line 9 (epoch 1, batch 199, "
                         "stage 1) after finite values\n")
    assert "divergences: none" not in text


def test_gate_messages():
    run = parse_lines(_frcnn_lines(False)).runs[0]
    empty = parse_lines([fmt.format_namespace({"a": 1})]).runs[0]
    labels = ("pub", "ours")
    assert gate_message(map_drop_gate(run, run, True, 0.0), labels, 0.0) == (
        "PASS --max-map-drop 0.0000: ours best mAP 0.50000, pub best 0.50000, drop 0.00000")
    assert gate_message(map_drop_gate(run, empty, True, 0.1), labels, 0.1) == (
        "FAIL --max-map-drop: ours has no validation yet")
    assert gate_message(map_drop_gate(empty, run, True, 0.1), labels, 0.1) == (
        "FAIL --max-map-drop: pub has no validation to compare against")
    assert gate_message(map_drop_gate(run, run, False, 0.1), labels, 0.1) == (
        "FAIL --max-map-drop: the logs are not comparable")
