"""The training loop: `mx.mod.Module` over RecordIO iterators, checkpoints and the log.

The loop is Module's own `fit` unrolled, so that it can checkpoint atomically (optimizer
state included), resume mid-schedule exactly, stop on non-finite values and save on Ctrl-C.
`train(args)` runs it for the parsed flags of `mxresnet.flags`.
"""
import hashlib
import logging
import math
import os
import signal
import time
import warnings

import mxnet as mx
import numpy as np

import symbols

from . import (augment, checkpoint, finetune, flags, graph, horovod, inference, runtime,
               tensorboard)
from .data import SyntheticDataIter, backend_record_iter, check_dataset, check_labels
from .ema import WeightAverage
from .errors import NonFinite, UsageError
from .log import JsonLog
from .recordio import default_idx
from .teacher import Teacher


def configure(args):
    """Check the parsed flags and fill the defaults that depend on others (presets, the
    checkpoint prefix, the log, the synset); returns the input shape (C, H, W).

    The class names come from --synset, else from the synset file beside --data-train; they
    set the number of classes unless --num-classes does, which they must then match."""
    explicit_classes = args.num_classes is not None
    flags.apply_presets(args)
    flags.check_numbers(args)
    flags.check_recipe(args)
    if args.lr_step_epochs.strip():  # checked whatever the schedule
        flags.int_list(args.lr_step_epochs, '--lr-step-epochs', minimum=0)
    if getattr(args, 'tensorboard_histograms', 0) and not getattr(args, 'tensorboard', None):
        raise UsageError('--tensorboard-histograms %d needs --tensorboard DIR'
                         % args.tensorboard_histograms)
    if args.network not in symbols.list_networks():
        raise UsageError('--network %r: choose one of %s'
                         % (args.network, ', '.join(symbols.list_networks())))
    image_shape = flags.image_shape(args.image_shape)
    if args.model_prefix is None:
        run_name = args.model_name or '%s-%d' % (args.network, args.num_layers)
        args.model_prefix = os.path.join('runs', run_name, 'model')
    if args.log_file is None:  # no prefix (no checkpoints): no log either
        args.log_file = args.model_prefix + '-log.jsonl' if args.model_prefix else ''
    args.synset_names = None
    synset = args.synset or (None if args.benchmark else flags.find_synset(args.data_train))
    if synset:
        args.synset_names = flags.read_synset(synset)
        if not explicit_classes:
            args.num_classes = len(args.synset_names)
        elif len(args.synset_names) != args.num_classes:
            raise UsageError('%s names %d classes but --num-classes is %d (pass --synset '
                             'FILE with one name per class)'
                             % (synset, len(args.synset_names), args.num_classes))
    return image_shape


def build_symbol(args, image_shape):
    """The network of the flags, with the loss scale and label smoothing in its head; with
    --model, refused where the input would change the named model's layers."""
    options = flags.network_options(args)
    try:
        sym = symbols.get_symbol(args.network, num_classes=args.num_classes,
                                 num_layers=args.num_layers,
                                 image_shape=','.join(map(str, image_shape)), **options)
        if args.model_name:
            symbols.check_model_input(args.model_name, image_shape, sym, **options)
    except ValueError as err:
        message = str(err)
        raise UsageError('--' + message if message.startswith('model ') else message)
    return graph.with_loss_head(sym, args.loss_scale, args.label_smoothing)


def train(args, pick_engine=False):
    """Train as the parsed flags say; returns the last epoch's record (with --test-io, the
    reading speed). `pick_engine`: see Trainer."""
    image_shape = configure(args)
    trainer = Trainer(args, build_symbol(args, image_shape), image_shape, pick_engine)
    if args.test_io:
        return test_io(trainer)
    return trainer.run()


def create_kvstore(name):
    """The KVStore for --kv-store: None for single-process stores (Module makes its own), a
    `horovod.HorovodStore` for Horovod."""
    if name not in flags.KVSTORES:
        raise UsageError('--kv-store %r: choose one of %s' % (name, ', '.join(flags.KVSTORES)))
    if name == 'horovod':
        return horovod.HorovodStore()
    if not name.startswith('dist'):
        return None
    if 'DMLC_ROLE' not in os.environ:
        raise UsageError('--kv-store %s needs a scheduler and servers: start it with '
                         'python tools/launch.py -n WORKERS -s SERVERS python train_resnet.py ...'
                         % name)
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
    epochs = flags.int_list(args.lr_step_epochs, '--lr-step-epochs', minimum=0) \
        if args.lr_step_epochs.strip() else []
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


def make_metrics(top_k, soft_targets=False):
    """Top-1, the loss and top-k: the loss is the cross-entropy against the labels, or with
    soft targets the loss the graph minimises (`update_soft_metric`)."""
    metrics = [mx.metric.Accuracy(),
               mx.metric.Loss() if soft_targets else mx.metric.CrossEntropy()]
    if top_k > 1:
        metrics.append(mx.metric.TopKAccuracy(top_k=top_k))
    return mx.metric.CompositeEvalMetric(metrics)


def update_soft_metric(metric, targets, outputs):
    """Training metrics of the soft-target graph (graph.soft_target_loss): accuracy against
    each image's largest target (torchvision's with mixed targets) on the probabilities,
    outputs[0]; the loss is its per-image output, outputs[1]."""
    labels = [mx.nd.argmax(targets, axis=1)]
    for child in metric.metrics:
        child.update(labels, [outputs[1] if isinstance(child, mx.metric.Loss) else outputs[0]])


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


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM (`signum`), acted on at the next batch boundary, after a checkpoint
    of that state; args: (epoch, batch)."""

    def __init__(self, epoch, batch, signum=signal.SIGINT):
        super(Interrupted, self).__init__(epoch, batch)
        self.signum = signum


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


def evaluate(module, data_iter, metric, num_classes, where):
    """Validation metrics over one pass of a new iterator, leaving out the padding of
    the last, partial batch; every label checked (`check_labels`). The module's first output
    holds the probabilities; it is fed the images alone (a soft-target graph's labels are
    probability vectors, and an inference module has none)."""
    metric.reset()
    for nbatch, batch in enumerate(data_iter):
        check_labels(batch, num_classes, 'batch %d of %s' % (nbatch + 1, where))
        module.forward(mx.io.DataBatch(batch.data), is_train=False)
        keep = batch.data[0].shape[0] - (batch.pad or 0)
        metric.update([label[:keep] for label in batch.label],
                      [module.get_outputs()[0][:keep]])
    return metric_values(metric)


class Trainer(object):
    """Builds the Module and the iterators, then runs epochs with checkpoints and logs."""

    def __init__(self, args, symbol, image_shape, pick_engine=False):
        """`args`: flags filled by `configure`. pick_engine: choose MXNet's engine for this
        process once the arguments are checked, before any NDArray
        (`runtime.use_naive_engine`); for a process of its own, such as the command line's."""
        self.args = args
        self.symbol = symbol
        self.image_shape = image_shape
        self.contexts = runtime.contexts(flags.gpu_list(args.gpus))
        if args.dtype == 'float16' and not args.gpus and not args.test_io:
            raise UsageError('--dtype float16 trains on GPUs only: MXNet 1.9.1 has no float16 '
                             'GEMM on the CPU (use --gpus, or --dtype float32)')
        self.soft_targets = flags.soft_targets(args)
        self.teacher = None
        if args.teacher:
            mean, std = flags.normalisation(args, image_shape[0])
            self.teacher = Teacher(args.teacher, image_shape, mean, std, args.num_classes,
                                   args.synset_names, args.temperature, args.gpus)
        self.branch_ends = graph.residual_branch_ends(symbol) if args.last_gamma else []
        if args.last_gamma and not self.branch_ends:
            raise UsageError('--last-gamma: --network %s has no residual branches'
                             % args.network)
        self.average = None  # --model-ema's WeightAverage, from train_epochs
        self.kv = create_kvstore(args.kv_store)
        self.num_workers = self.kv.num_workers if self.kv else 1
        self.rank = self.kv.rank if self.kv else 0
        self.horovod = isinstance(self.kv, horovod.HorovodStore)
        self.sync_workers = self.kv is not None and ('_sync' in self.kv.type or self.horovod)
        if args.batch_size % (self.num_workers * len(self.contexts)):
            raise UsageError('--batch-size %d must divide evenly over %d workers x %d devices'
                             % (args.batch_size, self.num_workers, len(self.contexts)))
        if self.rank == 0:  # before any work: a folder that cannot be written fails now
            if getattr(args, 'tensorboard', None):  # mxboard imports, DIR can be written
                tensorboard.check(args.tensorboard)
            if args.model_prefix:
                checkpoint.check_writable(args.model_prefix, '--model-prefix')
            if args.log_file:
                checkpoint.check_writable(args.log_file, '--log-file')
        self.log = JsonLog(args.log_file if self.rank == 0 else None)
        self.curves = tensorboard.NoCurves()  # run() opens the event file of --tensorboard
        self.data_idx = ''
        if not args.benchmark:
            per_worker = args.batch_size // self.num_workers
            rescales = args.random_resized_crop or args.max_random_scale != 1 or \
                args.min_random_scale != 1
            self.data_idx = default_idx(args.data_train, args.data_train_idx)
            self.val_idx = default_idx(args.data_val, args.data_val_idx) if args.data_val else ''
            indexes = {'--data-train': self.data_idx}
            if args.data_val:
                indexes['--data-val'] = self.val_idx
            self.record_iter = backend_record_iter(args, indexes)
            total = check_dataset(args.data_train, self.data_idx, image_shape, '--data-train',
                                  args.data_check, args.resize, per_worker, self.num_workers,
                                  rescales)
            if args.num_examples is None:
                args.num_examples = total
            if args.data_val:
                check_dataset(args.data_val, self.val_idx, image_shape, '--data-val',
                              args.data_check, args.resize, per_worker, self.num_workers)
        elif args.num_examples is None:
            args.num_examples = args.batch_size * 50
        # Every worker runs the same number of batches per epoch, whatever its shard holds,
        # so synchronous jobs cannot wait forever on a worker that ran out of data.
        self.epoch_size = max(args.num_examples // args.batch_size, 1)
        self.pretrained = finetune.parse_pretrained(args)
        self.frozen = finetune.frozen_names(symbol, args.freeze_stages)
        if pick_engine:
            runtime.use_naive_engine(args.gpus, args.kv_store)

    def metadata(self):
        """What the checkpoints record about the model (PREFIX-model.json)."""
        args = self.args
        mean, std = flags.normalisation(args, self.image_shape[0])
        return checkpoint.metadata(
            args.network, args.num_layers, flags.network_options(args), self.image_shape,
            mean, std, args.num_classes, preset=args.preset, model=args.model_name,
            synset=args.synset_names, resize=args.resize,
            pretrained='%s:%d' % self.pretrained if self.pretrained else None)

    # -- data ---------------------------------------------------------------
    def train_iter(self, epoch):
        args = self.args
        per_worker = args.batch_size // self.num_workers
        if args.benchmark:
            return SyntheticDataIter(args.num_classes, (per_worker,) + self.image_shape,
                                     self.epoch_size)
        mean, std = flags.normalisation(args, self.image_shape[0])
        return self.record_iter(args.data_train, self.data_idx, self.image_shape, mean, std,
                                per_worker, args.data_nthreads, args, self.num_workers,
                                self.rank, epoch, args.resize)

    def val_iter(self):
        """A fresh validation iterator: after a reset, ImageRecordIter's round-robin
        padding would shift the data, so each evaluation starts from a new one."""
        args = self.args
        mean, std = flags.normalisation(args, self.image_shape[0])
        return self.record_iter(args.data_val, self.val_idx, self.image_shape, mean, std,
                                args.batch_size // self.num_workers, args.data_nthreads,
                                num_parts=self.num_workers, part_index=self.rank,
                                resize=args.resize)

    def batches(self, epoch, skip=0):
        """Exactly epoch_size batches of `epoch`, wrapping round a short shard, their images
        augmented by `augment_images`."""
        data = self.train_iter(epoch)
        done = 0
        while done < self.epoch_size:
            for batch in data:
                if done >= skip:
                    self.augment_images(batch, epoch, done)
                    yield done, batch
                done += 1
                if done >= self.epoch_size:
                    return
            data.reset()

    def augment_images(self, batch, epoch, nbatch):
        """--auto-augment, then --random-erasing, in place on the images of batch `nbatch` of
        `epoch` (not on synthetic data), each with its generator (augment.batch_rng)."""
        args = self.args
        if args.benchmark or not (args.auto_augment or args.random_erasing):
            return
        mean, std = flags.normalisation(args, self.image_shape[0])
        images = batch.data[0].asnumpy()
        if args.auto_augment:
            rng = augment.batch_rng(args.seed, epoch, nbatch, self.rank,
                                    augment.AUTO_AUGMENT_STREAM)
            images = augment.auto_augment(images, rng, args.auto_augment, mean, std,
                                          args.fill_value, args.ra_magnitude, args.ra_num_ops)
        if args.random_erasing:
            augment.random_erasing(images, augment.batch_rng(args.seed, epoch, nbatch,
                                                             self.rank),
                                   args.random_erasing, mean, std)
        batch.data[0][:] = images

    def training_batch(self, batch, epoch, nbatch):
        """The batch the graph trains on: as read, or for the soft-target graph its images
        mixed (mixup or CutMix, but in the last --mixup-off-epoch epochs) with their targets,
        and with a teacher its probabilities (of the mixed images)."""
        args = self.args
        if not self.soft_targets:
            return batch
        mixing = epoch < args.num_epochs - args.mixup_off_epoch
        rng = augment.batch_rng(args.seed, epoch, nbatch, self.rank, augment.MIX_STREAM)
        images, targets = augment.mix_batch(
            batch.data[0].asnumpy(), batch.label[0].asnumpy(), rng, args.num_classes,
            args.mixup_alpha if mixing else 0, args.cutmix_alpha if mixing else 0,
            args.label_smoothing)
        data = mx.nd.array(images)
        labels = [mx.nd.array(targets)]
        if self.teacher is not None:
            labels.append(self.teacher.probabilities(data))
        return mx.io.DataBatch(data=[data], label=labels, pad=batch.pad)

    # -- model --------------------------------------------------------------
    def label_shapes(self, batch_size):
        """The labels of the training graph: the classes, or with soft targets probability
        vectors (and a teacher's)."""
        if not self.soft_targets:
            return [('softmax_label', (batch_size,))]
        names = ['softmax_label'] + (['teacher_label'] if self.teacher is not None else [])
        return [(name, (batch_size, self.args.num_classes)) for name in names]

    def group_channels(self):
        """--group-channels, its default resolved: the CPU's SIMD width, none on GPUs."""
        if self.args.group_channels is not None:
            return self.args.group_channels
        return runtime.default_group_channels(self.args.gpus)

    def build_module(self, data_shape, arg_params, aux_params, begin_num_update):
        args = self.args
        symbol = graph.training_graph(self.symbol, args.residual_sum, args.global_pool,
                                      self.group_channels(), data_shape)
        if self.soft_targets:
            symbol = graph.soft_target_loss(
                symbol, args.loss_scale, args.temperature if self.teacher else None,
                args.hard_weight)
        label_shapes = self.label_shapes(data_shape[0])
        module = mx.mod.Module(symbol, context=self.contexts, fixed_param_names=self.frozen,
                               label_names=[name for name, _ in label_shapes])
        # MXNet reads these when binding and when creating the optimizer's kvstore.
        mirror = {'MXNET_BACKWARD_DO_MIRROR': '1'} if args.memonger else {}
        # Synchronous workers apply the summed gradients themselves, so rank 0 holds the
        # optimizer state and can checkpoint it; every worker ends an update with equal
        # parameters.
        update_locally = {'MXNET_UPDATE_ON_KVSTORE': '0'} if self.sync_workers else {}
        with runtime.environment(**mirror):
            module.bind(data_shapes=[('data', data_shape)], label_shapes=label_shapes)
        if args.monitor > 0:
            module.install_monitor(mx.mon.Monitor(args.monitor, pattern='.*'))
        mx.random.seed(args.seed)
        np.random.seed(args.seed)
        # Missing only when fine-tuning (the new classifier) or starting fresh: a resumed
        # checkpoint has every parameter (check_loaded_shapes).
        module.init_params(initializer(args.initializer), arg_params=arg_params,
                           aux_params=aux_params,
                           allow_missing=args.load_epoch is None)
        self.zero_branch_ends(module, arg_params)
        if self.horovod:  # fresh or resumed, every rank starts from rank 0's parameters
            self.kv.broadcast_params(module)
        optimizer_params = {'learning_rate': args.lr, 'wd': args.wd,
                            'lr_scheduler': lr_scheduler(args, self.epoch_size),
                            'begin_num_update': begin_num_update,
                            'multi_precision': args.dtype == 'float16'}
        if args.optimizer in ('sgd', 'nag', 'dcasgd', 'signum'):
            optimizer_params['momentum'] = args.mom
        # Gradients are summed over the batch (and over workers in synchronous jobs), then
        # scaled by the loss scale: normalise both away, as Module.fit would. (Horovod's
        # optimizer wrapper divides by the number of workers itself.)
        summed_over = data_shape[0] * (self.num_workers if self.sync_workers and
                                       not self.horovod else 1)
        optimizer_params['rescale_grad'] = 1.0 / (summed_over * args.loss_scale)
        try:
            optimizer = mx.optimizer.create(args.optimizer, **optimizer_params)
        except (ValueError, KeyError, TypeError) as err:
            raise UsageError('--optimizer %s: %s' % (args.optimizer, err))
        if args.no_wd:
            # Without it every parameter decays: the optimizer is created here before Module
            # tells it the parameter names, so MXNet's own rule (decay on *_weight and
            # *_gamma only) never applies.
            optimizer.set_wd_mult({name: 0.0 for name in graph.no_decay_names(self.symbol)})
        if args.backbone_lr_mult != 1:
            head = finetune.classifier_names(self.symbol, args.layer_before_fullc)
            backbone = [name for name in self.param_shapes() if name not in head and
                        name in self.symbol.list_arguments()]
            optimizer.set_lr_mult({name: args.backbone_lr_mult for name in backbone})
            logging.info('Learning rate x%g for %d backbone parameters; the classifier (%s) '
                         'keeps the full rate', args.backbone_lr_mult, len(backbone),
                         ', '.join(head))
        with warnings.catch_warnings(), runtime.environment(**update_locally):
            # rescale_grad above is deliberate (loss scale, workers), not Module's default
            warnings.filterwarnings('ignore', message='Optimizer created manually')
            if self.horovod:
                self.kv.init_optimizer(module, optimizer)
            else:
                module.init_optimizer(kvstore=self.kv or args.kv_store, optimizer=optimizer)
        return module

    def zero_branch_ends(self, module, loaded):
        """--last-gamma: the residual branch ends (graph.residual_branch_ends) that were not
        loaded (from the checkpoint resumed or --pretrained) set to zero, before the
        optimizer (and a distributed job's kvstore) takes the weights."""
        fresh = [name for name in self.branch_ends if name not in (loaded or {})]
        if not fresh:
            return
        arg_params, aux_params = module.get_params()
        for name in fresh:
            arg_params[name][:] = 0
        module.set_params(arg_params, aux_params)
        logging.info('--last-gamma: %d residual branches start at zero (%s ... %s)',
                     len(fresh), fresh[0], fresh[-1])

    def weight_average(self, module, averaged):
        """--model-ema's average: the one the resumed checkpoint saved, `averaged`
        (arg_params, aux_params), else starting from the weights the module has now."""
        if averaged is None:
            if self.args.load_epoch is not None:
                logging.warning('Checkpoint %d has no moving average of the weights: '
                                '--model-ema starts from its weights', self.args.load_epoch)
            averaged = module.get_params()
        return WeightAverage(self.args.model_ema_decay, averaged[0], averaged[1],
                             self.contexts[0])

    def evaluate_average(self, metric):
        """Validation metrics of --model-ema's average, bound for inference."""
        arg_params, aux_params = self.average.params()
        module = inference.bind_module(graph.inference_symbol(self.symbol), arg_params,
                                       aux_params, (self.args.batch_size // self.num_workers,)
                                       + self.image_shape, self.contexts)
        return evaluate(module, self.val_iter(), metric, self.args.num_classes,
                        '--data-val %s' % self.args.data_val)

    def learning_rate(self, num_update):
        scheduler = lr_scheduler(self.args, self.epoch_size)
        return scheduler(num_update) if scheduler else self.args.lr

    def param_shapes(self):
        """{name: shape} of the network's parameters and auxiliary states."""
        per_worker = self.args.batch_size // self.num_workers
        arg_shapes, _, aux_shapes = self.symbol.infer_shape(
            data=(per_worker,) + self.image_shape, softmax_label=(per_worker,))
        shapes = dict(zip(self.symbol.list_arguments(), arg_shapes))
        shapes.update(zip(self.symbol.list_auxiliary_states(), aux_shapes))
        del shapes['data'], shapes['softmax_label']
        return shapes

    def check_loaded_shapes(self, arg_params, aux_params):
        """UsageError naming the first parameter that the network these flags build lacks in
        the checkpoint to resume, or has in another shape (another class count, depth or
        width)."""
        expected = self.param_shapes()
        loaded = dict(arg_params, **aux_params)
        problem = None
        for name in sorted(expected):
            if name not in loaded:
                problem = 'the checkpoint has no %s' % name
            elif tuple(loaded[name].shape) != tuple(expected[name]):
                problem = '%s has shape %s in the checkpoint but %s in the network of these ' \
                    'flags' % (name, tuple(loaded[name].shape), tuple(expected[name]))
            if problem:
                args = self.args
                meta = checkpoint.read_metadata(args.model_prefix)
                trained = ' (%s: --network %s --num-layers %d --num-classes %d)' % (
                    checkpoint.paths(args.model_prefix, 0)['metadata'], meta['network'],
                    meta['num_layers'], meta['num_classes']) if meta else ''
                raise UsageError('--load-epoch %d: %s: resume with the flags it was trained '
                                 'with%s, or fine-tune it in a new run (--pretrained %s:%d '
                                 'and another --model-prefix)' % (
                                     args.load_epoch, problem, trained, args.model_prefix,
                                     args.load_epoch))

    def can_save_states(self, module):
        # dist_async keeps the optimizer state on the servers, where a worker cannot read it.
        return not (module._update_on_kvstore and self.kv is not None)  # pylint: disable=W0212

    def save(self, module, epoch, batch=0):
        """Checkpoint the state after `batch` batches of epoch `epoch` (0-based): number
        epoch + 1 either way, so that a mid-epoch checkpoint never replaces the one of the
        last finished epoch (the end of this epoch replaces it in its turn)."""
        if batch == self.epoch_size:
            epoch, batch = epoch + 1, 0
        if self.rank != 0 or not self.args.model_prefix:
            return
        number = epoch + 1 if batch else epoch
        average = self.average.params() + (self.average.decay,) if self.average else None
        previous = {s: signal.signal(s, signal.SIG_IGN) for s in self.stop_signals()}
        try:
            checkpoint.save(self.args.model_prefix, number, self.symbol, module,
                            {'epoch': epoch, 'batch': batch,
                             'num_update': epoch * self.epoch_size + batch},
                            self.metadata(), save_states=self.can_save_states(module),
                            ema=average)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        logging.info('Saved checkpoint %s-%04d%s', self.args.model_prefix, number,
                     ' (mid-epoch: epoch %d after batch %d of %d; resume with --load-epoch %d)'
                     % (epoch + 1, batch, self.epoch_size, number) if batch else '')

    def stop_signals(self):
        """The signals that stop training after a checkpoint: Ctrl-C, and SIGTERM (what batch
        schedulers and `kill` send) but in distributed jobs, whose launcher stops every
        worker with it when one fails (a synchronous worker could wait forever for the next
        batch boundary)."""
        return (signal.SIGINT,) if self.kv is not None else (signal.SIGINT, signal.SIGTERM)

    def start_log(self, begin_epoch, begin_batch):
        """Mark the start of this run in the log, saying so when a fresh run goes into a
        folder that has an earlier run's log or checkpoints."""
        args = self.args
        resumed = args.load_epoch is not None
        recipe = flags.recipe(args)
        if self.teacher is not None:
            recipe['teacher'] = self.teacher.reference
        number, earlier = self.log.start_run(
            begin_epoch, resumed, begin_batch=begin_batch, network=args.network,
            num_layers=args.num_layers, model_prefix=args.model_prefix,
            pretrained='%s:%d' % self.pretrained if self.pretrained else None,
            freeze_stages=args.freeze_stages, backbone_lr_mult=args.backbone_lr_mult,
            recipe=recipe)
        if self.rank != 0 or resumed:
            return
        found = sorted(checkpoint.available(args.model_prefix)) if args.model_prefix else []
        if earlier or found:
            logging.warning('%s already holds %s: this fresh run is run %d of %s, and '
                            'overwrites checkpoints of the same numbers (resume with '
                            '--load-epoch N, or pick another --model-prefix)',
                            os.path.dirname(os.path.abspath(args.model_prefix)),
                            ' and '.join(filter(None, [
                                'checkpoints %s' % ', '.join(map(str, found)) if found else '',
                                '%d earlier run%s in its log' % (len(earlier),
                                                                 's' * (len(earlier) > 1))
                                if earlier else ''])),
                            number, args.log_file or 'no log')

    # -- the loop -----------------------------------------------------------
    def run(self):
        """Train to --num-epochs; returns the last epoch's record."""
        args = self.args
        begin_epoch, begin_batch = 0, 0
        arg_params = aux_params = states = averaged = None
        if args.load_epoch is not None:
            if not args.model_prefix:
                raise UsageError('--load-epoch needs --model-prefix')
            arg_params, aux_params, states, progress = checkpoint.load(args.model_prefix,
                                                                       args.load_epoch)
            begin_epoch, begin_batch = progress['epoch'], progress['batch']
            self.check_loaded_shapes(arg_params, aux_params)
            if args.model_ema:
                averaged = checkpoint.load_ema(args.model_prefix, args.load_epoch, progress)
        elif self.pretrained:
            arg_params, aux_params, _ = finetune.transfer(
                self.pretrained, self.symbol, self.param_shapes(), args.layer_before_fullc,
                args.synset_names)
        if self.frozen:
            logging.info('Fixed: %d parameters, the stem and stages 1 to %d (%s ... %s)',
                         len(self.frozen), args.freeze_stages, self.frozen[0], self.frozen[-1])
        if begin_epoch >= args.num_epochs:
            raise UsageError('--load-epoch %d: the run already has %d of --num-epochs %d'
                             % (args.load_epoch, begin_epoch, args.num_epochs))
        self.start_log(begin_epoch, begin_batch)
        self.curves = tensorboard.open_curves(args, self.epoch_size, self.rank, begin_epoch,
                                              begin_batch)
        try:
            return self.train_epochs(begin_epoch, begin_batch, arg_params, aux_params, states,
                                     averaged)
        finally:  # after errors, Ctrl-C and SIGTERM too
            self.curves.close()
            self.curves = tensorboard.NoCurves()

    def write_record(self, **record):
        """A record of the JSON log, and its scalars in the TensorBoard event file."""
        self.log.write(**record)
        self.curves.write(record)

    def start_module(self, begin_num_update, arg_params=None, aux_params=None, states=None,
                     averaged=None):
        """The Module to train from update `begin_num_update` with these parameters and
        optimizer state (None: fresh), with --model-ema's average (from `averaged`) and the
        teacher bound."""
        per_worker = self.args.batch_size // self.num_workers
        module = self.build_module((per_worker,) + self.image_shape, arg_params, aux_params,
                                   begin_num_update)
        if states:
            module.load_optimizer_states(states)
        if self.args.model_ema:
            self.average = self.weight_average(module, averaged)
        if self.teacher is not None:
            self.teacher.bind(per_worker, self.contexts)
        return module

    def train_epochs(self, begin_epoch, begin_batch, arg_params, aux_params, states,
                     averaged=None):
        """run()'s epochs, from batch `begin_batch` of epoch `begin_epoch`; `averaged`: the
        moving average the checkpoint resumed saved; returns the last epoch's record."""
        args = self.args
        module = self.start_module(begin_epoch * self.epoch_size + begin_batch, arg_params,
                                   aux_params, states, averaged)
        if self.kv is not None:
            logging.info('Worker %d of %d (kvstore %s): reading part %d of %d of %s',
                         self.rank, self.num_workers, self.kv.type, self.rank, self.num_workers,
                         'synthetic data' if args.benchmark else args.data_train)
        logging.info('Training %s on %s: %d epochs of %d batches of %d, from epoch %d%s',
                     args.network, ', '.join(str(c) for c in self.contexts), args.num_epochs,
                     self.epoch_size, args.batch_size, begin_epoch,
                     ' batch %d' % begin_batch if begin_batch else '')
        train_metric = make_metrics(args.top_k, self.soft_targets)
        val_metric = make_metrics(args.top_k)
        run_start = time.time()
        record = {}
        stop = {'signum': None}

        def request_stop(signum, frame):
            stop['signum'] = signum
            for other, handler in previous.items():  # a second signal stops at once
                signal.signal(other, handler)
        previous = {s: signal.signal(s, request_stop) for s in self.stop_signals()}
        try:
            for epoch in range(begin_epoch, args.num_epochs):
                skip = begin_batch if epoch == begin_epoch else 0
                train_values, speed = self.train_epoch(module, epoch, skip, train_metric, stop)
                record = {'event': 'epoch', 'epoch': epoch + 1, 'batches': self.epoch_size,
                          'images_per_sec': speed, 'cpu_cores': len(os.sched_getaffinity(0)),
                          'wall_time': time.time() - run_start,
                          'lr': self.learning_rate((epoch + 1) * self.epoch_size - 1)}
                record.update({'train_' + k: v for k, v in train_values.items()})
                if args.data_val and not args.benchmark:
                    val_values = evaluate(module, self.val_iter(), val_metric,
                                          args.num_classes, '--data-val %s' % args.data_val)
                    record.update({'val_' + k: v for k, v in val_values.items()})
                    logging.info('Epoch[%d] Validation %s', epoch + 1,
                                 format_metrics(val_values))
                    if self.average is not None:
                        val_values = self.evaluate_average(val_metric)
                        record.update({'val_ema_' + k: v for k, v in val_values.items()})
                        logging.info('Epoch[%d] Validation of the moving average %s',
                                     epoch + 1, format_metrics(val_values))
                if not params_finite(module):
                    raise NonFinite('a parameter became NaN or infinite in epoch %d'
                                    % (epoch + 1))
                if self.kv is not None:
                    record['params_sha1'] = params_digest(module)
                    logging.info('Epoch[%d] Worker %d of %d: parameters sha1 %s', epoch + 1,
                                 self.rank, self.num_workers, record['params_sha1'])
                self.write_record(**record)
                self.curves.histograms(module, epoch + 1)
                if (epoch + 1) % args.save_period == 0 or epoch + 1 == args.num_epochs:
                    self.save(module, epoch + 1)
        except Interrupted as interrupt:
            logging.warning('%s in epoch %d after batch %d: saving a checkpoint',
                            signal.Signals(interrupt.signum).name, interrupt.args[0] + 1,
                            interrupt.args[1])
            self.save(module, *interrupt.args)
            raise
        finally:
            for signum, handler in previous.items():
                if signal.getsignal(signum) is request_stop:
                    signal.signal(signum, handler)
        if 'val_top1' in record:
            logging.info('Final validation accuracy: top-1 %.4f%s after %d epochs%s',
                         record['val_top1'], ', top-%d %.4f' % (args.top_k, record['val_topk'])
                         if 'val_topk' in record else '', args.num_epochs,
                         '; moving average top-1 %.4f' % record['val_ema_top1']
                         if 'val_ema_top1' in record else '')
        return record

    def train_step(self, module, batch, epoch, nbatch, metric):
        """Train on batch `nbatch` of `epoch` (from `batches`): its labels checked, the
        soft targets made (`training_batch`), one update, the moving average's step and the
        running metrics."""
        args = self.args
        if not args.benchmark:  # before the batch can reach an update
            check_labels(batch, args.num_classes, 'batch %d of epoch %d of --data-train %s'
                         % (nbatch + 1, epoch + 1, args.data_train))
        trained = self.training_batch(batch, epoch, nbatch)
        module.forward_backward(trained)
        module.update()
        if self.average is not None:
            self.average.update(module)
        if self.soft_targets:
            update_soft_metric(metric, trained.label[0], module.get_outputs())
        else:
            module.update_metric(metric, batch.label)

    def train_epoch(self, module, epoch, skip, metric, stop):
        """One epoch from batch `skip`; returns (train metric values, images/s)."""
        args = self.args
        metric.reset()
        start = time.time()
        seen = 0
        for nbatch, batch in self.batches(epoch, skip):
            self.train_step(module, batch, epoch, nbatch, metric)
            seen += args.batch_size
            values = metric_values(metric)
            if not math.isfinite(values['loss']):
                raise NonFinite('the loss became %s in epoch %d at batch %d'
                                % (values['loss'], epoch + 1, nbatch + 1))
            if stop['signum'] is not None:
                raise Interrupted(epoch, nbatch + 1, stop['signum'])
            if (nbatch + 1) % args.disp_batches == 0 or nbatch + 1 == self.epoch_size:
                if not params_finite(module):
                    raise NonFinite('a parameter became NaN or infinite in epoch %d at '
                                    'batch %d' % (epoch + 1, nbatch + 1))
                speed = seen / (time.time() - start)
                eta = (self.epoch_size - nbatch - 1) * args.batch_size / speed
                logging.info('Epoch[%d] Batch [%d/%d] Speed: %.1f samples/sec ETA %s %s',
                             epoch + 1, nbatch + 1, self.epoch_size, speed,
                             format_seconds(eta), format_metrics(values))
                self.write_record(event='batch', epoch=epoch + 1, batch=nbatch + 1,
                                  images_per_sec=speed, **{'train_' + k: v
                                                           for k, v in values.items()})
        elapsed = time.time() - start
        logging.info('Epoch[%d] Train %s Time %.1fs', epoch + 1,
                     format_metrics(metric_values(metric)), elapsed)
        return metric_values(metric), seen / max(elapsed, 1e-9)


def test_io(trainer):
    """--test-io 1: read one epoch of training data; returns a record of the speed."""
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
    return {'event': 'test_io', 'images': seen, 'batches': trainer.epoch_size,
            'images_per_sec': speed}
