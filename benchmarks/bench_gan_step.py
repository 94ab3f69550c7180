"""Benchmark of the GAN-KD stage-1 iteration. Not a test.

Measures, on one machine in one run:

(a) one stage-1 iteration (:class:`~gankd_gluon.engine.steps.GANStep`) against the sum of its
    parts timed separately: teacher forward, student forward+backward+update as in a plain
    student step with the same head (no adversarial term), and the critic step (D-Net forward on
    teacher and detached student maps, backward, Adam update, weight clipping). Target: within
    1.10x, i.e. no work is done twice (the teacher and the student's maps run once);
(b) the stage-1 iteration against a plain student SSD step (:class:`SSDStep` on the network
    ``train_ssd.py --network <student>`` builds, Adam as the demo's baseline);
(c) the stage-1 / stage-2 time ratio (stage 2 = ``SSDStep`` on the deployable student with
    SGD, as ``run_gankd`` builds it) beside the published SSD ratio 1.63 (57 vs 35 samples/s on
    4x 1080 Ti, the published log's ``Speed`` lines), per step and through the real DataLoader;
(d) the share of iteration time spent waiting for data through the real DataLoader with
    worker processes (target below 5%), for stage 1 and stage 2;
(e) peak memory: ``resource.getrusage`` maxrss of this process and of its (finished) children.

Every timed region is bracketed by ``mx.nd.waitall()``; each figure is the median of ``--iters``
repetitions after ``--warmup`` untimed ones (which also trace the hybridized graphs). Weights are
random (timing does not depend on them): the teacher is a freshly initialised SSD saved to a
temporary file and loaded through ``--teacher-params`` exactly as a trained one would be.

    python benchmarks/bench_gan_step.py                    # about 2 minutes on 2 CPU cores
    python benchmarks/bench_gan_step.py --data-shape 512 --batch-size 8 --student mobilenet1.0 \\
        --teacher resnet50_v1 --iters 10 --gpus 0
"""
import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import mxnet as mx  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402

from gankd_gluon.experiments.scripts import load_script  # noqa: E402
from gankd_gluon.data.datasets import dataset_classes, get_dataset  # noqa: E402
from gankd_gluon.data.loaders import get_ssd_train_loader  # noqa: E402
from gankd_gluon.engine.diagnostics import cosine_length_metric  # noqa: E402
from gankd_gluon.engine.loop import seed_everything  # noqa: E402
from gankd_gluon.engine.ssd_runs import build_gankd_models, get_contexts  # noqa: E402
from gankd_gluon.engine.ssd_runs import SSD_CRITIC_NORM  # noqa: E402
from gankd_gluon.models.critics import NORMS  # noqa: E402
from gankd_gluon.engine.steps import (GANStep, SSDAdapter, SSDStep, _no_weight_grads,  # noqa: E402
                                      split_batch)
from gankd_gluon.models.ssd import (build_ssd, initialize_new_params, split_ssd,  # noqa: E402
                                    teacher_layout)

PUBLISHED_STAGE_RATIO = 57.0 / 35.0    # published SSD log: stage 2 ~57 samples/s, stage 1 ~35


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-shape", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--student", type=str, default="mobilenet0.25")
    p.add_argument("--teacher", type=str, default="mobilenet1.0")
    p.add_argument("--head", choices=("teacher", "student"), default="teacher")
    p.add_argument("--critic-channels", type=int, default=128)
    p.add_argument("--critic-norm", choices=NORMS, default=SSD_CRITIC_NORM)
    p.add_argument("--critic-balance-interval", type=int, default=50,
                   help="as train_ssd_gan_kd.py; the timed stage-1 iterations count batches "
                        "from 1, so balancing runs once per this many of them")
    p.add_argument("--d-steps", type=int, default=1)
    p.add_argument("--iters", type=int, default=15, help="timed repetitions per measurement")
    p.add_argument("--warmup", type=int, default=3, help="untimed repetitions first")
    p.add_argument("--loader-iters", type=int, default=30,
                   help="iterations through the real DataLoader per stage for (d)")
    p.add_argument("--num-workers", type=int, default=2, help="DataLoader workers for (d)")
    p.add_argument("--augment", choices=("default", "flip"), default="flip")
    p.add_argument("--dataset-root", type=str,
                   default=os.path.join(tempfile.gettempdir(), "gankd_bench_synthetic"),
                   help="synthetic dataset; generated (300 train images, seed 0) if missing")
    p.add_argument("--gpus", type=str, default="")
    p.add_argument("--json", type=str, default="", help="also write the figures here")
    return p.parse_args(argv)


def timed(fn, iters, warmup):
    """Median and all wall times (s) of ``fn()``, each bracketed by ``mx.nd.waitall()``."""
    for _ in range(warmup):
        fn()
        mx.nd.waitall()
    times = []
    for _ in range(iters):
        mx.nd.waitall()
        tic = time.perf_counter()
        fn()
        mx.nd.waitall()
        times.append(time.perf_counter() - tic)
    return statistics.median(times), times


def _live_children_hwm_kb():
    """Peak RSS (VmHWM, KiB) of each live child process (the DataLoader's workers): getrusage's
    RUSAGE_CHILDREN only counts children that have already exited."""
    me, out = str(os.getpid()), []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/status" % pid) as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == me and "VmHWM" in fields:
            out.append(int(fields["VmHWM"].split()[0]))
    return out


def maxrss_mb():
    """(this process's maxrss, largest peak RSS among live or finished children), MiB."""
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss      # KiB on Linux
    child_kb = max([resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]
                   + _live_children_hwm_kb())
    return self_kb / 1024.0, child_kb / 1024.0


def ensure_dataset(root):
    if not os.path.isfile(os.path.join(root, "VOCdevkit", "VOC2007", "ImageSets", "Main",
                                       "test.txt")):
        from gankd_gluon.data.synthetic import make_synthetic_voc
        make_synthetic_voc(root, seed=0, num_train=300, num_test=100)


def random_teacher_file(args, classes, path):
    """A freshly initialised teacher SSD saved where ``--teacher-params`` can read it."""
    layout = teacher_layout(args.teacher, args.data_shape, "voc")
    net = build_ssd(args.teacher, layout, classes, pretrained_base=False)
    initialize_new_params(net, mx.cpu())
    with autograd.train_mode():
        net(mx.nd.zeros((1, 3, args.data_shape, args.data_shape)))
    net.save_parameters(path)


def main(args):
    from gluoncv.loss import SSDMultiBoxLoss
    seed_everything(0)
    ensure_dataset(args.dataset_root)
    tmp = tempfile.mkdtemp(prefix="gankd_bench_")
    classes = dataset_classes("synthetic")
    teacher_file = os.path.join(tmp, "teacher.params")
    random_teacher_file(args, classes, teacher_file)

    kd_argv = ["--student", args.student, "--teacher", args.teacher, "--teacher-params",
               teacher_file, "--dataset", "synthetic", "--dataset-root", args.dataset_root,
               "--gpus", args.gpus, "--data-shape", str(args.data_shape), "--batch-size",
               str(args.batch_size), "--pretrained-base", "none", "--augment", args.augment,
               "--num-workers", str(args.num_workers), "--head", args.head,
               "--critic-channels", str(args.critic_channels), "--critic-norm", args.critic_norm,
               "--critic-balance-interval", str(args.critic_balance_interval),
               "--d-steps", str(args.d_steps)]
    kd = load_script("train_ssd_gan_kd.py").parse_args(kd_argv)
    ctx = get_contexts(kd)
    rss = {}

    # ---------------- models, exactly as run_gankd builds them ----------------
    teacher, student, dnet, layout = build_gankd_models(kd, classes, ctx)
    s_features, s_head = split_ssd(student)
    for b in (teacher.features, s_features, s_head, dnet):
        b.hybridize()
    det_loss = SSDMultiBoxLoss()
    trainer_g = gluon.Trainer(student.collect_params(), "adam",
                              {"learning_rate": kd.lrG, "beta1": kd.beta1},
                              update_on_kvstore=False)
    trainer_d = gluon.Trainer(dnet.collect_params(), "adam",
                              {"learning_rate": kd.lrD, "beta1": kd.beta1},
                              update_on_kvstore=False)
    student.hybridize()     # as run_gankd's before_epoch hook: stage 2 calls the whole SSD
    gan_step = GANStep(SSDAdapter(teacher.features, s_features, s_head, det_loss), dnet,
                       trainer_g, trainer_d, clamp=(kd.clamp_lower, kd.clamp_upper),
                       d_steps=kd.d_steps, balance_interval=kd.critic_balance_interval)
    trainer_s2 = gluon.Trainer(student.collect_params(), "sgd",
                               {"learning_rate": kd.lr, "wd": kd.wd, "momentum": kd.momentum},
                               update_on_kvstore=False)
    stage2_step = SSDStep(student, trainer_s2, det_loss)

    # the plain student of train_ssd.py (the baseline row), Adam as in the demo
    plain_args = load_script("train_ssd.py").parse_args(
        ["--network", args.student, "--data-shape", str(args.data_shape), "--optimizer", "adam",
         "--lr", "0.001", "--gpus", args.gpus])
    plain = build_ssd(args.student, teacher_layout(args.student, args.data_shape, "voc"), classes,
                      pretrained_base=False)
    initialize_new_params(plain, ctx[0])
    with autograd.train_mode():
        anchors = student(mx.nd.zeros((1, 3, args.data_shape, args.data_shape), ctx=ctx[0]))[2]
        plain(mx.nd.zeros((1, 3, args.data_shape, args.data_shape), ctx=ctx[0]))
    plain.collect_params().reset_ctx(ctx)
    plain.hybridize()
    plain_step = SSDStep(plain, gluon.Trainer(plain.collect_params(), "adam",
                                              {"learning_rate": plain_args.lr,
                                               "wd": plain_args.wd},
                                              update_on_kvstore=False), det_loss)

    train_set = get_dataset("synthetic", args.dataset_root, "train")
    loader = get_ssd_train_loader(train_set, anchors.as_in_context(mx.cpu()), args.data_shape,
                                  args.batch_size, num_workers=args.num_workers,
                                  augment=args.augment)
    # one fixed batch for (a)-(c): no data loading inside those timings
    batch = next(iter(loader))
    data, cls_t, box_t = split_batch(batch, ctx)
    mx.nd.waitall()
    rss["after build"] = maxrss_mb()

    # ---------------- (a) the stage-1 iteration and its parts ----------------
    n = float(sum(x.shape[0] for x in data))

    def teacher_forward():
        return [teacher.features(x) for x in data]

    # GANStep without critics and teacher: exactly its student step with the same head and
    # no adversarial term (the code path --method none runs)
    student_only = GANStep(SSDAdapter(None, s_features, s_head, det_loss), None, trainer_g, None)

    def student_plain_step():
        student_only(data, cls_t, box_t)

    t_maps = teacher_forward()
    with autograd.record():
        s_maps_graph = [s_features(x) for x in data]     # critic_step detaches them itself
    with autograd.predict_mode():
        s_maps_fixed = [[m.detach() for m in s_features(x)] for x in data]

    def critic_step():
        # GANStep.critic_step itself (d_steps critic updates + clipping), on maps computed
        # beforehand
        gan_step.critic_step(t_maps, s_maps_graph, n, 0, 0)

    def generator_critic_pass():
        # what the student step adds to a plain student step: the D-Net forward on the
        # student's maps and the backward through it to those maps (timed on leaf copies)
        leaves = [[m.copy() for m in sm] for sm in s_maps_fixed]
        for sm in leaves:
            for m in sm:
                m.attach_grad()
        with autograd.record():
            # GANStep.adversarial_scores: the default critics also score the teacher's maps
            # again (no graph) to put both sides in the critic's current units
            adv = [d.sum() / n for d in gan_step.adversarial_scores(t_maps, leaves)]
        autograd.backward(adv)

    def generator_critic_pass_no_weight_grads():
        # as GANStep's student step runs it: the critics' weights at grad_req 'null' (their
        # gradients are not needed there: trainer_d does not step in the student step)
        with _no_weight_grads(gan_step._critic_weights):   # pylint: disable=protected-access
            generator_critic_pass()

    def monitors():
        # what GANStep computes per batch for the log only: cosine_length_loss_metric
        # (the W_i separations come out of the critic step's scores at no extra cost)
        for sm, tm in zip(s_maps_fixed, t_maps):
            cosine_length_metric(sm, tm, n)

    counter = {"batch": 0}

    def gan_iteration():
        # batch numbers from 1: the critic balancing (every --critic-balance-interval batches
        # and at an epoch's first) lands in the timed calls at its training frequency
        counter["batch"] += 1
        gan_step(data, cls_t, box_t, batch=counter["batch"])

    def critic_balancing():
        # what one balancing costs (GANStep.balance_critics on a recorded student pass)
        if gan_step.balance_interval:
            with autograd.record():
                maps = s_features(data[0])
            gan_step.balance_critics([maps])

    def stage2_iteration():
        stage2_step(data, cls_t, box_t)

    def plain_iteration():
        plain_step(data, cls_t, box_t)

    # interleave the measurements in rounds so that load from other processes on the machine
    # hits all of them alike; each round is one timed call of each
    measures = [("stage-1 iteration (GANStep)", gan_iteration),
                ("teacher forward", teacher_forward),
                ("student step, same head, no adversarial term", student_plain_step),
                ("critic step (x d_steps)", critic_step),
                ("[extra] student step's pass through the critics (as GANStep)",
                 generator_critic_pass_no_weight_grads),
                ("[extra] the same computing critic weight gradients", generator_critic_pass),
                ("[extra] the per-batch monitor (cosine_length_loss_metric)", monitors),
                ("[extra] one critic balancing (student pass + one backward per critic)",
                 critic_balancing),
                ("stage-2 iteration (SSDStep, deployable student, SGD)", stage2_iteration),
                ("plain student step (train_ssd.py net, Adam)", plain_iteration)]
    for _, fn in measures:
        for _ in range(args.warmup):
            fn()
            mx.nd.waitall()
    # stage 2 re-traces the hybridized student in train mode; GANStep uses the split blocks
    times = {name: [] for name, _ in measures}
    cpu = {name: [] for name, _ in measures}
    for _ in range(args.iters):
        for name, fn in measures:
            mx.nd.waitall()
            tic, ctic = time.perf_counter(), time.process_time()
            fn()
            mx.nd.waitall()
            times[name].append(time.perf_counter() - tic)
            cpu[name].append(time.process_time() - ctic)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    rss["after step timings"] = maxrss_mb()

    gan = med["stage-1 iteration (GANStep)"]
    parts = (med["teacher forward"] + med["student step, same head, no adversarial term"]
             + med["critic step (x d_steps)"])
    gen = med["[extra] student step's pass through the critics (as GANStep)"]
    gen_w = med["[extra] the same computing critic weight gradients"]
    s2 = med["stage-2 iteration (SSDStep, deployable student, SGD)"]
    bal = med["[extra] one critic balancing (student pass + one backward per critic)"]
    bal_per_iter = bal / args.critic_balance_interval if args.critic_balance_interval else 0.0
    plain_t = med["plain student step (train_ssd.py net, Adam)"]
    mon = med["[extra] the per-batch monitor (cosine_length_loss_metric)"]

    # ---------------- (d) the real DataLoader with workers ----------------
    def through_loader(step, iters):
        """Wait for data vs step time over ``iters`` iterations of the loader (epochs restart
        as in training; the first ``warmup`` iterations are not counted)."""
        it = iter(loader)
        wait = work = 0.0
        counted = 0
        for i in range(iters + args.warmup):
            mx.nd.waitall()
            tic = time.perf_counter()
            try:
                b = next(it)
            except StopIteration:
                it = iter(loader)
                b = next(it)
            d, c, bt = split_batch(b, ctx)
            mx.nd.waitall()
            mid = time.perf_counter()
            step(d, c, bt, epoch=0, batch=i)
            mx.nd.waitall()
            end = time.perf_counter()
            if i >= args.warmup:
                wait += mid - tic
                work += end - mid
                counted += 1
        return wait, work, counted

    w1, s1, c1 = through_loader(gan_step, args.loader_iters)
    w2, s2l, c2 = through_loader(stage2_step, args.loader_iters)
    rss["after loader runs"] = maxrss_mb()

    # ---------------- report ----------------
    out = {
        "settings": {"data_shape": args.data_shape, "batch_size": args.batch_size,
                     "student": args.student, "teacher": args.teacher, "head": args.head,
                     "critic_channels": args.critic_channels, "critic_norm": args.critic_norm,
                     "d_steps": args.d_steps,
                     "iters": args.iters, "warmup": args.warmup, "num_workers": args.num_workers,
                     "augment": args.augment, "loader_iters": args.loader_iters,
                     "ctx": [str(c) for c in ctx], "mxnet": mx.__version__,
                     "cpu_count": os.cpu_count(),
                     "loadavg_at_end": os.getloadavg()},
        "median_s": med, "median_cpu_s": med_cpu,
        "a_gan_over_parts": gan / parts,
        "a_gan_minus_parts_s": gan - parts,
        "a_gan_over_parts_with_generator_pass": gan / (parts + gen),
        "a_critic_weight_grads_skipped_s": gen_w - gen,
        "a_balancing_per_iteration_s": bal_per_iter,
        "a_monitor_s": mon,
        "a_gan_over_parts_with_generator_pass_and_monitor": gan / (parts + gen + mon),
        "a_gan_with_balancing_over_parts_with_generator_pass": (gan + bal_per_iter) / (parts + gen),
        "b_gan_over_plain_student": gan / plain_t,
        "c_stage1_over_stage2_step": gan / s2,
        "c_stage1_over_stage2_with_loader": ((w1 + s1) / c1) / ((w2 + s2l) / c2),
        "c_published": PUBLISHED_STAGE_RATIO,
        "d_wait_share_stage1": w1 / (w1 + s1),
        "d_wait_share_stage2": w2 / (w2 + s2l),
        "d_wait_ms_per_iter_stage1": 1000 * w1 / c1,
        "d_wait_ms_per_iter_stage2": 1000 * w2 / c2,
        "e_maxrss_mb": {k: {"self": v[0], "children": v[1]} for k, v in rss.items()},
    }
    print("settings: %s" % json.dumps(out["settings"]))
    print("\nmedian of %d, s (wall; process CPU time in brackets):" % args.iters)
    for name, _ in measures:
        print("  %-55s %7.4f  (%.4f)" % (name, med[name], med_cpu[name]))
    print("\n(a) stage-1 iteration / sum of parts      %.3f  (%.4f s vs %.4f s; target <= 1.10)"
          % (gan / parts, gan, parts))
    print("    with the student step's pass through the critics as a 4th part: %.3f "
          "(%.4f s); GANStep skips the critic weight gradients of that pass, which would cost "
          "%.4f s more" % (gan / (parts + gen), parts + gen, gen_w - gen))
    print("    with the critic balancing amortised (%.4f s every %d iterations, %.4f s per "
          "iteration; the median iteration rarely contains one): %.3f"
          % (bal, args.critic_balance_interval, bal_per_iter, (gan + bal_per_iter) / (parts + gen)))
    print("    with the per-batch monitor (cosine_length_loss_metric, %.4f s) as a 5th part: %.3f"
          % (mon, gan / (parts + gen + mon)))
    print("(b) stage-1 iteration / plain student step %.3f" % (gan / plain_t))
    print("(c) stage-1 / stage-2 time ratio           %.3f per step, %.3f through the loader "
          "(published SSD512, 4x 1080 Ti: %.2f)" % (gan / s2, out["c_stage1_over_stage2_with_loader"],
                                                    PUBLISHED_STAGE_RATIO))
    print("(d) waiting for data (%d workers, %s)      stage 1 %.1f%% (%.1f ms/iter), "
          "stage 2 %.1f%% (%.1f ms/iter); target < 5%%"
          % (args.num_workers, args.augment, 100 * out["d_wait_share_stage1"],
             out["d_wait_ms_per_iter_stage1"], 100 * out["d_wait_share_stage2"],
             out["d_wait_ms_per_iter_stage2"]))
    print("(e) peak memory (maxrss, MiB):")
    for k, (s, c) in rss.items():
        print("      %-22s self %7.1f   largest child %7.1f" % (k, s, c))
    print("load average at the end: %.2f %.2f %.2f" % os.getloadavg())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main(parse_args())
