"""Training arguments and the training loop: `mx.mod.Module` over RecordIO iterators.

Flags keep the names and meaning of MXNet's example `fit.py`. The loop is Module's
own `fit` unrolled, so that it can checkpoint atomically (optimizer state included),
resume mid-schedule exactly, stop on non-finite values and save on Ctrl-C.
"""
import hashlib
import json
import logging
import math
import os
import signal
import time
import warnings

import mxnet as mx
import numpy as np

from . import UsageError, checkpoint, use_naive_engine
from .data import (SyntheticDataIter, count_records, default_idx, normalisation, random_erasing,
                   record_iter)

KVSTORES = ('local', 'device', 'nccl', 'dist_sync', 'dist_device_sync', 'dist_async')
LR_SCHEDULES = ('step', 'cosine', 'poly')
INITIALIZERS = ('default', 'xavier', 'msra', 'uniform', 'normal')
RESIDUAL_SUMS = ('add_n', 'elemwise_add')
GLOBAL_POOLS = ('mean', 'pooling')


def training_graph(symbol, residual_sum='add_n', global_pool='mean'):
    """The graph the executor trains: `symbol` with up to two rewrites, each computing the
    same function under the same node names, parameters and user attributes; only the
    operators' CPU kernels differ (README, "Training speed on the CPU"):

    - residual_sum='add_n': each `elemwise_add` (the residual sums) is computed by `add_n`,
      which hands its output gradient to both inputs as is, where elemwise_add's backward
      copies it into two new arrays, a reorder each with MKLDNN layouts.
    - global_pool='mean': each global average `Pooling` is computed by `mean` over the
      spatial axes (kept as 1x1). MXNet 1.9.1's CPU backward of that pooling is slow, and the
      gradient it returns sends the BatchNorm below onto a slow path too (the pre-activation
      ResNet-20 at 32x32, batch 128: 36 ms and 67 ms of a 360 ms step, against under 1 ms
      each with `mean`; the post-activation resnet-v1 does not hit it).

    'elemwise_add' and 'pooling' keep the graph as built. Checkpoints keep `symbol`, so saved
    graphs stay the reference ones.
    """
    graph = json.loads(symbol.tojson())
    changed = False
    for node in graph['nodes']:
        attrs = node.get('attrs', {})
        if residual_sum == 'add_n' and node['op'] == 'elemwise_add':
            node['op'] = 'add_n'
            node['attrs'] = dict(attrs, num_args='2')
            changed = True
        elif global_pool == 'mean' and node['op'] == 'Pooling' \
                and attrs.get('global_pool') == 'True' and attrs.get('pool_type') == 'avg':
            node['op'] = 'mean'
            user = {k: v for k, v in attrs.items() if k.startswith('__')}
            node['attrs'] = dict(user, axis='(2, 3)', keepdims='True')
            changed = True
    return mx.sym.load_json(json.dumps(graph)) if changed else symbol


def add_fit_args(parser):
    train = parser.add_argument_group('Training', 'model and optimisation')
    train.add_argument('--network', type=str, help='network name (see symbols.list_networks())')
    train.add_argument('--num-layers', type=int, help='depth of the network')
    train.add_argument('--gpus', type=str, default='',
                       help='GPUs to use, e.g. "0,1"; empty means the CPU')
    train.add_argument('--kv-store', type=str, default='device',
                       help='key-value store: %s' % ', '.join(KVSTORES))
    train.add_argument('--num-epochs', type=int, help='epochs to train')
    train.add_argument('--lr', type=float, help='initial learning rate (for --batch-size; '
                       'scale it linearly with the batch size)')
    train.add_argument('--lr-factor', type=float, help='step schedule: factor per step')
    train.add_argument('--lr-step-epochs', type=str, help='step schedule: epochs to step at')
    train.add_argument('--lr-schedule', choices=LR_SCHEDULES, help='learning-rate schedule')
    train.add_argument('--warmup-epochs', type=int, help='linear warm-up epochs')
    train.add_argument('--optimizer', type=str, default='sgd', help='optimizer type')
    train.add_argument('--mom', type=float, help='momentum for sgd')
    train.add_argument('--wd', type=float, help='weight decay')
    train.add_argument('--initializer', default='default', choices=INITIALIZERS,
                       help='weight initializer (default: MSRA-style Xavier, magnitude 2)')
    train.add_argument('--batch-size', type=int,
                       help='total batch size over all devices (and workers)')
    train.add_argument('--disp-batches', type=int, default=20, help='progress every N batches')
    train.add_argument('--model-prefix', type=str,
                       help='checkpoint prefix (default: runs/<network>-<layers>/model)')
    train.add_argument('--save-period', type=int, default=1, help='checkpoint every N epochs')
    train.add_argument('--load-epoch', type=int, help='resume from checkpoint N')
    train.add_argument('--top-k', type=int, default=0, help='also report top-k accuracy')
    train.add_argument('--dtype', choices=('float32', 'float16'), default='float32',
                       help='float16: float16 graph, multi-precision optimizer')
    train.add_argument('--loss-scale', type=float, default=1.0,
                       help='static loss scale (useful with float16)')
    train.add_argument('--label-smoothing', type=float, default=0.0,
                       help='label smoothing alpha')
    train.add_argument('--residual-sum', choices=RESIDUAL_SUMS, default='add_n',
                       help='operator the executor computes the graph\'s two-input sums with '
                            '(see training_graph); saved graphs keep elemwise_add')
    train.add_argument('--global-pool', choices=GLOBAL_POOLS, default='mean',
                       help='operator the executor computes the global average pooling with '
                            '(see training_graph); saved graphs keep Pooling')
    train.add_argument('--monitor', type=int, default=0,
                       help='log the statistics of every array every N batches')
    train.add_argument('--test-io', type=int, default=0, help='1: only read the data')
    train.add_argument('--seed', type=int, default=0, help='seed of init, shuffle and aug')
    train.add_argument('--log-file', type=str,
                       help='JSON-lines log (default: <model-prefix>-log.jsonl; none '
                            'with an empty prefix)')
    return train


def parse_gpus(text):
    """'0,1' -> [0, 1]; '' -> []; UsageError for anything else or absent GPUs."""
    text = (text or '').strip()
    if not text:
        return []
    try:
        gpus = [int(g) for g in text.split(',')]
    except ValueError:
        raise UsageError('--gpus %r: expected GPU numbers such as "0" or "0,1"' % text)
    available = mx.context.num_gpus()
    missing = [g for g in gpus if g < 0 or g >= available]
    if missing:
        raise UsageError('--gpus %s: %s (leave --gpus empty to train on the CPU)' % (
            text, 'this machine has no GPU' if available == 0 else
            'this machine has GPUs 0..%d' % (available - 1)))
    return gpus


def contexts(gpus):
    return [mx.gpu(g) for g in gpus] if gpus else [mx.cpu()]


def create_kvstore(name):
    """The KVStore for --kv-store: None for single-process stores (Module makes its own)."""
    if name not in KVSTORES:
        raise UsageError('--kv-store %r: choose one of %s' % (name, ', '.join(KVSTORES)))
    if not name.startswith('dist'):
        return None
    if 'DMLC_ROLE' not in os.environ:
        raise UsageError('--kv-store %s needs a scheduler and servers: start it with '
                         'python tools/launch.py -n WORKERS -s SERVERS python train_resnet.py ...'
                         % name)
    if '_sync' in name:
        # Workers apply the summed gradients themselves, so rank 0 holds the optimizer
        # state and can checkpoint it; every worker ends an update with equal parameters.
        os.environ['MXNET_UPDATE_ON_KVSTORE'] = '0'
    return mx.kv.create(name)


def lr_scheduler(args, epoch_size):
    """The schedule over update counts, with optional linear warm-up."""
    warmup = dict(warmup_steps=args.warmup_epochs * epoch_size, warmup_begin_lr=0.0,
                  warmup_mode='linear')
    total = args.num_epochs * epoch_size
    if args.lr_schedule == 'cosine':
        return mx.lr_scheduler.CosineScheduler(max_update=max(total, 1), base_lr=args.lr,
                                               final_lr=0.0, **warmup)
    if args.lr_schedule == 'poly':
        return mx.lr_scheduler.PolyScheduler(max_update=max(total, 1), base_lr=args.lr, pwr=2,
                                             **warmup)
    try:
        epochs = [int(e) for e in args.lr_step_epochs.split(',') if e.strip()]
    except ValueError:
        raise UsageError('--lr-step-epochs %r: expected epochs such as "30,60"'
                         % args.lr_step_epochs)
    steps = [epoch_size * e for e in epochs if 0 < e < args.num_epochs]
    if not steps:
        return None if args.warmup_epochs == 0 else mx.lr_scheduler.PolyScheduler(
            max_update=max(total, 1), base_lr=args.lr, pwr=0, **warmup)
    return mx.lr_scheduler.MultiFactorScheduler(step=steps, factor=args.lr_factor,
                                                base_lr=args.lr, **warmup)


def initializer(name):
    if name == 'default':
        return mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2)
    return {'xavier': mx.init.Xavier(), 'msra': mx.init.MSRAPrelu(),
            'uniform': mx.init.Uniform(), 'normal': mx.init.Normal()}[name]


def make_metrics(top_k):
    metrics = [mx.metric.Accuracy(), mx.metric.CrossEntropy()]
    if top_k > 1:
        metrics.append(mx.metric.TopKAccuracy(top_k=top_k))
    return mx.metric.CompositeEvalMetric(metrics)


def metric_values(metric):
    """{'top1': .., 'loss': .., 'topk': ..} from the composite metric."""
    names = {'accuracy': 'top1', 'cross-entropy': 'loss'}
    values = {}
    for name, value in zip(*metric.get()):
        values[names.get(name, 'topk' if name.startswith('top_k') else name)] = float(value)
    return values


def format_metrics(values):
    return ' '.join('%s=%.4f' % (k, v) for k, v in sorted(values.items()))


def format_seconds(seconds):
    seconds = int(max(seconds, 0))
    return '%d:%02d:%02d' % (seconds // 3600, seconds // 60 % 60, seconds % 60)


class NonFinite(Exception):
    """A NaN or infinity in the loss or the parameters."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, acted on at the next batch boundary, after a checkpoint of that state."""


class JsonLog(object):
    """One JSON object per line, appended and flushed as training goes."""

    def __init__(self, path):
        self.path = path
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(self, **record):
        if self.path:
            with open(self.path, 'a') as f:
                f.write(json.dumps(record, sort_keys=True) + '\n')


def params_finite(module):
    """True when every parameter is finite (one reduction per device array)."""
    arg_params = module._exec_group.param_arrays  # pylint: disable=protected-access
    total = sum(float(mx.nd.sum(mx.nd.abs(arr[0])).asscalar()) for arr in arg_params)
    return math.isfinite(total)


def params_digest(module):
    """SHA-1 of the learned parameters (not the BatchNorm statistics, which each worker
    keeps for its own data): equal on every worker of a synchronous job."""
    mx.nd.waitall()
    arg_params, _ = module.get_params()
    digest = hashlib.sha1()
    for name in sorted(arg_params):
        digest.update(name.encode())
        digest.update(arg_params[name].asnumpy().tobytes())
    return digest.hexdigest()


def evaluate(module, data_iter, metric):
    """Validation metrics over one pass of a new iterator, leaving out the padding of
    the last, partial batch."""
    metric.reset()
    for batch in data_iter:
        module.forward(batch, is_train=False)
        keep = batch.data[0].shape[0] - (batch.pad or 0)
        outputs = [out[:keep] for out in module.get_outputs()]
        metric.update([label[:keep] for label in batch.label], outputs)
    return metric_values(metric)


class Trainer(object):
    """Builds the Module and the iterators, then runs epochs with checkpoints and logs."""

    def __init__(self, args, symbol, image_shape, pick_engine=False):
        """pick_engine: choose MXNet's engine for this process once the arguments are
        checked, before any NDArray (`use_naive_engine`); for a process of its own, such as
        the command line's."""
        self.args = args
        self.symbol = symbol
        self.image_shape = image_shape
        self.contexts = contexts(parse_gpus(args.gpus))
        if args.dtype == 'float16' and not args.gpus and not args.test_io:
            raise UsageError('--dtype float16 trains on GPUs only: MXNet 1.9.1 has no float16 '
                             'GEMM on the CPU (use --gpus, or --dtype float32)')
        self.kv = create_kvstore(args.kv_store)
        self.num_workers = self.kv.num_workers if self.kv else 1
        self.rank = self.kv.rank if self.kv else 0
        self.sync_workers = self.kv is not None and '_sync' in self.kv.type
        if args.batch_size < 1:
            raise UsageError('--batch-size %d: must be a positive number' % args.batch_size)
        if not 0 <= args.random_erasing <= 1:
            raise UsageError('--random-erasing %g: expected a probability in [0, 1]'
                             % args.random_erasing)
        if args.batch_size % (self.num_workers * len(self.contexts)):
            raise UsageError('--batch-size %d must divide evenly over %d workers x %d devices'
                             % (args.batch_size, self.num_workers, len(self.contexts)))
        self.log = JsonLog(args.log_file if self.rank == 0 else None)
        self.data_idx = ''
        if not args.benchmark:
            self.data_idx = default_idx(args.data_train, args.data_train_idx)
            total = count_records(args.data_train, self.data_idx)
            if args.num_examples is None:
                args.num_examples = total
            self.val_idx = ''
            if args.data_val:
                self.val_idx = default_idx(args.data_val, args.data_val_idx)
                count_records(args.data_val, self.val_idx, flag='--data-val')
        elif args.num_examples is None:
            args.num_examples = args.batch_size * 50
        # Every worker runs the same number of batches per epoch, whatever its shard holds,
        # so synchronous jobs cannot wait forever on a worker that ran out of data.
        self.epoch_size = max(args.num_examples // args.batch_size, 1)
        if pick_engine:
            use_naive_engine(args.gpus, args.kv_store)

    # -- data ---------------------------------------------------------------
    def train_iter(self, epoch):
        args = self.args
        if args.benchmark:
            shape = (args.batch_size // self.num_workers,) + self.image_shape
            return SyntheticDataIter(args.num_classes, shape, self.epoch_size)
        return record_iter(args, self.image_shape, args.data_train, self.data_idx, True,
                           self.num_workers, self.rank, epoch)

    def val_iter(self):
        """A fresh validation iterator: after a reset, ImageRecordIter's round-robin
        padding would shift the data, so each evaluation starts from a new one."""
        args = self.args
        return record_iter(args, self.image_shape, args.data_val, self.val_idx, False,
                           self.num_workers, self.rank)

    def batches(self, epoch, skip=0):
        """Exactly epoch_size batches of `epoch`, wrapping round a short shard; with
        --random-erasing, erased with a generator seeded by (seed, epoch, batch, worker)."""
        args = self.args
        data = self.train_iter(epoch)
        erasing = args.random_erasing and not args.benchmark
        if erasing:
            mean, std = normalisation(args, self.image_shape[0])
        done = 0
        while done < self.epoch_size:
            for batch in data:
                if done >= skip:
                    if erasing:
                        rng = np.random.RandomState([args.seed, epoch, done, self.rank])
                        images = random_erasing(batch.data[0].asnumpy(), rng,
                                                args.random_erasing, mean, std)
                        batch.data[0][:] = images
                    yield done, batch
                done += 1
                if done >= self.epoch_size:
                    return
            data.reset()

    # -- model --------------------------------------------------------------
    def build_module(self, data_shape, arg_params, aux_params, begin_num_update):
        args = self.args
        module = mx.mod.Module(training_graph(self.symbol, args.residual_sum, args.global_pool),
                               context=self.contexts)
        module.bind(data_shapes=[('data', data_shape)],
                    label_shapes=[('softmax_label', (data_shape[0],))])
        if args.monitor > 0:
            module.install_monitor(mx.mon.Monitor(args.monitor, pattern='.*'))
        mx.random.seed(args.seed)
        np.random.seed(args.seed)
        module.init_params(initializer(args.initializer), arg_params=arg_params,
                           aux_params=aux_params, allow_missing=arg_params is None)
        optimizer_params = {'learning_rate': args.lr, 'wd': args.wd,
                            'lr_scheduler': lr_scheduler(args, self.epoch_size),
                            'begin_num_update': begin_num_update,
                            'multi_precision': args.dtype == 'float16'}
        if args.optimizer in ('sgd', 'nag', 'dcasgd', 'signum'):
            optimizer_params['momentum'] = args.mom
        # Gradients are summed over the batch (and over workers in synchronous jobs), then
        # scaled by the loss scale: normalise both away, as Module.fit would.
        summed_over = data_shape[0] * (self.num_workers if self.sync_workers else 1)
        optimizer_params['rescale_grad'] = 1.0 / (summed_over * args.loss_scale)
        try:
            optimizer = mx.optimizer.create(args.optimizer, **optimizer_params)
        except (ValueError, KeyError, TypeError) as err:
            raise UsageError('--optimizer %s: %s' % (args.optimizer, err))
        with warnings.catch_warnings():
            # rescale_grad above is deliberate (loss scale, workers), not Module's default
            warnings.filterwarnings('ignore', message='Optimizer created manually')
            module.init_optimizer(kvstore=self.kv or args.kv_store, optimizer=optimizer)
        return module

    def learning_rate(self, num_update):
        scheduler = lr_scheduler(self.args, self.epoch_size)
        return scheduler(num_update) if scheduler else self.args.lr

    def can_save_states(self, module):
        # dist_async keeps the optimizer state on the servers, where a worker cannot read it.
        return not (module._update_on_kvstore and self.kv is not None)  # pylint: disable=W0212

    def save(self, module, epoch, batch=0):
        """Checkpoint the state after `batch` batches of epoch `epoch` (0-based)."""
        if batch == self.epoch_size:
            epoch, batch = epoch + 1, 0
        if self.rank != 0 or not self.args.model_prefix:
            return
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            checkpoint.save(self.args.model_prefix, epoch, self.symbol, module,
                            {'epoch': epoch, 'batch': batch,
                             'num_update': epoch * self.epoch_size + batch},
                            save_states=self.can_save_states(module))
        finally:
            signal.signal(signal.SIGINT, previous)
        logging.info('Saved checkpoint %s-%04d%s', self.args.model_prefix, epoch,
                     ' (mid-epoch, after batch %d)' % batch if batch else '')

    # -- the loop -----------------------------------------------------------
    def run(self):
        args = self.args
        begin_epoch, begin_batch = 0, 0
        arg_params = aux_params = states = None
        if args.load_epoch is not None:
            if not args.model_prefix:
                raise UsageError('--load-epoch needs --model-prefix')
            arg_params, aux_params, states, progress = checkpoint.load(args.model_prefix,
                                                                       args.load_epoch)
            begin_epoch, begin_batch = progress['epoch'], progress['batch']
        if begin_epoch >= args.num_epochs:
            raise UsageError('--load-epoch %d: the run already has %d of --num-epochs %d'
                             % (args.load_epoch, begin_epoch, args.num_epochs))
        per_worker = args.batch_size // self.num_workers
        module = self.build_module((per_worker,) + self.image_shape, arg_params, aux_params,
                                   begin_epoch * self.epoch_size + begin_batch)
        if states:
            module.load_optimizer_states(states)
        if self.kv is not None:
            logging.info('Worker %d of %d (kvstore %s): reading part %d of %d of %s',
                         self.rank, self.num_workers, self.kv.type, self.rank, self.num_workers,
                         'synthetic data' if args.benchmark else args.data_train)
        logging.info('Training %s on %s: %d epochs of %d batches of %d, from epoch %d%s',
                     args.network, ', '.join(str(c) for c in self.contexts), args.num_epochs,
                     self.epoch_size, args.batch_size, begin_epoch,
                     ' batch %d' % begin_batch if begin_batch else '')
        train_metric, val_metric = make_metrics(args.top_k), make_metrics(args.top_k)
        run_start = time.time()
        record = {}
        stop = {'requested': False}

        def request_stop(signum, frame):
            stop['requested'] = True
            signal.signal(signal.SIGINT, previous)  # a second Ctrl-C stops at once
        previous = signal.signal(signal.SIGINT, request_stop)
        try:
            for epoch in range(begin_epoch, args.num_epochs):
                skip = begin_batch if epoch == begin_epoch else 0
                train_values, speed = self.train_epoch(module, epoch, skip, train_metric, stop)
                record = {'event': 'epoch', 'epoch': epoch + 1, 'batches': self.epoch_size,
                          'images_per_sec': speed, 'wall_time': time.time() - run_start,
                          'lr': self.learning_rate((epoch + 1) * self.epoch_size - 1)}
                record.update({'train_' + k: v for k, v in train_values.items()})
                if args.data_val and not args.benchmark:
                    val_values = evaluate(module, self.val_iter(), val_metric)
                    record.update({'val_' + k: v for k, v in val_values.items()})
                    logging.info('Epoch[%d] Validation %s', epoch + 1,
                                 format_metrics(val_values))
                if not params_finite(module):
                    raise NonFinite('a parameter became NaN or infinite in epoch %d'
                                    % (epoch + 1))
                if self.kv is not None:
                    record['params_sha1'] = params_digest(module)
                    logging.info('Epoch[%d] Worker %d of %d: parameters sha1 %s', epoch + 1,
                                 self.rank, self.num_workers, record['params_sha1'])
                self.log.write(**record)
                if (epoch + 1) % args.save_period == 0 or epoch + 1 == args.num_epochs:
                    self.save(module, epoch + 1)
        except Interrupted as interrupt:
            logging.warning('Interrupted in epoch %d after batch %d: saving a checkpoint',
                            interrupt.args[0] + 1, interrupt.args[1])
            self.save(module, *interrupt.args)
            raise
        finally:
            if signal.getsignal(signal.SIGINT) is request_stop:
                signal.signal(signal.SIGINT, previous)
        if 'val_top1' in record:
            logging.info('Final validation accuracy: top-1 %.4f%s after %d epochs',
                         record['val_top1'], ', top-%d %.4f' % (args.top_k, record['val_topk'])
                         if 'val_topk' in record else '', args.num_epochs)
        return record

    def train_epoch(self, module, epoch, skip, metric, stop):
        """One epoch from batch `skip`; returns (train metric values, images/s)."""
        args = self.args
        metric.reset()
        start = time.time()
        seen = 0
        for nbatch, batch in self.batches(epoch, skip):
            module.forward_backward(batch)
            module.update()
            module.update_metric(metric, batch.label)
            seen += args.batch_size
            values = metric_values(metric)
            if not math.isfinite(values['loss']):
                raise NonFinite('the loss became %s in epoch %d at batch %d'
                                % (values['loss'], epoch + 1, nbatch + 1))
            if stop['requested']:
                raise Interrupted(epoch, nbatch + 1)
            if (nbatch + 1) % args.disp_batches == 0 or nbatch + 1 == self.epoch_size:
                if not params_finite(module):
                    raise NonFinite('a parameter became NaN or infinite in epoch %d at '
                                    'batch %d' % (epoch + 1, nbatch + 1))
                speed = seen / (time.time() - start)
                eta = (self.epoch_size - nbatch - 1) * args.batch_size / speed
                logging.info('Epoch[%d] Batch [%d/%d] Speed: %.1f samples/sec ETA %s %s',
                             epoch + 1, nbatch + 1, self.epoch_size, speed,
                             format_seconds(eta), format_metrics(values))
                self.log.write(event='batch', epoch=epoch + 1, batch=nbatch + 1,
                               images_per_sec=speed, **{'train_' + k: v
                                                        for k, v in values.items()})
        elapsed = time.time() - start
        logging.info('Epoch[%d] Train %s Time %.1fs', epoch + 1,
                     format_metrics(metric_values(metric)), elapsed)
        return metric_values(metric), seen / max(elapsed, 1e-9)


def test_io(trainer):
    """--test-io 1: read one epoch of training data and report the speed."""
    start = time.time()
    seen = 0
    for nbatch, batch in trainer.batches(0):
        seen += batch.data[0].shape[0]
        if (nbatch + 1) % trainer.args.disp_batches == 0:
            logging.info('Batch [%d/%d] %.1f images/sec', nbatch + 1, trainer.epoch_size,
                         seen / (time.time() - start))
    speed = seen / max(time.time() - start, 1e-9)
    logging.info('Read %d images in %d batches: %.1f images/sec', seen, trainer.epoch_size,
                 speed)
    return speed
