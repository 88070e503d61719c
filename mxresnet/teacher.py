"""The teacher of knowledge distillation (--teacher PREFIX[:EPOCH], --temperature): any
checkpoint our tools load, run for inference on the student's training batches.

The student's batch is already normalised with the student's mean and std (ImageRecordIter
does it), cropped to the student's input and augmented. The teacher sees that batch mapped
to its own preprocessing by layers in front of its graph: a fixed 1x1 convolution that
undoes the student's normalisation and applies the teacher's (per channel; a gray student
batch is repeated into a colour teacher's three channels, a colour one is turned gray with
OpenCV's weights for a gray teacher), then a bilinear resize to the teacher's input height
and width when they differ. Limits: the teacher sees the student's crop of each image (and
its augmentation, mixup and CutMix included, as in gluon-cv), resized, not the crop its own
preprocessing (`resize` in its metadata, a centre crop) would take from the stored image;
its class order must be the student's.
"""
import mxnet as mx
import numpy as np

from . import checkpoint, graph
from .augment import GRAY_WEIGHTS
from .errors import UsageError


def channel_map(student_channels, teacher_channels):
    """(teacher channels, student channels) matrix from the student's pixels to the
    teacher's; None when the two cannot be mapped."""
    if student_channels == teacher_channels:
        return np.eye(student_channels)
    if (student_channels, teacher_channels) == (1, 3):
        return np.ones((3, 1))
    if (student_channels, teacher_channels) == (3, 1):
        return np.array([GRAY_WEIGHTS])  # as ImageRecordIter reads a colour image gray
    return None


def input_adapter(student_mean, student_std, teacher_mean, teacher_std, mapping):
    """(weight, bias) of the 1x1 convolution that takes a batch normalised as the student's
    to the teacher's normalisation: teacher = (M (student * s_std + s_mean) - t_mean) / t_std
    with M the channel map."""
    s_mean, s_std = np.asarray(student_mean, np.float64), np.asarray(student_std, np.float64)
    t_mean, t_std = np.asarray(teacher_mean, np.float64), np.asarray(teacher_std, np.float64)
    weight = mapping * s_std[None, :] / t_std[:, None]
    bias = (mapping @ s_mean - t_mean) / t_std
    return weight[:, :, None, None].astype(np.float32), bias.astype(np.float32)


class Teacher(object):
    """A checkpoint named by --teacher, checked against the student at construction (no
    NDArray is made: the engine may not be chosen yet); `bind` loads and binds it."""

    def __init__(self, text, student_shape, student_mean, student_std, num_classes,
                 synset=None, temperature=1.0, gpus=()):
        self.prefix, self.epoch = checkpoint.parse_reference(text, '--teacher')
        self.reference = '%s:%d' % (self.prefix, self.epoch)
        self.flag = '--teacher ' + self.reference
        meta = checkpoint.read_metadata(self.prefix)
        if meta is None:
            raise UsageError('%s: the checkpoint has no %s (its preprocessing is unknown)'
                             % (self.flag, checkpoint.paths(self.prefix, 0)['metadata']))
        self.meta = meta
        if meta['num_classes'] != num_classes:
            raise UsageError('%s has %d classes, the student %d' % (
                self.flag, meta['num_classes'], num_classes))
        if synset and meta.get('synset') and list(meta['synset']) != list(synset):
            raise UsageError('%s names other classes, or the same in another order, than '
                             'the student\'s data' % self.flag)
        if gpus:
            checkpoint.refuse_int8(meta, self.flag, 'a teacher on GPUs')
        if (meta.get('options') or {}).get('dtype') == 'float16' and not gpus:
            raise UsageError('%s is a float16 model: it runs on GPUs only (use --gpus)'
                             % self.flag)
        self.mapping = channel_map(student_shape[0], meta['image_shape'][0])
        if self.mapping is None:
            raise UsageError('%s takes %d-channel images, the student %d: only gray and RGB '
                             'map onto each other' % (self.flag, meta['image_shape'][0],
                                                      student_shape[0]))
        self.student_shape = tuple(student_shape)
        self.student_norm = (list(student_mean), list(student_std))
        self.temperature = float(temperature)
        self.module = None

    def symbol(self, model_symbol):
        """The teacher's graph from a batch of the student's (`data`) to its probabilities
        at the temperature; (symbol, the adapter's fixed parameters)."""
        shape = tuple(self.meta['image_shape'])
        weight, bias = input_adapter(self.student_norm[0], self.student_norm[1],
                                     self.meta['mean'], self.meta['std'], self.mapping)
        data = mx.sym.Variable('data')
        params = {}
        square = weight.shape[0] == weight.shape[1]
        if not (square and (weight[:, :, 0, 0] == np.eye(len(weight))).all()
                and not bias.any()):
            data = mx.sym.Convolution(data, num_filter=shape[0], kernel=(1, 1),
                                      name='teacher_input')
            params = {'teacher_input_weight': mx.nd.array(weight),
                      'teacher_input_bias': mx.nd.array(bias)}
        if shape[1:] != self.student_shape[1:]:
            data = mx.sym.contrib.BilinearResize2D(data, height=shape[1], width=shape[2],
                                                   align_corners=False, name='teacher_resize')
        logits = graph.logits(model_symbol)(data=data)
        return mx.sym.softmax(logits, axis=1, temperature=self.temperature,
                              name='teacher_softmax'), params

    def bind(self, batch_size, contexts):
        """Load the weights and bind for batches of `batch_size` of the student's images."""
        model = checkpoint.load_model(self.prefix, self.epoch)
        sym, adapter = self.symbol(model.symbol)
        self.module = mx.mod.Module(sym, data_names=('data',), label_names=None,
                                    context=contexts)
        self.module.bind([('data', (batch_size,) + self.student_shape)], for_training=False)
        self.module.set_params(dict(model.arg_params, **adapter), model.aux_params,
                               allow_missing=False, allow_extra=True)

    def probabilities(self, images):
        """softmax(logits / temperature) of the teacher on a batch of the student's (an
        NDArray), as an NDArray (batch, classes)."""
        self.module.forward(mx.io.DataBatch([images]), is_train=False)
        return self.module.get_outputs()[0]
