"""The checkpoint format: safetensors + config.json, hash-checked, never pickle."""

import json
import pickle

import numpy as np
import pytest

from stack_common.checkpoint import CheckpointError, load_checkpoint, read_config, save_checkpoint


def saved(tmp_path):
    tensors = {'a.weight': np.arange(6, dtype=np.float32).reshape(2, 3), 'b': np.ones(4, np.float32)}
    return save_checkpoint(tmp_path / 'ckpt', tensors, {'width': 3}), tensors


def test_round_trip(tmp_path):
    directory, tensors = saved(tmp_path)
    loaded, document = load_checkpoint(directory)
    assert document['config'] == {'width': 3}
    for name, value in tensors.items():
        np.testing.assert_array_equal(loaded[name], value)


def test_pickle_checkpoint_is_refused(tmp_path):
    path = tmp_path / 'model.pt'
    path.write_bytes(pickle.dumps({'weights': [1, 2, 3]}))
    with pytest.raises(CheckpointError, match='refusing a pickle checkpoint'):
        load_checkpoint(path)


def test_pickle_disguised_as_safetensors_is_refused(tmp_path):
    directory, _ = saved(tmp_path)
    (directory / 'model.safetensors').write_bytes(pickle.dumps({'weights': 1}, protocol=4))
    with pytest.raises(CheckpointError, match='pickle'):
        load_checkpoint(directory)


def test_corrupt_safetensors_is_one_line(tmp_path):
    directory, _ = saved(tmp_path)
    data = (directory / 'model.safetensors').read_bytes()
    (directory / 'model.safetensors').write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='corrupt safetensors') as error:
        load_checkpoint(directory)
    assert '\n' not in str(error.value)


def test_edited_config_is_refused(tmp_path):
    directory, _ = saved(tmp_path)
    document = json.loads((directory / 'config.json').read_text())
    document['config']['width'] = 4
    (directory / 'config.json').write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match='does not match its config_hash'):
        read_config(directory)


def test_config_from_another_checkpoint_is_refused(tmp_path):
    directory, tensors = saved(tmp_path)
    other = save_checkpoint(tmp_path / 'other', tensors, {'width': 5})
    (directory / 'config.json').write_text((other / 'config.json').read_text())
    with pytest.raises(CheckpointError, match='different checkpoints'):
        load_checkpoint(directory)


def test_future_format_version_is_refused(tmp_path):
    directory, _ = saved(tmp_path)
    document = json.loads((directory / 'config.json').read_text())
    document['format_version'] = 99
    (directory / 'config.json').write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match='format_version 99'):
        load_checkpoint(directory)


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match='no such checkpoint'):
        load_checkpoint(tmp_path / 'nope')


def test_a_safetensors_header_length_that_starts_like_pickle_is_not_refused(tmp_path):
    """A header of 0x580 bytes begins with 0x80 0x05, the magic of pickle protocol 5."""
    directory, _ = saved(tmp_path)
    for padding in range(0, 4000, 7):
        tensors = {'w' + 'x' * padding: np.zeros(1, np.float32)}
        save_checkpoint(directory, tensors, {'width': 3})
        head = (directory / 'model.safetensors').read_bytes()[:2]
        if head == b'\x80\x05':
            break
    assert head == b'\x80\x05'
    load_checkpoint(directory)
