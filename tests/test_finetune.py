"""Fine-tuning (train_resnet.py --pretrained, --freeze-stages, --backbone-lr-mult): a
Fashion-MNIST checkpoint of 10 classes fine-tuned on the bundled data's first 5 classes."""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from conftest import ROOT
import symbols
import train_resnet
from mxresnet import checkpoint, finetune, log
from mxresnet.errors import UsageError

TRAIN = os.path.join(ROOT, 'train_resnet.py')
SYNSET = os.path.join(ROOT, 'data', 'synset.txt')
FIVE = ['--num-examples', '256', '--batch-size', '64', '--data-nthreads', '1',
        '--disp-batches', '100', '--lr', '0.1']


@pytest.fixture(scope='module')
def pretrained(tiny_checkpoint):
    """(prefix, epoch) of a ResNet-20 trained on the 10 classes (conftest)."""
    return tiny_checkpoint


@pytest.fixture(scope='module')
def five_classes(tmp_path_factory):
    """The bundled train and val records of classes 0-4, with a synset of their names."""
    folder = tmp_path_factory.mktemp('five')
    with open(SYNSET) as f:
        names = [line.strip() for line in f if line.strip()][:5]
    paths = {}
    for split in ('train', 'val'):
        source = mx.recordio.MXIndexedRecordIO(
            os.path.join(ROOT, 'data', 'fashion-mnist-%s.idx' % split),
            os.path.join(ROOT, 'data', 'fashion-mnist-%s.rec' % split), 'r')
        base = str(folder / ('five_%s' % split))
        target = mx.recordio.MXIndexedRecordIO(base + '.idx', base + '.rec', 'w')
        kept = 0
        for key in source.keys:
            record = source.read_idx(key)
            if mx.recordio.unpack(record)[0].label < 5:
                target.write_idx(kept, record)
                kept += 1
        target.close()
        paths[split] = base + '.rec'
    (folder / 'five_synset.txt').write_text('\n'.join(names) + '\n')
    return paths['train'], paths['val'], names


def finetune_args(pretrained, five_classes, prefix, *extra):
    train_rec, val_rec, _ = five_classes
    return FIVE + ['--pretrained', '%s:%d' % pretrained, '--data-train', train_rec,
                   '--data-val', val_rec, '--model-prefix', prefix] + list(extra)


def params_of(prefix, epoch):
    return {k: v.asnumpy() for k, v in mx.nd.load('%s-%04d.params' % (prefix, epoch)).items()}


def test_transfer_loads_everything_but_the_new_classifier(pretrained):
    sym = symbols.get_symbol('resnet', num_classes=5, num_layers=20, image_shape='1,28,28')
    shapes = dict(zip(sym.list_arguments(), sym.infer_shape(data=(1, 1, 28, 28))[0]))
    shapes.update(zip(sym.list_auxiliary_states(), sym.infer_shape(data=(1, 1, 28, 28))[2]))
    del shapes['data'], shapes['softmax_label']
    arg_params, aux_params, new = finetune.transfer(pretrained, sym, shapes)
    saved = params_of(*pretrained)
    assert new == ['fc1_bias', 'fc1_weight']
    assert sorted(arg_params) == sorted(k for k in sym.list_arguments()
                                        if k not in ('data', 'softmax_label') and k not in new)
    assert sorted(aux_params) == sorted(sym.list_auxiliary_states())
    for name, value in arg_params.items():
        assert np.array_equal(value.asnumpy(), saved['arg:' + name])
    for name, value in aux_params.items():
        assert np.array_equal(value.asnumpy(), saved['aux:' + name])
    # The same class count keeps the classifier; --layer-before-fullc renews it anyway.
    same = symbols.get_symbol('resnet', num_classes=10, num_layers=20, image_shape='1,28,28')
    same_shapes = dict(shapes, fc1_weight=(10, 64), fc1_bias=(10,))
    assert finetune.transfer(pretrained, same, same_shapes)[2] == []
    assert finetune.transfer(pretrained, same, same_shapes, 'flatten0')[2] == \
        ['fc1_bias', 'fc1_weight']
    # As many classes but other ones (both synsets known): a new classifier too.
    with open(SYNSET) as f:
        names = [line.strip() for line in f if line.strip()]
    assert finetune.transfer(pretrained, same, same_shapes, synset=names)[2] == []
    digits = [str(d) for d in range(10)]
    assert finetune.transfer(pretrained, same, same_shapes, synset=digits)[2] == \
        ['fc1_bias', 'fc1_weight']


def test_finetune_with_a_new_class_count(pretrained, five_classes, tmp_path):
    """10 -> 5 classes: the run says what it loaded, starts from the pretrained weights (at
    backbone rate 0 they stay exactly them), learns the new classifier, and its checkpoint
    records the new synset, the pretrained source and the pretrained normalisation."""
    prefix = str(tmp_path / 'tuned')
    result = subprocess.run([sys.executable, TRAIN] + finetune_args(
        pretrained, five_classes, prefix, '--num-epochs', '2', '--backbone-lr-mult', '0'),
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    sym = symbols.get_symbol('resnet', num_classes=5, num_layers=20, image_shape='1,28,28')
    assert 'Pretrained %s-0001: loaded %d parameters and %d BatchNorm statistics; ' \
        're-initialised fc1_bias, fc1_weight; ignored nothing' % (
            pretrained[0], len(sym.list_arguments()) - 4,
            len(sym.list_auxiliary_states())) in result.stdout
    saved, tuned = params_of(*pretrained), params_of(prefix, 2)
    for name, value in tuned.items():
        if name.startswith('arg:') and not name.startswith('arg:fc1'):
            assert np.array_equal(value, saved[name]), name
    assert tuned['arg:fc1_weight'].shape == (5, 64)
    epochs = log.read_epochs(prefix + '-log.jsonl')
    assert epochs[-1]['train_loss'] < epochs[0]['train_loss']   # the new classifier learns
    meta = checkpoint.read_metadata(prefix)
    source = checkpoint.read_metadata(pretrained[0])
    assert meta['num_classes'] == 5 and meta['synset'] == five_classes[2]
    assert meta['pretrained'] == '%s:%d' % pretrained
    assert (meta['mean'], meta['std']) == (source['mean'], source['std'])
    run, = [r for r in log.read_records(prefix + '-log.jsonl') if r['event'] == 'run']
    assert (run['pretrained'], run['freeze_stages'], run['backbone_lr_mult']) == \
        ('%s:%d' % pretrained, 0, 0.0)


def test_fine_tuned_checkpoint_scores_predicts_and_exports_with_its_synset(
        pretrained, five_classes, tmp_path, capsys):
    from tools import predict, score
    prefix = str(tmp_path / 'tuned')
    train_resnet.run(finetune_args(pretrained, five_classes, prefix, '--num-epochs', '1'))
    assert score.main(['--model', prefix, '--epoch', '1', '--data-val', five_classes[1],
                       '--json', str(tmp_path / 'score.json')]) == 0
    with open(str(tmp_path / 'score.json')) as f:
        assert json.load(f)['names'] == five_classes[2]
    capsys.readouterr()
    sample = os.path.join(ROOT, 'data', 'samples')
    images = sorted(os.path.join(sample, n) for n in os.listdir(sample))[:2]
    assert predict.main(['--model', prefix, '--epoch', '1', '--top-k', '5'] + images) == 0
    out = capsys.readouterr().out
    assert any(name in out for name in five_classes[2])
    assert not any(name in out for name in ('Sandal', 'Bag', 'Ankle boot', 'Sneaker'))
    from tools import export
    output = str(tmp_path / 'gluon')
    assert export.main(['--model', prefix, '--epoch', '1', '--format', 'gluon',
                        '-o', output]) == 0
    with open(output + '-preprocess.json') as f:
        assert json.load(f)['synset'] == five_classes[2]


def test_freeze_stages_keeps_the_stem_and_early_stages_fixed(pretrained, five_classes,
                                                             tmp_path):
    prefix = str(tmp_path / 'frozen')
    train_resnet.run(finetune_args(pretrained, five_classes, prefix, '--num-epochs', '1',
                                   '--freeze-stages', '2'))
    saved, tuned = params_of(*pretrained), params_of(prefix, 1)
    sym = symbols.get_symbol('resnet', num_classes=5, num_layers=20, image_shape='1,28,28')
    frozen = finetune.frozen_names(sym, 2)
    assert frozen[:3] == ['bn_data_gamma', 'bn_data_beta', 'conv0_weight']
    assert all(not name.startswith('stage3') for name in frozen)
    for name in frozen:
        assert np.array_equal(tuned['arg:' + name], saved['arg:' + name]), name
    moved = [name for name in tuned if name.startswith('arg:stage3') and
             not np.array_equal(tuned[name], saved[name])]
    assert moved, 'stage 3 did not train'


def test_mxnet_fine_tune_flag_names(pretrained, five_classes, tmp_path):
    args = FIVE + ['--pretrained-model', pretrained[0], '--pretrained-epoch', '1']
    parsed = train_resnet.build_parser().parse_args(args)
    assert finetune.parse_pretrained(parsed) == pretrained
    parsed = train_resnet.build_parser().parse_args(FIVE + ['--pretrained', pretrained[0]])
    assert finetune.parse_pretrained(parsed) == pretrained   # the last complete one


@pytest.mark.parametrize('extra, expected', [
    (['--pretrained', 'MISSING'], '--pretrained MISSING: no checkpoint with this prefix'),
    (['--pretrained', 'PRETRAINED:7'], '--pretrained 7: no checkpoint'),
    (['--pretrained', 'PRETRAINED', '--num-layers', '32'],
     'has no stage1_unit4_bn1_beta: it is not a checkpoint of this network (it is --network '
     'resnet --num-layers 20)'),
    (['--pretrained', 'PRETRAINED', '--num-layers', '14'],
     'has 30 parameters this network lacks (stage1_unit3_bn1_beta ...): it is not a '
     'checkpoint of this network (it is --network resnet --num-layers 20)'),
    (['--pretrained', 'PRETRAINED', '--image-shape', '3,28,28', '--rgb-mean', '0,0,0',
      '--rgb-std', '1,1,1'], 'bn_data_beta has shape (1,) there but (3,) in this network'),
    (['--pretrained', 'PRETRAINED', '--freeze-stages', '4'],
     '--freeze-stages 4: the network has 3 stages'),
    (['--pretrained', 'PRETRAINED', '--layer-before-fullc', 'nowhere'],
     '--layer-before-fullc nowhere: no such layer'),
    (['--pretrained-epoch', '1'], '--pretrained-epoch 1 needs --pretrained-model'),
    (['--pretrained', 'PRETRAINED', '--backbone-lr-mult', '-1'],
     '--backbone-lr-mult -1.0: expected a number from 0'),
])
def test_bad_fine_tuning_input_is_one_line(pretrained, five_classes, tmp_path, extra,
                                           expected):
    tokens = {'MISSING': str(tmp_path / 'nothing'), 'PRETRAINED': pretrained[0],
              'PRETRAINED:7': pretrained[0] + ':7'}
    train_rec, val_rec, _ = five_classes
    result = subprocess.run(
        [sys.executable, TRAIN] + FIVE + ['--data-train', train_rec, '--num-epochs', '1',
                                          '--model-prefix', str(tmp_path / 'm')] +
        [tokens.get(a, a) for a in extra], cwd=ROOT, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr
    assert expected.replace('MISSING', tokens['MISSING']) in lines[0], lines[0]
    assert 'Epoch[' not in result.stdout


def test_classifier_and_stage_names_of_every_network():
    for network, layers, shape in (('resnet', 20, '3,28,28'), ('resnet-v1', 20, '3,32,32'),
                                   ('resnext', 50, '3,224,224'), ('plain', 20, '3,32,32')):
        sym = symbols.get_symbol(network, num_classes=7, num_layers=layers, image_shape=shape)
        assert finetune.classifier_names(sym) == ['fc1_bias', 'fc1_weight'], network
        count = finetune.stage_count(sym)
        assert count in (3, 4), network
        frozen = finetune.frozen_names(sym, count)
        assert 'fc1_weight' not in frozen and frozen, network
        with pytest.raises(UsageError):
            finetune.frozen_names(sym, count + 1)
