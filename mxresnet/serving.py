"""Multi Model Server handler of the archives `tools/export.py --format mar` writes.

An archive holds the inference graph and weights (model-symbol.json, model-0000.params),
the checkpoint's preprocessing (model-preprocess.json), the answer's settings (serving.json:
top_k) and the package `mxresnet_serving`: this module as `handler` beside `images`, so
the server's Python needs MXNet, numpy and OpenCV only. MMS calls `handle(None, context)`
once when it loads the model, then `handle(requests, context)` for each batch.

A request's body (or its first form field) is a JPEG or PNG image, preprocessed as
`tools/predict.py` does (`images.preprocess`). The answer is the top-k classes,
`{"top": [{"class": 3, "label": "Dress", "probability": 0.91}, ...]}`, the entries of
`predict.py --json`; query parameter `top_k` asks for another k. A request that is not a
usable image (empty, not an image, truncated, a header claiming too many pixels) is
answered 400 with `{"code": 400, "type": "BadRequest", "message": ...}`; the other
requests of its batch are still answered.
"""
import json
import os

import numpy as np

from .images import ImageError, preprocess

_SERVICE = []   # the Classifier, made by the load-time call


def handle(data, context):
    """MMS's entry point."""
    if not _SERVICE:
        properties = context.system_properties
        _SERVICE.append(Classifier(properties['model_dir'], properties.get('gpu_id')))
    if data is None:
        return None
    return _SERVICE[0].answer(data, context)


class BadRequest(ValueError):
    """A request this handler answers with 400 and the message."""


class Classifier:
    """The archive's model, bound for inference, and its preprocessing."""

    def __init__(self, model_dir, gpu_id=None):
        import mxnet as mx
        with open(os.path.join(model_dir, 'model-preprocess.json')) as f:
            self.preprocess = json.load(f)
        with open(os.path.join(model_dir, 'serving.json')) as f:
            self.top_k = json.load(f)['top_k']
        sym, arg_params, aux_params = mx.model.load_checkpoint(
            os.path.join(model_dir, 'model'), 0)
        self.shape = tuple(self.preprocess['image_shape'])
        classes = sym.infer_shape(data=(1,) + self.shape)[1][0][1]
        self.names = self.preprocess.get('synset') or [str(i) for i in range(classes)]
        ctx = mx.cpu() if gpu_id is None else mx.gpu(int(gpu_id))
        self.module = mx.mod.Module(sym, data_names=('data',), label_names=None, context=ctx)
        self.module.bind([('data', (1,) + self.shape)], for_training=False)
        self.module.set_params(arg_params, aux_params)

    def image(self, request):
        """The preprocessed image of one request, or BadRequest."""
        fields = [value for name, value in request.items() if name != 'top_k']
        body = fields[0] if fields else b''
        if isinstance(body, (dict, list)):
            raise BadRequest('the request body is JSON; send a JPEG or PNG image')
        if isinstance(body, str):
            body = body.encode('utf-8')
        p = self.preprocess
        try:
            return preprocess(bytes(body), self.shape, p['mean'], p['std'], p['resize'])
        except ImageError as error:
            raise BadRequest('the request body cannot be used as an image: %s' % error)

    def requested_k(self, request):
        """The request's `top_k`, else the archive's; BadRequest if it is not a positive
        whole number."""
        value = request.get('top_k')
        if value is None:
            return min(self.top_k, len(self.names))
        text = value.decode('utf-8', 'replace') if isinstance(value, (bytes, bytearray)) \
            else str(value)
        if not text.strip().isdigit() or int(text) < 1:
            raise BadRequest('top_k %r: must be a positive whole number' % text)
        return min(int(text), len(self.names))

    def probabilities(self, arrays):
        """Softmax outputs of a list of (C, H, W) arrays."""
        import mxnet as mx
        batch = np.stack(arrays)
        if self.module.data_shapes[0].shape[0] != len(batch):
            self.module.reshape([('data', batch.shape)])
        self.module.forward(mx.io.DataBatch([mx.nd.array(batch)]), is_train=False)
        return self.module.get_outputs()[0].asnumpy()

    def answer(self, requests, context):
        """One answer per request, in order; 400 for those that are not usable images."""
        answers, usable = [None] * len(requests), []
        for i, request in enumerate(requests):
            try:
                usable.append((i, self.requested_k(request), self.image(request)))
            except BadRequest as error:
                context.set_response_status(400, str(error), i)
                answers[i] = {'code': 400, 'type': 'BadRequest', 'message': str(error)}
        if usable:
            probs = self.probabilities([array for _, _, array in usable])
            for (i, k, _), p in zip(usable, probs):
                answers[i] = {'top': [
                    {'class': int(c), 'label': self.names[c], 'probability': float(p[c])}
                    for c in np.argsort(-p, kind='stable')[:k]]}
        return answers
