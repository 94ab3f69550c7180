"""Benchmark of a checkpoint save (:func:`gankd_gluon.engine.checkpoint.save_checkpoint`). Not a
test.

Measures, on a GluonCV model-zoo network in its full size (random weights: the time depends on
the bytes, not their values) with an Adam trainer (stage 1: two states per weight) and an SGD
trainer with momentum (stage 2: one), on one CPU context:

(a) a stage-1 save: the weights and both trainers' states written, fsynced, read back,
    verified and hashed;
(b) a stage-2 save after an SGD step, the Adam trainer resting: with ``reuse`` naming the
    stage-1 save's file of its states (what the training loop passes), and the same save
    with ``reuse`` empty (every part written again, as every save did before ``reuse``);
(c) verifying a states file read back from disk: unpickling it (``pickle.load``, what the
    save did before) against walking its opcodes to the STOP at its end (what it does now).

Each figure is the median of ``--repeats`` rounds, the variants interleaved round by round so
that load from other processes hits them alike. Prints a table and, with ``--json``, writes it.

    python benchmarks/save_cost.py                                    # about 15 s
    python benchmarks/save_cost.py --network faster_rcnn_resnet50_v1b_voc --data-shape 256 \
        --repeats 3                                                   # about 45 s
"""
import argparse
import json
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import mxnet as mx  # noqa: E402
from gluoncv import model_zoo  # noqa: E402
from mxnet import gluon  # noqa: E402

from gankd_gluon.engine.checkpoint import _verify_states, save_checkpoint  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--network", default="ssd_512_mobilenet1.0_voc",
                   help="a GluonCV model-zoo name (built with random weights)")
    p.add_argument("--data-shape", type=int, default=512, help="input side for the first pass")
    p.add_argument("--repeats", type=_positive, default=5)
    p.add_argument("--dir", default=None, help="where to write (default: a temporary folder)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.network not in model_zoo.get_model_list():
        p.error("--network %s: not a GluonCV model-zoo name (gluoncv.model_zoo.get_model_list())"
                % args.network)
    return args


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _network(name, side):
    net = model_zoo.get_model(name, pretrained=False, pretrained_base=False)
    net.initialize()
    net(mx.nd.zeros((1, 3, side, side)))       # the deferred shapes
    return net


def _step(trainer, params):
    """One update with a gradient of 1e-3 everywhere (set by hand and marked fresh, as a
    backward pass would: the optimizer's states exist after it, in their full size)."""
    for p in params:
        for g in p.list_grad():
            g[:] = 1e-3
        for d in p.list_data():
            d._fresh_grad = True
    trainer.step(1)


def _unpickle(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def _timed(fn):
    tic = time.perf_counter()
    fn()
    return time.perf_counter() - tic


def main(argv=None):
    args = parse_args(argv)
    net = _network(args.network, args.data_shape)
    params = [p for p in net.collect_params().values() if p.grad_req != "null"]
    adam = gluon.Trainer(params, "adam", {"learning_rate": 5e-4, "beta1": 0.5})
    sgd = gluon.Trainer(params, "sgd", {"learning_rate": 1e-3, "momentum": 0.9, "wd": 5e-4})
    _step(adam, params)
    _step(sgd, params)
    root = args.dir or tempfile.mkdtemp(prefix="save_cost_")
    os.makedirs(root, exist_ok=True)
    blocks, trainers = {"student": net}, {"s1_G": adam, "s2_SGD": sgd}
    times = {"a": [], "b_reuse": [], "b_write": [], "c_loads": [], "c_walk": []}
    sizes = {}
    try:
        for r in range(args.repeats):
            folder = os.path.join(root, "round%d" % r)
            prefix = os.path.join(folder, "run")
            times["a"].append(_timed(lambda: save_checkpoint(prefix, "epoch-s1-e0001", blocks,
                                                             trainers, {})))
            first = os.path.join(folder, "run-epoch-s1-e0001.json")
            manifest = json.load(open(first))
            sizes = {k: manifest["sizes"][k] for k in manifest["sizes"]}
            states = os.path.join(folder, manifest["parts"]["trainer:s1_G"])
            _step(sgd, params)                                  # stage 2 trains: new weights
            for variant in (("b_reuse", "b_write") if r % 2 else ("b_write", "b_reuse")):
                tag = "epoch-s2-e%04d" % (len(times[variant]) + 1) + variant[1:]
                reuse = {"trainer:s1_G": first} if variant == "b_reuse" else {}
                # (both write the weights and the SGD states; they differ in the Adam states)
                times[variant].append(_timed(lambda: save_checkpoint(
                    prefix, tag, blocks, trainers, {}, reuse=reuse)))
            for variant in (("c_loads", "c_walk") if r % 2 else ("c_walk", "c_loads")):
                fn = (lambda: _unpickle(states)) if variant == "c_loads" else \
                    (lambda: _verify_states(states))
                times[variant].append(_timed(fn))
            shutil.rmtree(folder)
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [
        ("(a) stage-1 save: weights, Adam and SGD states written", med["a"]),
        ("(b) stage-2 save, the resting Adam states named again (reuse)", med["b_reuse"]),
        ("(b) the same save, reuse empty: every part written again", med["b_write"]),
        ("(c) verify the Adam states read back: pickle.load", med["c_loads"]),
        ("(c) verify the Adam states read back: opcode walk to STOP", med["c_walk"]),
    ]
    print("%s, %s; part sizes (MB): %s" % (
        args.network, mx.__version__,
        ", ".join("%s %.1f" % (k, v / 1e6) for k, v in sorted(sizes.items()))))
    print("| measurement | median (s) |\n|---|---|")
    for name, value in rows:
        print("| %s | %.3f |" % (name, value))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"network": args.network, "repeats": args.repeats, "sizes": sizes,
                       "median_s": med, "times_s": times}, f, indent=1)


if __name__ == "__main__":
    main()
