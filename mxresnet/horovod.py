"""`--kv-store horovod`: one process per worker, gradients summed by Horovod's allreduce.

MXNet 1.9.1's wheel has no Horovod kvstore (python/mxnet/kvstore/horovod.py came after
it): `mx.kv.create('horovod')` there returns a native single-process KVStore of that name,
rank 0 of 1. So training uses what Horovod itself offers for Module: the optimizer wrapped
in `hvd.DistributedOptimizer` (allreduce of every gradient before the update) with Module's
own kvstore off, and the parameters broadcast from rank 0 once they are set.

`HorovodStore()` initialises Horovod in a process that horovodrun (or mpirun) started.
Horovod is imported only then, never when this module is.
"""
import os

from .errors import UsageError

# Set in each process by the launchers Horovod runs under: horovodrun (gloo), Open MPI,
# MPICH/Intel MPI, PMIx.
RANK_VARIABLES = ('HOROVOD_RANK', 'OMPI_COMM_WORLD_RANK', 'PMI_RANK', 'PMIX_RANK')
LOCAL_SIZE_VARIABLES = ('HOROVOD_LOCAL_SIZE', 'OMPI_COMM_WORLD_LOCAL_SIZE',
                        'MPI_LOCALNRANKS')
INSTALL = ('pip install setuptools wheel && HOROVOD_WITH_MXNET=1 HOROVOD_WITHOUT_TENSORFLOW=1 '
           'HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 pip install '
           '--no-build-isolation horovod==0.28.1 "numpy<1.24" (docs/distributed.md, '
           '"Installing")')
START = ('horovodrun -np 2 python train_resnet.py --kv-store horovod ..., or python '
         'tools/launch.py --launcher horovod -n 2 python train_resnet.py --kv-store horovod ...')


def launched():
    """Whether this process is a rank that a Horovod launcher started."""
    return any(name in os.environ for name in RANK_VARIABLES)


def local_size():
    """How many ranks share this machine (1 outside a Horovod job)."""
    for name in LOCAL_SIZE_VARIABLES:
        try:
            return max(int(os.environ[name]), 1)
        except (KeyError, ValueError):
            continue
    return 1


def import_horovod():
    """horovod.mxnet, or a UsageError saying how to install it."""
    try:
        import horovod.mxnet as hvd
    except ImportError as err:
        raise UsageError('--kv-store horovod needs Horovod built for MXNet (%s): install it '
                         'with %s' % (str(err).splitlines()[0] if str(err) else 'not found',
                                      INSTALL))
    return hvd


class HorovodStore(object):
    """What the trainer needs of a kvstore (type, rank, num_workers), with Horovod's
    optimizer wrapper and broadcast."""

    type = 'horovod'

    def __init__(self):
        if not launched():
            raise UsageError('--kv-store horovod needs one process per worker, started by '
                             'Horovod: %s' % START)
        self.hvd = import_horovod()
        self.hvd.init()
        self.rank = self.hvd.rank()
        self.num_workers = self.hvd.size()

    def broadcast_params(self, module):
        """Give every rank rank 0's parameters and BatchNorm statistics."""
        arg_params, aux_params = module.get_params()
        self.hvd.broadcast_parameters(arg_params, root_rank=0, prefix='arg:')
        self.hvd.broadcast_parameters(aux_params, root_rank=0, prefix='aux:')
        module.set_params(arg_params, aux_params)

    def init_optimizer(self, module, optimizer):
        """Module's optimizer as Horovod's DistributedOptimizer, without a kvstore. The
        wrapper sums the gradients over the ranks and divides `rescale_grad` by their number
        (so pass the rescaling of one rank's batch)."""
        wrapped = self.hvd.DistributedOptimizer(optimizer)
        module.init_optimizer(kvstore=None, optimizer=wrapped)
        # Module gives the optimizer its index -> name map (per-name learning-rate
        # multipliers need it) by setting an attribute, which lands on the wrapper.
        optimizer.idx2name = dict(wrapped.idx2name)
