"""The training runs behind the scripts, written once for every detector: distillation (GAN-KD
by default, stage 1 and/or stage 2) and plain training.

A run reads its data, decides where it starts (:func:`~.loop.open_run`), builds the networks,
claims its folder, opens its log, builds the loader, the trainers and the :class:`~.loop.Stage`
s, starts every worker from the same weights and hands all of it to :class:`~.loop.Run`. What
differs between detectors is a small *detector part* (:class:`~.ssd_runs.SSDPart`,
:class:`~.frcnn_runs.FasterRCNNPart`), which supplies

- ``key`` (a :data:`~.methods.DETECTORS` key), ``output_terms`` (its table of output-level
  distillation terms for :class:`~.methods.KDObjective`, which
  :func:`~.methods.check_output_terms` checks against :data:`~.methods.TERMS`), ``lines``
  (its log's line kinds, :class:`~gankd_gluon.logs.format.LogLines`), ``val_titles``
  (``(distillation, plain)`` titles of its validation lines) and ``network_settings``
  (the flags that shape the student's weights, named when ``--init-from`` refuses them);
- ``prepare_gankd(args)`` / ``prepare_plain(args)``: defaults that depend on other flags,
  and the checks a caller that skips ``parse_args`` still needs;
- ``load_data(args)`` -> ``(train, val)``;
- ``gankd_name(args, parts)`` / ``plain_name(args)``: the run names;
  ``kind(args, classes, **networks)``: the kind of run every manifest records;
- ``build_gankd(args, classes, ctx, parts)`` -> :class:`Distillation` (teacher, student,
  critics, objective, in the order that fixes their random initialisation);
  ``build_plain(args, classes, ctx)`` -> the network;
- ``train_loader(args, net, ctx, env, train)``: this worker's share of every global batch;
- ``trainable(net)``: the parameters its optimizers update; ``sgd(args)``: its SGD settings;
- ``numbering(args)`` -> ``{stage: StageNumbers}`` for distillation, ``plain_numbering(args)``
  -> :class:`StageNumbers`, and ``convention`` (:func:`~.loop.step_lr`): how its epochs are
  counted and logged;
- ``gan_step(models, trainers, args, norm, numbers)`` -> :class:`~.steps.GANStep` over its
  detector adapter; ``plain_step(net, trainer, args, norm, numbers)``;
- ``gankd_columns(models, parts)``, ``stage2_columns()``, ``plain_columns()``: each stage's
  ``(columns, epoch_columns)``; ``split``: how a loader batch reaches the devices;
- ``teacher_statistics(models, train, args, ctx)``: the critics' frozen input statistics;
- ``validator(net, val, args, ctx)``, ``exporter(net, prefix, args, ctx, what)``,
  ``before_epoch(net, args)``.
"""
import collections
import logging
import os
import sys

import mxnet as mx

from ..data.datasets import summary_lines
from ..logs.format import setup_logger
from ..models.weights import CheckpointError, read_checkpoint
from .checkpoint import load_checkpoint
from ..usage import check_devices
from .distributed import (DistributedSetupError, StepWatchdog, allreduce_sum, make_env,
                          sync_trainers)
from .loop import Run, Stage, StepSchedule, open_run, seed_everything
from .methods import check_output_terms, method_name, parse_method
from .steps import Normalizer

__all__ = ["run_gankd", "run_plain", "Distillation", "StageNumbers", "get_contexts"]

#: How one stage counts its epochs: ``epochs`` to train, ``offset`` added to the loop's
#: epoch (1-based within the stage) in the log lines, errors and the schedule, the schedule's
#: decay factor and its decay epochs (in the logged count, :class:`~.loop.StepSchedule`)
StageNumbers = collections.namedtuple("StageNumbers", "epochs offset decay decay_epochs")


class Distillation:
    """The networks of a distillation run, as a detector part builds them.

    Parameters
    ----------
    student : Block
        The deployable student.
    teacher : Block or None
        Frozen; None when no term needs it (and no monitor).
    dnet : DNet or None
        The critics (``--method`` with ``gan``).
    objective : KDObjective or None
        The distillation terms other than ``gan``.
    blocks : dict of str -> Block
        Everything a checkpoint holds besides the student (adapters, ``kd``, ``dnet``), in
        the order the part gives.
    g_params : ParameterDict
        What the stage-1 student optimizer updates (the student's trainable parameters and
        any adapter's).
    extra : dict
        Whatever else the part's own methods need again (e.g. the SSD layout).
    """

    def __init__(self, student, teacher, dnet, objective, blocks, g_params, **extra):
        self.student = student
        self.teacher = teacher
        self.dnet = dnet
        self.objective = objective
        self.blocks = blocks
        self.g_params = g_params
        self.extra = extra


def get_contexts(args, env=None):
    """Devices from ``--gpus`` / ``--cpu-devices``, with a clear error when a GPU is missing.

    Under Horovod (``env.one_device_per_process``) each process takes one device, as GluonCV's
    ``--horovod``: GPU number ``local_rank`` of ``--gpus`` (``mx.gpu(hvd.local_rank())`` with
    the default list), or ``cpu(local_rank)``.
    """
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()]
    per_process = env is not None and env.one_device_per_process
    if per_process and not gpus:
        if args.cpu_devices > 1:
            raise DistributedSetupError("--horovod runs one device per process; start more "
                                        "processes (horovodrun -np) instead of --cpu-devices %d"
                                        % args.cpu_devices)
        return [mx.cpu(env.local_rank)]
    if per_process:
        if env.local_rank >= len(gpus):
            raise DistributedSetupError("--horovod: local process %d has no GPU in --gpus %s "
                                        "(one GPU per process on each machine)"
                                        % (env.local_rank, args.gpus))
        gpus = [gpus[env.local_rank]]
    if not gpus:
        return [mx.cpu(i) for i in range(max(1, args.cpu_devices))]
    check_devices(args)                  # a GPU the machine lacks: one line, exit 2
    return [mx.gpu(int(g)) for g in gpus]


def _watchdog(args, env):
    return StepWatchdog(args.watchdog_timeout, 5 * args.watchdog_timeout) if env.is_dist else None


def _reducer(env):
    """Sum logged losses over workers (each holds its share of the global-batch loss)."""
    if not env.is_dist:
        return None
    return lambda name, value: allreduce_sum(env, "log:" + name, value)


def _logger(args, env):
    """Rank 0 writes ``<log-dir>/<save-prefix>_train.log``; other workers print only."""
    if env.is_root:
        return setup_logger(os.path.join(args.log_dir, args.save_prefix + "_train.log"))
    logger = logging.getLogger("gankd.rank%d" % env.rank)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[rank %d] %%(message)s" % env.rank))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def _check_init_from(args):
    """Refuse a ``--init-from`` that cannot work, before the models are built."""
    if args.resume:
        raise CheckpointError("--init-from %s: not with --resume %s (resuming restores the "
                              "student, the optimizers and the epoch; use one of the two)"
                              % (args.init_from, args.resume))
    read_checkpoint(args.init_from, ["student"], "--init-from")
    run_dir = os.path.abspath(os.path.join(args.save_dir, args.save_prefix))
    if os.path.dirname(os.path.abspath(args.init_from)) == run_dir:
        raise CheckpointError("--init-from %s: a checkpoint of this run's own folder %s, whose "
                              "best/final/epoch checkpoints this run would replace; give it "
                              "another --save-prefix (e.g. %s_stage%s)"
                              % (args.init_from, run_dir, args.save_prefix, args.stage))


def _init_student(args, student, ctx, env, kind, settings):
    """Load the student's weights (only) from ``--init-from``; says where they came from."""
    state = load_checkpoint(args.init_from, {"student": student}, {}, ctx, flag="--init-from",
                            settings={k: getattr(args, k) for k in settings},
                            kind=kind, kind_keys=["detector", "classes"])
    if env.is_root:
        # the log itself records it as init_from=... in its Namespace line
        print("Student weights from %s (run %s, stage %s, epoch %s); optimizers and epochs "
              "start afresh" % (args.init_from, state.get("args", {}).get("save_prefix", "?"),
                                state.get("stage", "?"), state.get("epoch", "?")),
              file=sys.stderr)


def _schedule(bases, numbers, logger, convention, what=""):
    return StepSchedule(bases, numbers.decay, numbers.decay_epochs, logger, what,
                        offset=numbers.offset, convention=convention)


#: What every run has once its flags are checked (:func:`_start`): the distributed environment,
#: the devices, the step watchdog, the datasets, their class names and the checkpoint prefix
_Started = collections.namedtuple("_Started", "env ctx watchdog train val classes prefix")


def _start(args, part, default_name):
    """The start every run shares, in the order that fixes its random draws: the environment,
    the devices, the watchdog, the seed, then the data; ``--save-prefix`` defaults to
    ``default_name()``."""
    env = make_env(args)
    ctx = get_contexts(args, env)
    watchdog = _watchdog(args, env)
    seed_everything(args.seed)
    train, val = part.load_data(args)
    if not args.save_prefix:
        args.save_prefix = default_name()
    prefix = os.path.join(args.save_dir, args.save_prefix, args.save_prefix)
    return _Started(env, ctx, watchdog, train, val, tuple(train.classes), prefix)


def _fit(args, part, run, logger, loader, blocks, net, what, val_title, start, stages):
    """Train ``stages`` with the loop every run shares (:class:`~.loop.Run`): ``net`` is the
    network validated and exported (as ``what``) after each epoch."""
    loop = Run(args, logger, loader, run.ctx, blocks,
               part.validator(net, run.val, args, run.ctx), run.prefix, args.keep_last,
               before_epoch=part.before_epoch(net, args),
               export=part.exporter(net, run.prefix, args, run.ctx, what),
               val_title=val_title, lines=part.lines, is_root=run.env.is_root,
               watchdog=run.watchdog, reduce=_reducer(run.env), start=start)
    return loop.fit(stages)


def run_gankd(args, part):
    """Distillation training (GAN-KD by default), stage 1 and/or stage 2; returns the best mAP.

    ``--method`` picks the stage-1 terms (:mod:`.methods`); every method shares the teacher,
    student, data, schedule, logs and checkpoints, so runs differ only in distillation. Stage
    1: Adam for the student (``--lrG``, with any adapter and the terms' adaptation layers) and
    the critics (``--lrD``, paper Sec. 4.1), :class:`~.steps.GANStep` over the part's detector
    adapter; stage 2: the detector's plain SGD training of the student. ``--init-from`` (where
    the part has it) starts the student from a checkpoint's weights; a checkpoint that cannot
    serve stops the run before its log or a checkpoint is written.

    Parameters
    ----------
    args : argparse.Namespace
        The flags of the part's distillation script.
    part : SSDPart or FasterRCNNPart
        What differs between detectors (module docstring).

    Returns
    -------
    float
        The best validation mAP (nan if never validated).

    Raises
    ------
    UnweightedTermError
        When :data:`~.methods.TERMS` lists an output-level term for this detector that the
        part's ``output_terms`` lack (:func:`~.methods.check_output_terms`), before anything is
        read or written.
    """
    parts = parse_method(args.method, part.key)
    check_output_terms(part.key, part.output_terms)
    part.prepare_gankd(args)
    run = _start(args, part, lambda: part.gankd_name(args, parts))
    env, ctx, train, val, classes, prefix = \
        run.env, run.ctx, run.train, run.val, run.classes, run.prefix
    init_from = getattr(args, "init_from", "")
    if init_from:
        _check_init_from(args)
    kind = part.kind(args, classes, student=args.student, teacher=args.teacher,
                     method=method_name(parts), stage=args.stage)
    start = open_run(args, prefix, kind, env.is_root, claim=False)   # checks, no writes
    start.notes.extend(summary_lines(train, val))      # the log records what was skipped
    models = part.build_gankd(args, classes, ctx, parts)
    if init_from:
        _init_student(args, models.student, ctx, env, kind, part.network_settings)
    start.claim()                    # the run folder's lock: the first write
    logger = _logger(args, env)      # after the --init-from checks: a refused run writes nothing
    loader = part.train_loader(args, models.student, ctx, env, train)
    norm = Normalizer(env)
    numbers = part.numbering(args)
    student, dnet = models.student, models.dnet

    blocks = {"student": student}
    stages = []
    if args.stage in ("1", "both"):
        blocks.update(models.blocks)
        # paper Sec. 4.1: Adam, lr 0.0005 for both; beta1 0.5 from the published log
        trainers = {"G": env.trainer(models.g_params, "adam",
                                     {"learning_rate": args.lrG, "beta1": args.beta1}, "s1_G")}
        if dnet is not None:
            trainers["D"] = env.trainer(dnet.collect_params(), "adam",
                                        {"learning_rate": args.lrD, "beta1": args.beta1}, "s1_D")
        columns, epoch_columns = part.gankd_columns(models, parts)
        bases = {"G": args.lrG, "D": args.lrD}
        stages.append(Stage(1, numbers[1].epochs,
                            part.gan_step(models, trainers, args, norm, numbers[1]), trainers,
                            _schedule({k: bases[k] for k in trainers}, numbers[1], logger,
                                      part.convention, "GAN"),
                            columns, split=part.split, epoch_offset=numbers[1].offset,
                            epoch_columns=epoch_columns))
    if args.stage in ("2", "both"):
        trainer = env.trainer(part.trainable(student), "sgd", part.sgd(args), "s2_SGD")
        columns, epoch_columns = part.stage2_columns()
        stages.append(Stage(2, numbers[2].epochs,
                            part.plain_step(student, trainer, args, norm, numbers[2]),
                            {"SGD": trainer},
                            _schedule({"SGD": args.lr}, numbers[2], logger, part.convention),
                            columns, split=part.split, epoch_offset=numbers[2].offset,
                            epoch_columns=epoch_columns))

    sync_trainers(env, [tr for st in stages for tr in st.trainers.values()],
                  dict(blocks, teacher=models.teacher) if models.teacher is not None else blocks)
    if dnet is not None and models.teacher is not None:
        # the critics' frozen input standardisation: the same values on every worker (the same
        # images), a resumed run loads them again from its checkpoint. After the broadcast:
        # inference-mode convolutions leave the teacher's weights in oneDNN's layout, which
        # Horovod's broadcast refuses.
        dnet.set_teacher_stats(part.teacher_statistics(models, train, args, ctx[0]))
    return _fit(args, part, run, logger, loader, blocks, student, "student", part.val_titles[0],
                start, stages)


def run_plain(args, part):
    """Plain training of one detector (teachers and the no-distillation rows of the tables),
    with the data, schedule, validation and checkpoints of distillation's stage 2; returns the
    best mAP.

    Parameters
    ----------
    args : argparse.Namespace
        The flags of the part's plain training script (``--network``, ``--optimizer``).
    part : SSDPart or FasterRCNNPart

    Returns
    -------
    float
        The best validation mAP (nan if never validated).
    """
    part.prepare_plain(args)
    run = _start(args, part, lambda: part.plain_name(args))
    env, ctx = run.env, run.ctx
    start = open_run(args, run.prefix, part.kind(args, run.classes, network=args.network),
                     env.is_root)
    start.notes.extend(summary_lines(run.train, run.val))   # the log records what was skipped
    logger = _logger(args, env)
    net = part.build_plain(args, run.classes, ctx)
    loader = part.train_loader(args, net, ctx, env, run.train)
    optimizer = getattr(args, "optimizer", "sgd")
    if optimizer == "sgd":
        opt_args = part.sgd(args)
    else:
        opt_args = {"learning_rate": args.lr, "wd": args.wd}
    trainer = env.trainer(part.trainable(net), optimizer, opt_args, "s2_opt")
    sync_trainers(env, [trainer], {"net": net})
    numbers = part.plain_numbering(args)
    columns, epoch_columns = part.plain_columns()
    stage = Stage(2, numbers.epochs, part.plain_step(net, trainer, args, Normalizer(env), numbers),
                  {"opt": trainer},
                  _schedule({"opt": args.lr}, numbers, logger, part.convention),
                  columns, split=part.split, epoch_offset=numbers.offset,
                  epoch_columns=epoch_columns)
    return _fit(args, part, run, logger, loader, {"net": net}, net, "net", part.val_titles[1],
                start, [stage])
