"""Faster R-CNN steps: GluonCV's losses exactly, the GAN step's semantics (teacher untouched,
critic clipped, student trained, warm-up without the adversarial term)."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from gankd_gluon.data.datasets import get_dataset
from gankd_gluon.data.loaders import get_frcnn_train_loader
from gankd_gluon.engine.frcnn_steps import FasterRCNNAdapter, FasterRCNNLosses, split_sharded
from gankd_gluon.engine.steps import GANStep
from gankd_gluon.models.critics import DNet
from gankd_gluon.models.faster_rcnn import MapAdapter, set_hybrid

from frcnn_fixtures import make_data, tiny_frcnn

CTX = [mx.cpu()]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("frcnn_steps")
    make_data(root, num_train=2, num_test=1)
    dataset = get_dataset("synthetic", str(root), "train")
    classes = tuple(dataset.classes)

    def build(backbone="resnet50_v1b"):
        net = tiny_frcnn(backbone, classes, seed=1, ctx=CTX[0], target_generator=True)
        net.collect_params().setattr("grad_req", "null")
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net.collect_train_params().setattr("grad_req", "write")
        return net
    student = build()
    init = str(root / "student.params")
    student.save_parameters(init)
    teacher = build("resnet101_v1d")
    teacher.collect_params().setattr("grad_req", "null")
    loader = get_frcnn_train_loader(dataset, student, 1, 1, 96, 96)
    batch = split_sharded(next(iter(loader)), CTX)
    yield {"build": build, "init": init, "teacher": teacher, "batch": batch}
    import shutil
    shutil.rmtree(str(root), ignore_errors=True)      # the student file is 130 MB


def _fresh_student(setup):
    net = setup["build"]()
    net.load_parameters(setup["init"], ctx=CTX)
    return net


def _seed():
    mx.random.seed(7)
    np.random.seed(7)


def test_losses_are_gluoncv_forward_backward_task(setup):
    """Our four losses equal ForwardBackwardTask's metrics (data_parallel.py) on one batch."""
    from gluoncv.model_zoo.rcnn.faster_rcnn.data_parallel import ForwardBackwardTask
    net = _fresh_student(setup)
    set_hybrid(net, "off")
    data, label, cls_t, box_t, mask = [e[0] for e in setup["batch"]]
    task = ForwardBackwardTask(net, None, gluon.loss.SigmoidBinaryCrossEntropyLoss(
        from_sigmoid=False), gluon.loss.HuberLoss(rho=1 / 9.), gluon.loss.SoftmaxCrossEntropyLoss(),
        gluon.loss.HuberLoss(), 1.0, False)
    _seed()
    theirs = task.forward_backward((data, label, cls_t, box_t, mask))[:4]
    _seed()
    with mx.autograd.record():
        out = net(data, label[:, :, :4], label[:, :, 4:5])
        ours = FasterRCNNLosses()(out, cls_t, box_t, mask)
    for key, value in zip(("rpn_cls", "rpn_box", "rcnn_cls", "rcnn_box"), theirs):
        np.testing.assert_allclose(ours[key].mean().asscalar(), value.asscalar(), rtol=1e-5)


def _gan_step(setup, student, dnet, warmup=0):
    adapter = MapAdapter(1024, 1024)
    trainer_g = gluon.Trainer(student.collect_train_params(), "adam",
                              {"learning_rate": 0.0005, "beta1": 0.5})
    trainer_d = None
    if dnet is not None:
        trainer_d = gluon.Trainer(dnet.collect_params(), "adam",
                                  {"learning_rate": 0.0005, "beta1": 0.5})
    return GANStep(FasterRCNNAdapter(setup["teacher"], student, adapter), dnet, trainer_g,
                   trainer_d, warmup_epochs=warmup)


def _dnet():
    mx.random.seed(3)
    dnet = DNet([6], base_channels=8, norm="none")     # the Faster R-CNN default
    dnet.initialize(ctx=CTX)
    return dnet


def _train_params(net):
    """Trained parameters by structural name (stable across builds in one process)."""
    return {k: v.data().asnumpy().copy() for k, v in net._collect_params_with_prefix().items()
            if v.grad_req != "null"}


def test_gan_step_trains_student_and_critic_not_teacher(setup):
    student, dnet = _fresh_student(setup), _dnet()
    teacher_before = {k: v.data().asnumpy().copy()
                      for k, v in setup["teacher"].collect_params().items()}
    frozen = [k for k, v in student.collect_params().items() if v.grad_req == "null"
              and v._data is not None]
    frozen_before = {k: student.collect_params()[k].data().asnumpy().copy() for k in frozen}
    trained_before = _train_params(student)
    step = _gan_step(setup, student, dnet)
    log = step(*setup["batch"], epoch=1, batch=0)
    for key in ("RPN_Conf", "RPN_SmoothL1", "RCNN_CrossEntropy", "RCNN_SmoothL1", "RPNAcc",
                "Loss_G", "Loss_D"):
        assert np.isfinite(sum(v.asscalar() if hasattr(v, "asscalar") else float(v)
                               for v in log[key])), key
    # the monitors (engine/diagnostics.py): one critic, so W_0 = -Loss_D
    assert log["W_0"][0].asscalar() == pytest.approx(-log["Loss_D"][0].asscalar(), rel=1e-5)
    assert log["cosine_length_loss_metric"][0].asscalar() > 0
    for k, v in setup["teacher"].collect_params().items():
        np.testing.assert_array_equal(v.data().asnumpy(), teacher_before[k], err_msg=k)
    for k in frozen:
        np.testing.assert_array_equal(student.collect_params()[k].data().asnumpy(),
                                      frozen_before[k], err_msg=k)
    after = _train_params(student)
    assert any(not np.array_equal(after[k], trained_before[k]) for k in after)
    for p in dnet.collect_params().values():
        if p.grad_req != "null":                                     # not moving statistics
            assert np.abs(p.data().asnumpy()).max() <= 0.03 + 1e-7  # WGAN clipping


def test_warmup_student_update_has_no_adversarial_term(setup):
    """During train_D_eopch the critic learns but the student gets exactly the update of a
    step without critic; after it, the adversarial term changes the student's update."""
    def run(dnet, epoch, warmup):
        student = _fresh_student(setup)
        step = _gan_step(setup, student, dnet, warmup)
        _seed()
        log = step(*setup["batch"], epoch=epoch, batch=0)
        return _train_params(student), log
    plain, _ = run(None, 1, 0)
    warm, log = run(_dnet(), 1, 1)
    assert np.isfinite(log["Loss_G"][0].asscalar())            # measured for the log
    for k in plain:
        np.testing.assert_array_equal(warm[k], plain[k], err_msg=k)
    adversarial, _ = run(_dnet(), 2, 1)
    assert any(not np.array_equal(adversarial[k], plain[k]) for k in plain)
