"""`avstack train` on rosbag2 logs: preprocessing into a cache through the live perception code, reuse, errors."""

import json

from avstack.cli import main
from avstack.synthetic.bag import SyntheticBagSpec, write_synthetic_bag

from bagtools import SMALL_SCENE


def test_train_from_a_bag_writes_a_checkpoint_and_reuses_its_cache(tmp_path, capsys):
    bag = write_synthetic_bag(tmp_path / 'drive', SyntheticBagSpec(duration_s=6.0), SMALL_SCENE)
    arguments = ['train', '--data', str(tmp_path), '--out', str(tmp_path / 'run' / 'ckpt'), '--epochs', '1',
                 '--batch-size', '4', '--max-steps', '2', '--cache', str(tmp_path / 'cache')]
    assert main(arguments) == 0
    first = capsys.readouterr().out
    # 6 s of camera at 10 Hz, of which the last 4 s have no full planning horizon of odometry after them
    assert f'{bag}: ' in first and 'preprocessed' in first
    frames = int(first.split(f'{bag}: ')[1].split()[0])
    assert 15 <= frames <= 21
    document = json.loads((tmp_path / 'run' / 'ckpt' / 'config.json').read_text())
    assert document['training']['preset'] == 'tiny' and document['training']['data'] == [str(bag)]
    assert (tmp_path / 'run' / 'ckpt' / 'model.safetensors').is_file()
    assert (tmp_path / 'run' / 'ckpt' / 'params.yaml').is_file()
    assert main(arguments) == 2   # the checkpoint directory is not empty now
    assert 'is not empty' in capsys.readouterr().err
    assert main(arguments + ['--force']) == 0
    assert f'{bag}: {frames} frames (cached' in capsys.readouterr().out
    # fine-tuning starts from the checkpoint's weights; a different architecture is refused in one line
    tuned = ['train', '--data', str(bag), '--out', str(tmp_path / 'run' / 'tuned'), '--epochs', '1',
             '--max-steps', '1', '--init', str(tmp_path / 'run' / 'ckpt'), '--cache', str(tmp_path / 'cache')]
    assert main(tuned) == 0
    assert json.loads((tmp_path / 'run' / 'tuned' / 'config.json').read_text())['training']['init'] == str(
        tmp_path / 'run' / 'ckpt')
    assert main(tuned + ['--preset', 'small', '--force']) == 2
    assert 'differs from the one being trained' in capsys.readouterr().err


def test_train_without_bags_or_with_a_broken_one_says_so_in_one_line(tmp_path, capsys):
    assert main(['train', '--data', str(tmp_path), '--out', str(tmp_path / 'ckpt')]) == 2
    assert 'no bags found' in capsys.readouterr().err
    assert not (tmp_path / 'ckpt').exists()   # a failed command leaves no partial output (once params.yaml)
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'metadata.yaml').write_text('rosbag2_bagfile_information: {version: 9')
    assert main(['train', '--data', str(broken), '--out', str(tmp_path / 'ckpt'), '--cache', str(tmp_path / 'c')]) == 2
    error = capsys.readouterr().err
    assert error.startswith('avstack train: ') and error.count('\n') == 1
    assert not (tmp_path / 'ckpt').exists()
