"""experiments/fashion_mnist.py: the recipe it runs, resuming, and the report it writes."""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_experiment(name, tmp_path, monkeypatch):
    """experiments/NAME.py as a module, its runs and docs folders under tmp_path."""
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(ROOT, 'experiments', name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, 'RUNS_DIR', str(tmp_path / 'runs'))
    monkeypatch.setattr(module, 'DOCS', str(tmp_path / 'docs'))
    if hasattr(module, 'PARKED'):
        monkeypatch.setattr(module, 'PARKED', str(tmp_path / 'parked'))
    return module


@pytest.fixture
def experiment(tmp_path, monkeypatch):
    return load_experiment('fashion_mnist', tmp_path, monkeypatch)


def flag(command, name):
    return command[command.index(name) + 1]


@pytest.mark.parametrize('name,epochs,steps', [('resnet-20', 30, '15,23'),
                                                ('plain-56', 4, '2,3')])
def test_train_command_is_the_papers_recipe(experiment, name, epochs, steps):
    command = experiment.train_command(name, epochs)
    network, depth = experiment.RUNS[name]
    assert (flag(command, '--network'), flag(command, '--num-layers')) == (network, str(depth))
    assert flag(command, '--lr-step-epochs') == steps
    assert flag(command, '--num-epochs') == str(epochs)
    assert (flag(command, '--lr'), flag(command, '--wd'), flag(command, '--mom')) == \
        ('0.1', '1e-4', '0.9')
    assert (flag(command, '--pad-size'), flag(command, '--random-crop')) == ('4', '1')
    assert flag(command, '--fill-value') == '0'  # black, the images' background
    assert flag(command, '--random-mirror') == '1'
    assert ('--shortcut' in command) == (network == 'resnet-v1')
    assert '--load-epoch' not in command


def test_flips_are_an_option_with_their_own_folders(experiment):
    command = experiment.train_command('resnet-20', 4, mirror=0)
    assert flag(command, '--random-mirror') == '0'
    assert flag(command, '--model-prefix') == os.path.join(
        experiment.RUNS_DIR, 'resnet-20-4ep-nomirror', 'model')
    assert experiment.run_dir('resnet-20', 4) == os.path.join(experiment.RUNS_DIR,
                                                              'resnet-20-4ep')


def test_regularised_recipe_overrides_the_paper_in_its_own_folders(experiment):
    import train_resnet
    command = experiment.train_command('resnet-20', 30, recipe='regularised')
    assert flag(command, '--model-prefix') == os.path.join(
        experiment.RUNS_DIR, 'resnet-20-30ep-regularised', 'model')
    args = train_resnet.build_parser().parse_args(command[2:])
    assert (args.random_erasing, args.label_smoothing, args.wd, args.lr_schedule) == \
        (0.5, 0.1, 5e-4, 'cosine')
    assert len(set(command[2::2])) == len(command[2::2])  # each flag once
    assert '--lr-step-epochs' not in command
    assert (args.lr, args.mom, args.pad_size, args.num_epochs) == (0.1, 0.9, 4, 30)
    assert experiment.run_dir('resnet-20', 4, 0, 'regularised').endswith(
        'resnet-20-4ep-nomirror-regularised')
    b64 = experiment.train_command('resnet-20', 30, recipe='regularised-b64')
    args = train_resnet.build_parser().parse_args(b64[2:])
    assert (args.batch_size, args.lr, args.random_erasing, args.wd) == (64, 0.05, 0.5, 5e-4)
    match = experiment.RUN_FOLDER.match('resnet-20-30ep-regularised-b64')
    assert match.group(3) == '-regularised-b64'


def test_tricks_recipe_adds_the_switches_of_the_training_recipe(experiment):
    import train_resnet
    command = experiment.train_command('resnet-20', 36, mirror=0, recipe='tricks')
    assert os.path.dirname(flag(command, '--model-prefix')).endswith(
        'resnet-20-36ep-nomirror-tricks')
    args = train_resnet.build_parser().parse_args(command[2:])
    assert (args.no_wd, args.last_gamma, args.model_ema, args.model_ema_decay) == \
        (True, True, True, 0.999)
    assert (args.random_erasing, args.label_smoothing, args.wd, args.lr_schedule) == \
        (0.5, 0.1, 5e-4, 'cosine')
    assert True not in command
    assert experiment.RUN_FOLDER.match('resnet-20-36ep-nomirror-tricks').group(3) == '-tricks'


def test_each_ablation_takes_out_one_ingredient_of_the_tricks_recipe(experiment):
    import train_resnet
    parse = train_resnet.build_parser().parse_args
    full = parse(experiment.train_command('resnet-20', 12, mirror=0, recipe='tricks')[2:])
    expected = {'erasing': ('random_erasing', 0.0), 'smoothing': ('label_smoothing', 0.0),
                'wd5e-4': ('wd', 1e-4), 'cosine': ('lr_schedule', 'step'),
                'no-wd': ('no_wd', False), 'last-gamma': ('last_gamma', False),
                'ema': ('model_ema', False)}
    assert set(expected) == set(experiment.INGREDIENTS)
    for ingredient, (key, value) in expected.items():
        recipe = 'tricks-minus-' + ingredient
        command = experiment.train_command('resnet-20', 12, mirror=0, recipe=recipe)
        args = parse(command[2:])
        changed = {k for k, v in vars(args).items() if v != getattr(full, k)}
        assert getattr(args, key) == value, ingredient
        assert changed <= {key, 'model_prefix', 'lr_step_epochs', 'lr_factor',
                           'model_ema_decay'}, (ingredient, changed)
        assert experiment.RUN_FOLDER.match(experiment.run_name(
            'resnet-20', 12, 0, recipe)).group(3) == '-' + recipe
    cosine = parse(experiment.train_command('resnet-20', 12, mirror=0,
                                            recipe='tricks-minus-cosine')[2:])
    assert (cosine.lr_step_epochs, cosine.lr_factor) == ('6,9', 0.1)


def test_ablation_trains_the_recipe_each_cut_and_flips(experiment, monkeypatch):
    calls = []
    monkeypatch.setattr(experiment, 'train_runs', lambda runs, jobs:
                        calls.append((runs, jobs)) or 0)
    monkeypatch.setattr(experiment, 'report', lambda: 0)
    assert experiment.main(['ablation', '--epochs', '3', '--jobs', '2']) == 0
    (runs, jobs), = calls
    assert jobs == 2
    assert runs[0] == ('resnet-20', 3, 0, 'tricks') and runs[-1] == ('resnet-20', 3, 1, 'tricks')
    assert [r[3] for r in runs[1:-1]] == ['tricks-minus-' + i for i in experiment.INGREDIENTS]


def test_train_runs_plans_only_the_unfinished_runs(experiment, monkeypatch):
    plans = []
    monkeypatch.setattr(experiment, 'side_by_side', lambda plan, jobs: plans.append(plan()))
    write_log(experiment.run_dir('resnet-20', 2, mirror=0, recipe='tricks'), [(0.3, 0.2)] * 2)
    write_log(experiment.run_dir('plain-20', 2), [(0.3, 0.2)])
    experiment.train_runs([('resnet-20', 2, 0, 'tricks'), ('plain-20', 2, 1, 'paper'),
                           ('resnet-56', 2, 1, 'paper')], 1)
    (plan,) = plans
    assert [os.path.basename(folder) for folder, _ in plan] == ['plain-20-2ep', 'resnet-56-2ep']
    assert [command for _, command in plan] == [experiment.train_command('plain-20', 2),
                                                experiment.train_command('resnet-56', 2)]


# A stand-in for train_resnet.py in side_by_side's tests: records where it ran, then waits
# for the file named in argv[2] (up to a minute: then NAME.timeout, exit 1) and exits with
# status argv[3].
FAKE_RUN = """
import json, os, sys, time
folder, wait_for, status = sys.argv[1], sys.argv[2], int(sys.argv[3])
others_done = [f for f in os.listdir(os.path.dirname(folder)) if f.endswith('.done')]
with open(folder + '.json', 'w') as f:
    json.dump({'cores': sorted(os.sched_getaffinity(0)), 'pid': os.getpid(),
               'threads': os.environ.get('OMP_NUM_THREADS'), 'others_done': others_done}, f)
deadline = time.time() + 60
while wait_for != '-' and not os.path.exists(wait_for):
    if time.time() > deadline:
        open(folder + '.timeout', 'w').close()
        sys.exit(1)
    time.sleep(0.05)
open(folder + '.done', 'w').close()
sys.exit(status)
"""


def fake_plan(tmp_path, runs):
    """side_by_side's plan of fake runs {name: (file it waits for or '-', exit status)}: each
    is to do until it has written NAME.done."""
    base = tmp_path / 'fake'
    base.mkdir(exist_ok=True)

    def plan():
        return [(str(base / name), [sys.executable, '-c', FAKE_RUN, str(base / name),
                                    wait_for, str(status)])
                for name, (wait_for, status) in runs.items()
                if not (base / (name + '.done')).exists()]
    return base, plan


def ran(base, name):
    with open(str(base / (name + '.json'))) as f:
        return json.load(f)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason='needs two cores')
def test_side_by_side_runs_jobs_at_a_time_each_on_its_own_cores(experiment, tmp_path):
    cores = sorted(os.sched_getaffinity(0))
    base = tmp_path / 'fake'
    # a and b each wait for the other to have started: they can only end side by side
    base, plan = fake_plan(tmp_path, {'a': (str(base / 'b.json'), 0),
                                      'b': (str(base / 'a.json'), 0), 'c': ('-', 0)})
    assert experiment.side_by_side(plan, 2) == 0
    a, b, c = (ran(base, name) for name in 'abc')
    assert set(a['cores']).isdisjoint(b['cores'])
    assert sorted(a['cores'] + b['cores']) == cores[:2 * (len(cores) // 2)]
    assert a['threads'] == b['threads'] == str(len(cores) // 2)
    assert c['others_done'], 'a third run started while two were running'
    assert c['cores'] in (a['cores'], b['cores'])


def test_side_by_side_one_job_runs_in_the_foreground_on_every_core(experiment, tmp_path):
    base, plan = fake_plan(tmp_path, {'a': ('-', 0), 'b': ('-', 0)})
    assert experiment.side_by_side(plan, 1) == 0
    assert ran(base, 'a')['cores'] == sorted(os.sched_getaffinity(0))
    assert ran(base, 'b')['others_done'] == ['a.done']
    assert not (base / 'a' / 'train.out').exists()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason='needs two cores')
def test_side_by_side_a_failed_run_stops_the_others(experiment, tmp_path, capsys):
    base = tmp_path / 'fake'
    # b waits for a file nobody writes; a waits until b has started, then fails
    base, plan = fake_plan(tmp_path, {'a': (str(base / 'b.json'), 3),
                                      'b': (str(base / 'never'), 0)})
    assert experiment.side_by_side(plan, 2) == 3
    b = ran(base, 'b')
    with pytest.raises(ProcessLookupError):
        os.kill(b['pid'], 0)    # terminated and reaped, not left running
    assert not (base / 'b.done').exists() and not (base / 'b.timeout').exists()
    error = capsys.readouterr().err
    assert 'failed (exit status 3): %s' % (base / 'a') in error
    assert str(base / 'a' / 'train.out') in error


def test_sigterm_stops_side_by_side_and_its_runs(tmp_path):
    base = tmp_path / 'fake'
    base.mkdir()
    runner = '''
import sys
sys.path.insert(0, %r)
import fashion_mnist
def plan():
    return [(%r + '/' + name, [sys.executable, '-c', %r, %r + '/' + name, %r, '0'])
            for name in 'ab']
sys.exit(fashion_mnist.side_by_side(plan, %d))
''' % (os.path.join(ROOT, 'experiments'), str(base), FAKE_RUN, str(base), str(base / 'never'),
       min(2, len(os.sched_getaffinity(0))))
    parent = subprocess.Popen([sys.executable, '-c', runner])
    deadline = time.time() + 60
    while not (base / 'a.json').exists() and time.time() < deadline:
        time.sleep(0.1)
    parent.terminate()
    assert parent.wait(timeout=60) == 128 + signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        os.kill(ran(base, 'a')['pid'], 0)
    assert not list(base.glob('*.timeout')) and not list(base.glob('*.done'))


def test_side_by_side_stops_when_a_run_ends_without_finishing(experiment, tmp_path):
    def plan():  # the run never counts as finished
        return [(str(tmp_path / 'a'), [sys.executable, '-c', 'pass'])]
    with pytest.raises(SystemExit, match='ended without its epochs'):
        experiment.side_by_side(plan, 1)


@pytest.mark.parametrize('script, argv', [('fashion_mnist', ['ablation', '--jobs']),
                                          ('fashion_mnist', ['degradation', '--jobs']),
                                          ('open_questions', ['--jobs'])])
def test_more_jobs_than_cores_is_one_line_before_any_work(script, argv, tmp_path):
    jobs = str(len(os.sched_getaffinity(0)) + 1)
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', script + '.py')]
                            + argv + [jobs], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    prog = ' '.join([script + '.py'] + argv[:-1])   # a subcommand's parser names it
    assert result.stderr.strip() == \
        '%s: error: --jobs %s: accepted 1 to %d, the cores this process may use' % (
            prog, jobs, len(os.sched_getaffinity(0)))


def test_speed_is_the_median_epochs_with_the_cores_where_the_log_has_them(experiment):
    speeds = [{'images_per_sec': v} for v in (300.0, 100.0, 200.0)]
    assert experiment.speed_text(speeds) == '200'   # logs from before cpu_cores
    assert experiment.speed_text([dict(r, cpu_cores=1) for r in speeds]) == '200 (1 core)'
    assert experiment.speed_text([dict(r, cpu_cores=c) for r, c in zip(speeds, (2, 1, 2))]) \
        == '200 (1/2 cores)'
    assert experiment.speed_text([]) == '-'
    assert experiment.speed_text(speeds[:1] + [dict(r, cpu_cores=1) for r in speeds[1:]]) \
        == '200'   # a run resumed by a version that logs it: not known for all its epochs


def test_seed_runs_in_its_own_folder(experiment):
    command = experiment.train_command('resnet-20', 30, mirror=0, recipe='regularised', seed=1)
    assert flag(command, '--seed') == '1'
    assert os.path.dirname(flag(command, '--model-prefix')).endswith(
        'resnet-20-30ep-nomirror-regularised-seed1')
    assert experiment.RUN_FOLDER.match('resnet-20-30ep-nomirror-regularised-seed1').group(4) == '1'
    assert '-seed' not in experiment.run_name('resnet-20', 30, mirror=0, recipe='regularised')


def test_a_started_run_continues_from_its_last_checkpoint(experiment):
    directory = experiment.run_dir('resnet-20', 4)
    os.makedirs(directory)
    for epoch in (1, 3, 2):
        open(os.path.join(directory, 'model-%04d.params' % epoch), 'w').close()
    assert flag(experiment.train_command('resnet-20', 4), '--load-epoch') == '3'
    assert flag(experiment.train_command('resnet-20', 4, ['--load-epoch', '1']),
                '--load-epoch') == '1'


def write_log(directory, errors, ema_errors=()):
    os.makedirs(directory)
    with open(os.path.join(directory, 'model-log.jsonl'), 'w') as f:
        for epoch, (train_error, val_error) in enumerate(errors, 1):
            record = {'event': 'epoch', 'epoch': epoch, 'train_top1': 1 - train_error,
                      'val_top1': 1 - val_error, 'images_per_sec': 100.0 * epoch,
                      'wall_time': 60.0 * epoch}
            if ema_errors:
                record['val_ema_top1'] = 1 - ema_errors[epoch - 1]
            f.write(json.dumps(record) + '\n')


def test_report_writes_the_table_and_the_degradation_figure(experiment, capsys):
    for name, final in [('plain-20', 0.10), ('plain-56', 0.12), ('resnet-20', 0.09)]:
        write_log(experiment.run_dir(name, 2), [(0.3, 0.25), (final - 0.01, final)])
    write_log(experiment.run_dir('resnet-20', 3, mirror=0), [(0.3, 0.2)] * 3)
    write_log(experiment.run_dir('resnet-20', 2, recipe='regularised'), [(0.3, 0.07)] * 2)
    write_log(experiment.run_dir('resnet-20', 2, recipe='tricks'), [(0.3, 0.07)] * 2,
              ema_errors=[0.05, 0.06])
    assert experiment.report() == 0
    table = capsys.readouterr().out
    assert ('| plain-56 | paper | 2 epochs | on | 2 | 12.00% | 12.00% | - | 11.00% | 2.0 min '
            '| 200 |') in table
    assert '| resnet-20 | tricks | 2 epochs | on | 2 | 7.00% | 7.00% | 6.00%, 5.00% |' in table
    assert '| resnet-20 | paper | 2 epochs | on | 2 | 9.00% |' in table
    assert '| resnet-20 | paper | 3 epochs | off | 3 | 20.00% |' in table
    assert '| resnet-20 | regularised | 2 epochs | on | 2 | 7.00% |' in table
    assert 'resnet-56' not in table
    assert os.path.isfile(os.path.join(experiment.DOCS, 'fashion-mnist-3ep-nomirror.png'))
    assert os.path.isfile(os.path.join(experiment.DOCS, 'fashion-mnist-2ep-regularised.png'))
    with open(os.path.join(experiment.DOCS, 'fashion-mnist.md')) as f:
        assert f.read() == table
    from PIL import Image
    with Image.open(os.path.join(experiment.DOCS, 'fashion-mnist-2ep.png')) as image:
        width, height = image.size
    assert width > 1.8 * height  # two panels side by side: plain nets, residual nets


def test_report_has_the_ablation_table_against_the_whole_recipe(experiment, capsys):
    def run(recipe, errors, ema=(), mirror=0):
        write_log(experiment.run_dir('resnet-20', 2, mirror=mirror, recipe=recipe),
                  [(0.3, e) for e in errors], ema_errors=ema)
    run('tricks', [0.10, 0.06], ema=[0.09, 0.05])
    run('tricks-minus-erasing', [0.10, 0.07], ema=[0.09, 0.0525])
    run('tricks-minus-ema', [0.10, 0.055])
    run('tricks', [0.20], ema=[0.2], mirror=1)   # under way: no difference yet
    assert experiment.report() == 0
    table = capsys.readouterr().out
    rows = {line.split(' | ')[0][2:]: line for line in table.splitlines()
            if line.startswith('| ')}
    assert rows['the recipe (`--recipe tricks --mirror 0`)'] == \
        '| the recipe (`--recipe tricks --mirror 0`) | 2 | 6.00% | 5.00% | - |'
    assert rows['`--random-erasing 0.5` -> none'].endswith('| 2 | 7.00% | 5.25% | +1.00, +0.25 |')
    assert rows['`--model-ema --model-ema-decay 0.999` -> none'].endswith(
        '| 2 | 5.50% | - | -0.50, - |')
    assert rows['`--wd 5e-4` -> `--wd 1e-4`'].endswith('| 0 | - | - | - |')
    assert rows['`--lr-schedule cosine` -> `--lr-schedule step --lr-step-epochs 1,2 '
                '--lr-factor 0.1`'].endswith('| 0 | - | - | - |')
    assert rows['flips: `--random-mirror 1`'].endswith('| 1 | 20.00% | 20.00% | - |')


def test_a_cut_run_alone_has_no_ablation_table(experiment, capsys):
    write_log(experiment.run_dir('resnet-20', 3, mirror=0, recipe='tricks-minus-last-gamma'),
              [(0.3, 0.06)] * 3, ema_errors=[0.05] * 3)
    assert experiment.report() == 0
    table = capsys.readouterr().out
    assert '| resnet-20 | tricks-minus-last-gamma | 3 epochs | off | 3 | 6.00% |' in table
    assert 'taken out' not in table


def test_report_keeps_archived_runs(experiment, capsys):
    """Runs reported once stay in the table after their folders are gone (a fresh clone);
    a run folder with fewer epochs than the archive does not replace it."""
    write_log(experiment.run_dir('resnet-56', 3), [(0.3, 0.2), (0.2, 0.15), (0.1, 0.08)])
    assert experiment.report() == 0
    archived = os.path.join(experiment.DOCS, 'logs', 'resnet-56-3ep.jsonl')
    with open(archived) as f:
        assert [json.loads(line)['epoch'] for line in f] == [1, 2, 3]
    shutil.rmtree(experiment.RUNS_DIR)
    write_log(experiment.run_dir('resnet-56', 3), [(0.5, 0.5)])  # restarted elsewhere
    write_log(experiment.run_dir('resnet-20', 3), [(0.3, 0.2), (0.2, 0.1), (0.1, 0.09)])
    capsys.readouterr()
    assert experiment.report() == 0
    table = capsys.readouterr().out
    assert '| resnet-56 | paper | 3 epochs | on | 3 | 8.00% |' in table
    assert '| resnet-20 | paper | 3 epochs | on | 3 | 9.00% |' in table
    assert os.path.isfile(os.path.join(experiment.DOCS, 'fashion-mnist-3ep.png'))


def test_a_finished_run_is_not_trained_again(experiment, capsys):
    write_log(experiment.run_dir('plain-20', 2), [(0.3, 0.25), (0.2, 0.15)])
    assert experiment.train('plain-20', 2) == 0
    assert 'already trained' in capsys.readouterr().out


def test_one_run_trains_as_a_study_of_one_so_that_sigterm_reaches_it(experiment,
                                                                     monkeypatch):
    calls = []
    monkeypatch.setattr(experiment, 'side_by_side',
                        lambda plan, jobs: calls.append((plan(), jobs)) or 0)
    assert experiment.train('resnet-56', 3, ['--data-nthreads', '2'], mirror=0,
                            recipe='tricks') == 0
    ((plan, jobs),) = calls
    assert jobs == 1 and plan == [(experiment.run_dir('resnet-56', 3, 0, 'tricks'),
                                   experiment.train_command('resnet-56', 3, ['--data-nthreads',
                                                                             '2'], 0, 'tricks'))]


def test_a_run_finished_elsewhere_is_not_trained_again(experiment, monkeypatch, capsys):
    """A fresh clone has no run folders, only the archived logs: a run they hold whole is
    done, one they hold in part is trained."""
    write_log(experiment.run_dir('resnet-20', 2, mirror=0, recipe='tricks'), [(0.3, 0.2)] * 2)
    write_log(experiment.run_dir('plain-20', 2), [(0.3, 0.2)])
    experiment.archive_logs()
    shutil.rmtree(experiment.RUNS_DIR)
    assert experiment.train('resnet-20', 2, mirror=0, recipe='tricks') == 0
    assert 'already trained' in capsys.readouterr().out
    plans = []
    monkeypatch.setattr(experiment, 'side_by_side', lambda plan, jobs: plans.append(plan()))
    experiment.train_runs([('resnet-20', 2, 0, 'tricks'), ('plain-20', 2, 1, 'paper')], 1)
    assert [os.path.basename(folder) for folder, _ in plans[0]] == ['plain-20-2ep']


def write_checkpoint_files(prefix, epoch, text):
    """The files of a complete checkpoint `epoch` with a moving average, each holding
    `text` (the experiment copies them; it does not read weights)."""
    for base in (prefix, prefix + '-ema'):
        for name in ('symbol.json', 'model.json', '%04d.params' % epoch, '%04d.states' % epoch):
            with open('%s-%s' % (base, name), 'w') as f:
                f.write(text)
        with open('%s-%04d.json' % (base, epoch), 'w') as f:
            json.dump({'epoch': epoch, 'batch': 0, 'has_ema': True, 'has_states': True}, f)
    os.remove(prefix + '-ema-%04d.states' % epoch)


def test_an_unfinished_run_parks_in_the_repository_and_continues_on_a_fresh_clone(
        experiment, capsys):
    """`park` copies an unfinished run's last complete checkpoint and its log, and removes
    the parked copy of a run since finished; with the run folders gone, `train` copies the
    parked checkpoint back and resumes from it; a folder's own checkpoint goes first."""
    directory = experiment.run_dir('resnet-20', 4, mirror=0, recipe='tricks')
    prefix = os.path.join(directory, 'model')
    write_log(directory, [(0.3, 0.2), (0.2, 0.15)])
    write_checkpoint_files(prefix, 1, 'epoch 1')
    write_checkpoint_files(prefix, 2, 'epoch 2')
    os.remove(prefix + '-0001.json')
    open(prefix + '-0003.params', 'w').close()  # a checkpoint being written
    finished = experiment.run_dir('plain-20', 2)
    write_log(finished, [(0.3, 0.2)] * 2)
    os.makedirs(os.path.join(experiment.PARKED, 'plain-20-2ep'))
    assert experiment.park_all() == 0
    out = capsys.readouterr().out
    assert 'parked resnet-20-4ep-nomirror-tricks: checkpoint 2, 2 epochs trained' in out
    assert 'removed the parked copy of plain-20-2ep: finished' in out
    assert os.listdir(experiment.PARKED) == ['resnet-20-4ep-nomirror-tricks']
    parked = os.path.join(experiment.PARKED, 'resnet-20-4ep-nomirror-tricks')
    assert sorted(os.listdir(parked)) == sorted(
        ['model-log.jsonl', 'model-symbol.json', 'model-model.json', 'model-0002.params',
         'model-0002.states', 'model-0002.json', 'model-ema-symbol.json',
         'model-ema-model.json', 'model-ema-0002.params', 'model-ema-0002.json'])
    shutil.rmtree(experiment.RUNS_DIR)  # a fresh clone
    command = experiment.train_command('resnet-20', 4, mirror=0, recipe='tricks')
    assert flag(command, '--load-epoch') == '2'
    assert 'continuing from its parked checkpoint 2' in capsys.readouterr().out
    with open(prefix + '-ema-0002.params') as f:
        assert f.read() == 'epoch 2'
    assert len(experiment.run_epochs(directory)) == 2
    write_checkpoint_files(prefix, 3, 'epoch 3')  # trained on from there
    command = experiment.train_command('resnet-20', 4, mirror=0, recipe='tricks')
    assert flag(command, '--load-epoch') == '3'
    assert 'parked' not in capsys.readouterr().out


@pytest.fixture
def digits(tmp_path, monkeypatch):
    (tmp_path / 'docs').mkdir()
    return load_experiment('finetune_digits', tmp_path, monkeypatch)


def test_digits_runs_differ_only_in_where_they_start(digits, monkeypatch):
    commands = []
    monkeypatch.setattr(digits, 'python',
                        lambda script, *args: commands.append([str(a) for a in args]))
    for name in digits.CONFIGS:
        digits.train(name, 3, 0)
    runs = dict(zip(digits.CONFIGS, commands))
    assert flag(runs['scratch'], '--num-epochs') == '3'
    assert flag(runs['scratch'], '--model-prefix') == digits.run_prefix('scratch', 3, 0)
    same = lambda command: [a for a in command if '-3ep-seed0' not in a]  # noqa: E731
    for name, command in runs.items():
        if name == 'scratch':
            assert '--pretrained' not in command
            continue
        prefix, epochs, _ = digits.PRETRAINED['60k' if '60k' in name else '10k']
        assert flag(command, '--pretrained') == '%s:%d' % (prefix, epochs)
        extra = same(command)[len(same(runs['scratch'])):]
        assert same(command)[:len(same(runs['scratch']))] == same(runs['scratch'])
        assert extra[:2] == ['--pretrained', '%s:%d' % (prefix, epochs)]
    assert flag(runs['finetune-lr0.1'], '--backbone-lr-mult') == '0.1'
    assert flag(runs['finetune-frozen2'], '--freeze-stages') == '2'


def test_digits_page_rebuilds_from_the_archived_logs(digits):
    """The committed docs/finetune-digits.md is what the archived logs give."""
    digits.report()
    with open(os.path.join(digits.DOCS, 'finetune-digits.md')) as f:
        rebuilt = f.read()
    with open(os.path.join(ROOT, 'docs', 'finetune-digits.md')) as f:
        assert rebuilt == f.read()
    assert os.path.isfile(os.path.join(digits.DOCS, 'finetune-digits.png'))


# ----------------------------------------------------------------------------- open questions
@pytest.fixture
def study(tmp_path, monkeypatch):
    module = load_experiment('open_questions', tmp_path, monkeypatch)
    # the fashion_mnist module it imported, whose park and unpark it uses
    monkeypatch.setattr(module.fashion_mnist, 'DOCS', module.DOCS)
    monkeypatch.setattr(module.fashion_mnist, 'PARKED', str(tmp_path / 'parked'))
    return module


def write_run(study, config, seed, final_error, images_per_sec=500.0):
    """A complete run's archived log whose last epoch has `final_error` (%)."""
    path = os.path.join(study.DOCS, 'logs', study.run_name(config, seed) + '.jsonl')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        for epoch in range(1, study.EPOCHS + 1):
            error = final_error + 2.0 * (study.EPOCHS - epoch)
            f.write(json.dumps({'event': 'epoch', 'epoch': epoch, 'val_top1': 1 - error / 100,
                                'train_top1': 1 - error / 100, 'images_per_sec': images_per_sec,
                                'wall_time': 100.0 * epoch}) + '\n')


def test_open_questions_runs_share_one_schedule_and_set_their_options(study):
    import train_resnet
    from mxresnet import flags
    for config, (network, depth, options, _) in study.CONFIGS.items():
        command = study.command_of(study.train_flags(config, 0))
        args = train_resnet.build_parser().parse_args(command[2:])
        assert (args.network, args.num_layers, args.num_epochs) == (network, depth,
                                                                    study.EPOCHS)
        assert (args.lr, args.wd, args.batch_size, args.lr_step_epochs) == \
            (0.1, 1e-4, 128, '4,6')
        assert args.data_train.endswith('fashion-mnist-train.rec')
        assert args.data_val.endswith('fashion-mnist-test.rec')
        assert flags.network_options(args) == dict(options, dtype='float32')
        assert len(set(command[2::2])) == len(command[2::2])   # each flag once
    assert study.param_count('resnet-20-A') == study.param_count('plain-20')   # A: no params
    assert study.param_count('resnet-20-B') - study.param_count('resnet-20-B-no-shortcut-bn') \
        == 2 * (32 + 64)


def test_open_questions_second_seed_only_where_results_are_close(study):
    errors = {config: 8.0 + i for i, config in enumerate(study.CONFIGS)}
    errors['resnet-20-B'] = errors['resnet-20-A'] + 0.2
    assert study.planned_runs() == [(config, 0) for config in study.CONFIGS]
    for config, error in errors.items():
        write_run(study, config, 0, error)
    second = [config for config, seed in study.planned_runs() if seed == 1]
    assert sorted(second) == ['resnet-20-A', 'resnet-20-B']


def test_open_questions_report_tables_and_conclusions(study):
    for config in study.CONFIGS:
        write_run(study, config, 0, 9.0)
    write_run(study, 'resnet-20-C', 0, 10.0)
    write_run(study, 'resnet-20-A', 1, 9.2)
    assert study.report() == 0
    page = open(os.path.join(study.DOCS, 'open-questions.md')).read()
    for title, configs in study.QUESTIONS:
        assert '## ' + title in page
    assert ('| resnet-20-A | option A; conv, BN, add, ReLU; ReLU (the paper) | %d | 9.10 | '
            '9.00 / 9.20 | 500 |' % study.param_count('resnet-20-A')) in page
    assert '- resnet-20-C against resnet-20-A: +0.90 points (higher error; 1 and 2 seeds).' \
        in page
    assert '- resnet-20-B against resnet-20-A: -0.10 points (within noise' in page
    assert os.path.isfile(os.path.join(study.DOCS, 'open-questions-depth.png'))


def test_open_questions_park_their_unfinished_runs(study, capsys):
    directory = os.path.dirname(study.log_path('resnet-20-B', 0))
    write_log(directory, [(0.3, 0.2)] * 3)
    write_checkpoint_files(os.path.join(directory, 'model'), 3, 'epoch 3')
    write_run(study, 'resnet-20-A', 0, 9.0)   # finished
    assert study.park() == 0
    assert 'parked oq-resnet-20-B-8ep-seed0: checkpoint 3, 3 epochs trained' \
        in capsys.readouterr().out
    assert os.listdir(study.fashion_mnist.PARKED) == ['oq-resnet-20-B-8ep-seed0']
    shutil.rmtree(study.RUNS_DIR)
    assert flag(study.command_of(study.train_flags('resnet-20-B', 0)), '--load-epoch') == '3'
    assert '--load-epoch' not in study.command_of(study.train_flags('resnet-20-C', 0))
