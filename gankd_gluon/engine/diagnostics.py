"""Monitoring columns of stage 1, printed after the published ones: never optimised.

Two diagnostics are computed from what the training step already holds (the teacher's maps, the
student's adapted maps and the critics' scores of the last critic step), outside
``autograd.record`` and without a host read, and logged like every loss: one share per device,
divided by the global batch, so that summing over devices and workers (``loop.Run``,
``guards.RunningMean``) gives the global batch mean.

- ``cosine_length_loss_metric`` (:func:`cosine_length_metric`): our reading of the published
  SSD log's undefined extra column;
- ``W_0 .. W_{M-1}`` (:func:`separation_columns`): per-critic separation,
  ``mean D_i(student) - mean D_i(teacher)``.
"""
import mxnet as mx

__all__ = ["COSINE_LENGTH", "critic_column_names", "diagnostic_columns", "cosine_length_distance",
           "cosine_length_metric", "separation_columns"]

#: Column name of the published SSD log's last batch-line column.
COSINE_LENGTH = "cosine_length_loss_metric"


def critic_column_names(num_maps):
    """``['W_0', ..., 'W_{M-1}']``: one separation column per critic (per feature map)."""
    return ["W_%d" % i for i in range(num_maps)]


def diagnostic_columns(num_maps, has_teacher, has_critics):
    """Stage-1 log columns ``(name, step key or None)`` of the two diagnostics.

    ``cosine_length_loss_metric`` first (the published SSD log prints it last, right after the
    published losses), then ``W_0..W_{M-1}``. A diagnostic the step cannot compute (no teacher:
    ``--method none``; no critics: the KD baselines) keeps its columns with key None, so it
    prints ``nan`` as the adversarial columns do: logs of every method then carry the same
    columns in the same order, line up in the comparison report and parse alike, and the parser
    labels them "not computed".
    """
    cols = [(COSINE_LENGTH, COSINE_LENGTH if has_teacher else None)]
    return cols + [(c, c if has_critics else None) for c in critic_column_names(num_maps)]


def cosine_length_distance(student, teacher, eps=1e-6):
    """Per-location disagreement of two maps' channel vectors: direction plus relative length.

    ``d(s, t) = (1 - cos(s, t)) + | |s| - |t| | / max(|t|, eps)``, with ``s``, ``t`` the
    length-C vectors of the student's and the teacher's map at one location. 0 when ``s = t``;
    ``s = 2t`` gives 1 (same direction, length off by 100%); ``s`` orthogonal to ``t`` with the
    same length gives 1; ``s = -t`` gives 2. Where both vectors are zero (|.| <= eps) they agree
    (0); a zero student vector against a non-zero teacher one gives 1 + 1 (no direction, all of
    the length missing); a zero teacher vector makes the length term ``|s| / eps``.

    Parameters
    ----------
    student, teacher : NDArray, each (B, C, H, W)
        The student's adapted map (the teacher's channels) and the teacher's map.
    eps : float
        Floor of the vector lengths in the denominators.

    Returns
    -------
    NDArray (B, H, W)
    """
    dot = mx.nd.sum(student * teacher, axis=1)
    s_len = mx.nd.norm(student, axis=1)
    t_len = mx.nd.norm(teacher, axis=1)
    cos = dot / (mx.nd.maximum(s_len, eps) * mx.nd.maximum(t_len, eps))
    both_zero = (s_len <= eps) * (t_len <= eps)
    direction = (1 - cos) * (1 - both_zero)
    return direction + mx.nd.abs(s_len - t_len) / mx.nd.maximum(t_len, eps)


def cosine_length_metric(student_maps, teacher_maps, n, eps=1e-6):
    """``cosine_length_loss_metric``: feature-map disagreement of student and teacher (monitor).

    The published SSD log (Hong, Yu, Fan, "GAN-Knowledge Distillation for one-stage Object
    Detection", arXiv:1906.08467, 2019; the authors' training log
    ``ssd_512_mobilenet1_0_resnet50_v1_voc_g_d_new_train.log``) prints a column
    ``cosine_length_loss_metric`` on its stage-1 batch lines: 0.643 at the first line, falling
    with the detection loss early (0.52 at epoch 4, 0.42 at 21, 0.37 by 61), drifting up to
    about 0.39 mid-run (epochs 90-180) and ending at 0.374 (epoch 221); the epoch lines and the
    stage-2 lines do not print it. Neither
    the paper nor the log defines it, and it is not part of the objective (Eq. 1 has the
    detection losses and the adversarial term only). **This function is our reading of that
    undefined column**, computed for monitoring only and never added to a loss: the mean over
    the feature maps, and over each map's spatial locations, of
    :func:`cosine_length_distance` ``(1 - cos(s, t)) + | |s| - |t| | / |t|`` between the
    student's adapted and the teacher's channel vectors. It measures how far the student's
    maps are from imitating the teacher's, in direction and in relative length (the two parts
    its name suggests); 0 when the maps are identical. Each map's location mean counts equally,
    whatever its size.

    Parameters
    ----------
    student_maps, teacher_maps : list of NDArray, map i (B, C_i, H_i, W_i)
        One device's maps: the student's after adaptation (detached here) and the teacher's.
    n : float
        Global batch (over devices and workers).
    eps : float
        As :func:`cosine_length_distance`.

    Returns
    -------
    NDArray (1,)
        (sum over this device's samples of the per-sample value) / n: summed over devices and
        workers it is the global batch mean.
    """
    if len(student_maps) != len(teacher_maps) or not student_maps:
        raise ValueError("cosine_length_metric: %d student maps, %d teacher maps"
                         % (len(student_maps), len(teacher_maps)))
    per_sample = None
    for s, t in zip(student_maps, teacher_maps):
        if s.shape != t.shape:
            raise ValueError("cosine_length_metric: student map %s, teacher map %s (the "
                             "student's maps must be adapted to the teacher's channels)"
                             % (s.shape, t.shape))
        m = mx.nd.mean(cosine_length_distance(s.detach(), t.detach(), eps), axis=(1, 2))
        per_sample = m if per_sample is None else per_sample + m
    return (mx.nd.sum(per_sample) / (len(student_maps) * float(n))).reshape((1,))


def separation_columns(separation):
    """Split per-device per-critic separations into the ``W_i`` log entries.

    Parameters
    ----------
    separation : list of NDArray, each (M,)
        Per device, ``(sum_b D(student)[b] - sum_b D(teacher)[b]) / n`` column by column, as
        :meth:`~.steps.GANStep.critic_step` returns it.

    Returns
    -------
    dict of str -> list of NDArray (1,)
        ``{'W_i': [device 0's share, device 1's share, ...]}``; no host read.
    """
    num = separation[0].shape[0]
    return {name: [w.slice_axis(axis=0, begin=i, end=i + 1) for w in separation]
            for i, name in enumerate(critic_column_names(num))}
