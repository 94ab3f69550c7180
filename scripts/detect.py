"""Run a trained detector on your own images: pictures with the boxes drawn, and a JSON file.

MODEL is an export (``<run>-best-student``: the prefix of ``-symbol.json``, ``-0000.params``
and ``-meta.json``, or any of these files) or a training checkpoint manifest
(``<run>-best.json``), SSD or Faster R-CNN. The model's kind, classes and input size come with
it (its ``-meta.json``, or its run's arguments); an export without metadata needs
``--classes`` (and ``--data-shape`` unless it is 512). INPUT is any number of images, folders
(their .jpg/.jpeg/.png/.bmp files) and glob patterns.

Examples::

    python scripts/detect.py checkpoints/<run>/<run>-best-student photos/ --out detections/
    python scripts/detect.py checkpoints/<run>/<run>-best.json 'photos/*.jpg' img.png \\
        --out detections/ --score-thresh 0.3

Output: ``DIR/<image name>.png`` per image (boxes with class name and score, GluonCV's
``plot_bbox``) and ``DIR/detections.json``: ``[{"image": path, "boxes": [[x1, y1, x2, y2],
...], "scores": [...], "classes": [names]}, ...]``, boxes in pixels of the original image,
detections of at least ``--score-thresh``, highest score first. An input that cannot be read is
one ``error:`` line, and the others are still processed (exit status 1 then; 2 when no input
could be read, and nothing is written).
"""
import argparse
import json
import os
import sys

import mxnet as mx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gankd_gluon.data.classes import classes_arg  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Detect objects in images with an exported or checkpointed detector; write "
                    "pictures with the boxes and DIR/detections.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("model", metavar="MODEL",
                        help="export prefix (or its -symbol.json/-0000.params) or checkpoint "
                             "manifest <run>-<tag>.json")
    parser.add_argument("inputs", metavar="INPUT", nargs="+",
                        help="images, folders of images, glob patterns (quoted)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--score-thresh", type=float, default=0.5,
                        help="keep detections with at least this score (GluonCV's plot_bbox "
                             "default)")
    parser.add_argument("--classes", type=classes_arg, default=None, metavar="A,B,C|FILE",
                        help="class names in label order, comma-separated or a file with one "
                             "name per line (as the training scripts' --classes), for an "
                             "export without -meta.json (default: the model's own)")
    parser.add_argument("--data-shape", type=int, default=None,
                        help="SSD input size (default: the model's own)")
    parser.add_argument("--short", type=int, default=None,
                        help="Faster R-CNN input short side (default: the model's own)")
    parser.add_argument("--max-size", type=int, default=None,
                        help="Faster R-CNN input long-side cap (default: the model's own)")
    parser.add_argument("--override-meta", action="store_true",
                        help="accept a --data-shape or --classes other than the model's own")
    parser.add_argument("--no-images", action="store_true",
                        help="write detections.json only, no pictures")
    parser.add_argument("--gpu", type=int, default=None, help="GPU id (default: the CPU)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def _usage(message):
    """Bad arguments or input: one line, exit status 2, nothing written."""
    print("error: %s" % message, file=sys.stderr)
    raise SystemExit(2)


def _classes(args, meta):
    given = list(args.classes) if args.classes else None
    if meta is None:
        if given is None:
            _usage("%s has no -meta.json naming its classes: pass --classes a,b,c (in class-id "
                   "order)" % args.model)
        return given
    return given if given is not None else list(meta["classes"])


def main(args):
    from gankd_gluon.eval.detect import (Detector, draw_detections, expand_inputs, model_source,
                                         output_names, say)
    from gankd_gluon.eval.detector import load_detector, model_meta
    from gankd_gluon.eval.inputs import input_mode
    from tqdm import tqdm
    if not 0.0 <= args.score_thresh <= 1.0:
        _usage("--score-thresh %s: a score is in [0, 1]" % args.score_thresh)
    source = model_source(args.model)
    for flag, value in (("data_shape", args.data_shape), ("short", args.short),
                        ("max_size", args.max_size), ("override_meta", args.override_meta)):
        setattr(source, flag, value)
    meta = model_meta(source)
    classes = _classes(args, meta)
    mode, sizes = input_mode(source, classes,       # refuses sizes/classes not the model's
                             classes_from="--classes names",
                             fix="leave --classes out (the model's are used)")
    paths, errors = expand_inputs(args.inputs)
    for message in errors:
        say("error: %s" % message)
    if not paths:
        raise SystemExit(2)
    ctx = mx.gpu(args.gpu) if args.gpu is not None else mx.cpu()
    net = load_detector(source, [ctx], classes)
    detect = Detector(net, mode, sizes, ctx)
    names = output_names(paths)
    results, failed = [], len(errors)
    bar = tqdm(total=len(paths), unit="img", desc="detecting", disable=args.no_progress,
               leave=False)
    for path, name in zip(paths, names):
        try:
            img = mx.image.imread(path)       # RGB, (H, W, 3) uint8
        except mx.MXNetError:
            bar.write("error: %s: not a readable image (OpenCV cannot decode it)" % path,
                      file=sys.stderr)
            failed += 1
            bar.update(1)
            continue
        except OSError as err:
            bar.write("error: %s: not readable (%s)" % (path, err.strerror or err),
                      file=sys.stderr)
            failed += 1
            bar.update(1)
            continue
        boxes, labels, scores = detect(img)
        keep = scores >= args.score_thresh
        boxes, labels, scores = boxes[keep], labels[keep], scores[keep]
        os.makedirs(args.out, exist_ok=True)
        if not args.no_images:
            draw_detections(os.path.join(args.out, name), img.asnumpy(), boxes, labels, scores,
                            classes)
        results.append({"image": path, "boxes": [[float(v) for v in b] for b in boxes],
                        "scores": [float(s) for s in scores],
                        "classes": [classes[int(c)] for c in labels]})
        bar.update(1)
    bar.close()
    if not results:
        _usage("none of the %d inputs could be read; nothing written" % len(paths))
    out = os.path.join(args.out, "detections.json")
    tmp = out + ".tmp-%d" % os.getpid()
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, out)
    say("%d images, %d detections of score >= %g: %s" % (
        len(results), sum(len(r["boxes"]) for r in results), args.score_thresh, out))
    if failed:
        say("error: %d input(s) could not be read (above)" % failed)
        raise SystemExit(1)
    return results


if __name__ == "__main__":
    from gankd_gluon.engine.cli import run_main
    sys.exit(run_main(main, parse_args()))
