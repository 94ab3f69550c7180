"""The settings every command of a table row's chain spells out (:mod:`.chains`): the paper's
recipe, the published logs' where the paper gives none, GluonCV's for the baselines and the
teachers the model zoo lacks, and the ``smoke`` scale (the generated dataset on the CPU).

Every training command spells out the paper's settings, rather than relying on the scripts'
defaults, so ``reproduce.py --dry-run`` shows the recipe and a change of a default cannot change
a reproduction silently. ``Row.settings`` lists what sets a row apart from the others (student,
teacher, dataset, RoI mode, method, and the baselines' schedule, where the scripts' defaults are
the distillation's).

Sources: Hong, Yu, Fan, "GAN-Knowledge Distillation for one-stage Object Detection",
arXiv:1906.08467, 2019, https://arxiv.org/abs/1906.08467 (Sec. 4.1); the authors' two training
logs (:mod:`gankd_gluon.logs.published`); GluonCV 0.10.5's ``scripts/detection`` recipes,
https://github.com/dmlc/gluon-cv.
"""

__all__ = ["PAPER_SSD_GANKD", "GLUONCV_SSD_PLAIN", "ZOO_SSD_TEACHERS", "SMOKE", "SMOKE_OVERRIDES",
           "FRCNN_GANKD", "FRCNN_PLAIN", "FRCNN_TEACHER", "FRCNN_SMOKE_SIZES",
           "FRCNN_SMOKE_OVERRIDES", "FRCNN_SMOKE_DISTILL", "zoo_teacher"]

# Paper sec. 4.1: "All models used adam with 0.0005 learning rate in the first phase and SGD with
# 0.0005 weight decay and 0.9 momentum in the second phase. The first stage trains epochs is 180
# and the second stage epochs is 90." Two GTX 1080 Ti (sec. 4). The stage-2 lr (0.001, GluonCV's
# SSD default), beta1 0.5 and the clamps are the published log's; the paper gives no batch size:
# 32 is GluonCV's SSD default and, over two GPUs, the published log's 16 per GPU (64 on 4 GPUs).
# Stage 2 has no lr decay in the paper (the published log's '80,100' belonged to its 340-epoch run).
PAPER_SSD_GANKD = [
    ("--method", "gan"), ("--head", "teacher"), ("--stage", "both"),
    ("--data-shape", "512"), ("--batch-size", "32"),
    ("--gan-epochs", "180"), ("--lrG", "0.0005"), ("--lrD", "0.0005"), ("--beta1", "0.5"),
    ("--clamp-lower", "-0.03"), ("--clamp-upper", "0.03"),
    ("--epochs", "90"), ("--lr", "0.001"), ("--momentum", "0.9"), ("--wd", "0.0005"),
    ("--lr-decay-epoch", ""), ("--seed", "233"),
]
# The "-" rows and the teachers the zoo lacks: GluonCV's train_ssd.py recipe (its defaults:
# SGD lr 0.001, momentum 0.9, wd 0.0005, batch 32, 240 epochs, decay x0.1 after 160 and 200).
# The paper gives no schedule for its baselines; its MobileNetV1 numbers (75.4 VOC, 21.7 COCO)
# are the GluonCV model zoo's ssd_512_mobilenet1.0_{voc,coco}, trained with this recipe.
GLUONCV_SSD_PLAIN = [
    ("--optimizer", "sgd"), ("--data-shape", "512"), ("--batch-size", "32"),
    ("--epochs", "240"), ("--lr", "0.001"), ("--momentum", "0.9"), ("--wd", "0.0005"),
    ("--lr-decay", "0.1"), ("--lr-decay-epoch", "160,200"), ("--seed", "233"),
]

# Trained SSD512 teachers in GluonCV's model zoo (gluoncv 0.10.5
# gluoncv/model_zoo/model_store.py, the ssd_512_* entries); train_ssd_gan_kd.py
# downloads them when --teacher-params is not given.
ZOO_SSD_TEACHERS = {("vgg16_atrous", "voc"), ("resnet50_v1", "voc"), ("resnet101_v2", "voc"),
                    ("resnet50_v1", "coco")}

# --scale smoke: the same chain on the generated dataset, on the CPU, with nothing downloaded.
# 4 training images in one batch of 4 (2 per CPU context): 1 iteration per epoch and stage
# (Faster R-CNN: 2, batch 2), which exercises every step, checkpoint and resume as well as more
# would; each further iteration of a VGG16 row at 320 px costs about 10 s on 2 CPU cores.
SMOKE = {
    "num_train": 4, "num_test": 4, "seed": 0,
    "data_shape": 128,
    # the VGG16-atrous SSD's last extra layer has a 4x4 kernel: 320 is its smallest input
    # (models/ssd.py teacher_layout)
    "data_shape_vgg": 320,
    "batch_size": 4, "epochs": 1, "gan_epochs": 1,
    # two CPU contexts stand in for the two GPUs: the batch is split the same way
    "cpu_devices": 2,
    # the critics' width (the paper's D-Net: 128): the same layers and code at a width that
    # the 4 images cannot train anyway; at 128 the critics and their Adam state are 200 MB of
    # every SSD checkpoint, and a Table 1 distillation step took 21 s instead of 12.5 s
    "critic_channels": 16,
}
# --keep-last 1: the newest epoch checkpoint is all a resume needs; 24 rows of full-size nets
# otherwise keep GBs of older ones on the test machine's disk
SMOKE_OVERRIDES = [("--num-workers", "0"), ("--augment", "flip"), ("--pretrained-base", "none"),
                   ("--log-interval", "1"), ("--lr-decay-epoch", ""), ("--keep-last", "1")]

# Faster R-CNN (Table 3). Distillation: the published Faster R-CNN log's Namespace
# (gankd_gluon/logs/published.py names the file), which
# train_faster_rcnn_gan_kd.py takes as its defaults; epochs count from 0 over both stages (0..26
# adversarial, 27..37 plain). Batch 4 as in the log (there 1 per GPU on 4 GPUs; here 2 per GPU
# on the paper's two), so its lr 0.0001 applies unchanged.
FRCNN_GANKD = [
    ("--stage", "both"), ("--batch-size", "4"), ("--gan-epochs", "26"), ("--epochs", "38"),
    ("--lrG", "0.0005"), ("--lrD", "0.0005"), ("--beta1", "0.5"),
    ("--lr-decay-gan-epoch", "5,20"), ("--train-D-eopch", "2"),
    ("--clamp-lower", "-0.03"), ("--clamp-upper", "0.03"),
    ("--lr", "0.0001"), ("--momentum", "0.9"), ("--wd", "0.0005"), ("--lr-decay", "0.1"),
    ("--lr-decay-epoch", "32,36"), ("--seed", "233"),
]
# The '-' rows: the same data and schedule as the distillation's stage 2, plain SGD
# (train_faster_rcnn.py's defaults), so the rows differ only in the distillation.
FRCNN_PLAIN = [
    ("--optimizer", "sgd"), ("--batch-size", "4"), ("--epochs", "38"), ("--lr", "0.0001"),
    ("--momentum", "0.9"), ("--wd", "0.0005"), ("--lr-decay", "0.1"),
    ("--lr-decay-epoch", "32,36"), ("--seed", "233"),
]
# The teacher (74.8 in Table 3's caption, VOC2007 trainval only; the zoo's
# faster_rcnn_resnet101_v1d_voc is trained on VOC07+12, so it is trained here): GluonCV's
# train_faster_rcnn.py VOC recipe (20 epochs, SGD lr 0.001, decay x0.1 at epochs 14 and 20,
# wd 5e-4); the paper gives none.
FRCNN_TEACHER = [
    ("--optimizer", "sgd"), ("--batch-size", "4"), ("--epochs", "20"), ("--lr", "0.001"),
    ("--momentum", "0.9"), ("--wd", "0.0005"), ("--lr-decay", "0.1"),
    ("--lr-decay-epoch", "14,20"), ("--seed", "233"),
]
# --scale smoke for Faster R-CNN: the tiny sizes of tests/test_frcnn_train.py (96 px, 8 RoIs),
# one epoch per stage (epoch 0 adversarial, epoch 1 plain), no critic warm-up.
FRCNN_SMOKE_SIZES = [
    ("--short", "96"), ("--max-size", "96"), ("--num-sample", "8"), ("--roi-size", "7"),
    ("--rpn-train-pre-nms", "256"), ("--rpn-train-post-nms", "64"),
    ("--rpn-test-pre-nms", "128"), ("--rpn-test-post-nms", "8")]
FRCNN_SMOKE_OVERRIDES = [
    ("--epochs", "1"), ("--batch-size", "2"), ("--num-workers", "0"),
    ("--pretrained-base", "none"), ("--log-interval", "1"), ("--lr-decay-epoch", ""),
    ("--keep-last", "1")]
FRCNN_SMOKE_DISTILL = [("--gan-epochs", "0"), ("--epochs", "2"), ("--train-D-eopch", "0"),
                       ("--lr-decay-gan-epoch", ""),
                       ("--critic-channels", str(SMOKE["critic_channels"]))]


def zoo_teacher(row):
    """True when GluonCV's model zoo holds a trained teacher for the row (downloaded)."""
    if row.detector == "ssd":
        return (row.teacher, row.dataset) in ZOO_SSD_TEACHERS
    # faster_rcnn_resnet101_v1d_voc is trained on VOC07+12; Table 3's teacher on VOC07 only
    return False
