"""Cost of the exported detectors: the teacher, a plain student, and the distilled student as
trained (adapters + a head on the teacher's channels) and as exported (adapters folded into the
head, ``gankd_gluon.models.ssd.fold_adapters``). Not a test.

For each network, exported exactly as the training scripts export it (``export_detector``,
inference mode, random weights: cost does not depend on them):

- parameters: scalars in the exported ``-0000.params``, the anchor constants left out;
- GMAC: multiply-accumulates of every ``Convolution`` and ``FullyConnected`` node of the
  exported ``-symbol.json`` at batch 1, from the shapes MXNet infers (output elements x input
  channels per group x kernel area); no weights needed. BatchNorm, activations, box decoding and
  NMS are not counted;
- CPU latency at batch 1: median of ``--iters`` calls of the imported ``SymbolBlock`` after
  ``--warmup`` untimed ones, each bracketed by ``mx.nd.waitall()``.

    python benchmarks/cost_table.py            # resnet50_v1 teacher, mobilenet1.0 student, VOC
    python benchmarks/cost_table.py --sizes 512 --iters 3 --json /tmp/cost.json
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from gankd_gluon.models.ssd import (build_ssd, build_student, export_detector,  # noqa: E402
                                    feature_channels, fold_adapters, initialize_new_params,
                                    teacher_layout)

VOC = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
       "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
       "train", "tvmonitor")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--teacher", default="resnet50_v1")
    parser.add_argument("--student", default="mobilenet1.0")
    parser.add_argument("--sizes", default="128,512", help="input sizes, comma-separated")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--json", default=None, help="also write the table as JSON here")
    return parser.parse_args(argv)


def symbol_macs(symbol_file, data_shape):
    """MACs of the Convolution and FullyConnected nodes of an exported symbol at batch 1.

    Parameters
    ----------
    symbol_file : str
        ``<prefix>-symbol.json``.
    data_shape : int
        Square input size; the input is ``data`` (1, 3, S, S).

    Returns
    -------
    int
    """
    sym = mx.sym.load(symbol_file)
    internals = sym.get_internals()
    _, out_shapes, _ = internals.infer_shape(data=(1, 3, data_shape, data_shape))
    shapes = dict(zip(internals.list_outputs(), out_shapes))
    arg_shapes = dict(zip(internals.list_arguments(),
                          internals.infer_shape(data=(1, 3, data_shape, data_shape))[0]))
    total = 0
    nodes = json.loads(sym.tojson())["nodes"]
    for node in nodes:
        if node["op"] not in ("Convolution", "FullyConnected"):
            continue
        out = shapes[node["name"] + "_output"]
        weight = arg_shapes[nodes[node["inputs"][1][0]]["name"]]     # inputs: data, weight[, bias]
        total += int(np.prod(out)) * int(np.prod(weight[1:]))
    return total


def exported_params(params_file):
    """Scalars in an export's ``.params``, the SSD anchor constants left out."""
    return sum(int(v.size) for k, v in mx.nd.load(params_file).items()
               if "anchorgenerator" not in k)


def latency(prefix, data_shape, warmup, iters):
    """Median seconds of one batch-1 forward of the imported export."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        net = gluon.SymbolBlock.imports(prefix + "-symbol.json", ["data"],
                                        prefix + "-0000.params")
    x = mx.nd.random.uniform(shape=(1, 3, data_shape, data_shape))
    times = []
    for i in range(warmup + iters):
        mx.nd.waitall()
        tic = time.time()
        out = net(x)
        for o in out:
            o.wait_to_read()
        if i >= warmup:
            times.append(time.time() - tic)
    return statistics.median(times)


def build(teacher, student, data_shape):
    """The four networks at ``data_shape``: teacher, plain student, distilled (unfolded and
    folded); random weights."""
    layout = teacher_layout(teacher, data_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        t_net = build_ssd(teacher, layout, VOC)
        initialize_new_params(t_net, mx.cpu())
        with autograd.train_mode():
            t_net(mx.nd.zeros((1, 3, data_shape, data_shape)))
        plain = build_ssd(student, layout, VOC)
        initialize_new_params(plain, mx.cpu())
        with autograd.train_mode():
            plain(mx.nd.zeros((1, 3, data_shape, data_shape)))
        t_ch = feature_channels(t_net.features, data_shape, layout.num_maps)
        distilled = build_student(student, t_net, t_ch, layout, VOC, head="teacher",
                                  pretrained_base=False)
        folded = fold_adapters(distilled)
    return [("teacher %s" % teacher, t_net), ("plain student %s" % student, plain),
            ("distilled %s, as trained (adapters)" % student, distilled),
            ("distilled %s, exported (folded)" % student, folded)]


def main(args):
    rows = []
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            for i, (name, net) in enumerate(build(args.teacher, args.student, size)):
                prefix = os.path.join(tmp, "net%d_%d" % (i, size))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    export_detector(net, prefix, size)
                rows.append({"network": name, "size": size,
                             "params_M": exported_params(prefix + "-0000.params") / 1e6,
                             "gmac": symbol_macs(prefix + "-symbol.json", size) / 1e9,
                             "latency_ms": 1000 * latency(prefix, size, args.warmup,
                                                          args.iters)})
                print("%-45s %4d px  %7.3f M params  %6.3f GMAC  %8.1f ms" % (
                    name, size, rows[-1]["params_M"], rows[-1]["gmac"],
                    rows[-1]["latency_ms"]), file=sys.stderr)
    print("| network | input | parameters (M) | GMAC | CPU latency, batch 1 (ms) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| %s | %d | %.3f | %.3f | %.1f |" % (r["network"], r["size"], r["params_M"],
                                                    r["gmac"], r["latency_ms"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main(parse_args())
