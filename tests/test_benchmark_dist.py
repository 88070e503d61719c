"""benchmarks/dist.py: its configurations and the commands it runs (the runs themselves:
docs/distributed.md, "Speed on one machine")."""
import argparse

import pytest

from benchmarks import dist


def options(**changes):
    values = dict(network='resnet', num_layers=20, image_shape='1,28,28', bundled=False,
                  batch_size=64, per_worker=False, batches=5, epochs=2)
    values.update(changes)
    return argparse.Namespace(**values)


def test_configs_are_parsed_and_bad_ones_refused():
    assert dist.config_list('local,dist_sync-2,horovod-4') == [
        ('local', 'local', 1), ('dist_sync-2', 'dist_sync', 2), ('horovod-4', 'horovod', 4)]
    for bad in ('horovod', 'dist_sync-0', 'mpi-2', 'local-2'):
        with pytest.raises(argparse.ArgumentTypeError):
            dist.config_list(bad)


def test_per_worker_batch_keeps_each_workers_share():
    args = options(per_worker=True, bundled=True)
    command = dist.job_command(args, 'horovod', 2, '/tmp/p/model')
    assert command[command.index('--launcher') + 1] == 'horovod'
    assert command[command.index('--kv-store') + 1] == 'horovod'
    assert command[command.index('--batch-size') + 1] == '128'   # 2 x 64
    assert command[command.index('--num-examples') + 1] == '640'   # 5 batches
    assert command[command.index('--data-train') + 1] == dist.BUNDLED
    local = dist.job_command(args, 'local', 1, '/tmp/p/model')
    assert local[local.index('--batch-size') + 1] == '64' and '--launcher' not in local


def test_total_batch_by_default_and_synthetic_data():
    command = dist.job_command(options(), 'dist_sync', 2, '/tmp/p/model')
    assert command[command.index('-s') + 1] == '1'
    assert command[command.index('--batch-size') + 1] == '64'
    assert command[command.index('--benchmark') + 1] == '1'
    assert dist.display_command(options(), 'dist_sync', 2).startswith(
        'python tools/launch.py -n 2 -s 1 --launcher local python train_resnet.py ')
