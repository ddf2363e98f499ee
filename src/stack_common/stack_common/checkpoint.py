"""The checkpoint file format: ``model.safetensors`` + ``config.json``, never pickle.

``config.json`` holds ``format_version``, the model config and its hash; the
same hash is stored in the safetensors header, so a config swapped in from
another checkpoint, an edited config or a file from an incompatible version is
refused with a one-line reason. Tensors are float32 numpy arrays here; the
planner converts them to torch. This module does not import torch, so any
tool can inspect a checkpoint.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

FORMAT_VERSION = 1
# The trained checkpoint the stack ships with (see TRAINING.md beside it); nodes use it when none is configured.
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / 'default_checkpoint'
WEIGHTS_FILE = 'model.safetensors'
CONFIG_FILE = 'config.json'
PICKLE_SUFFIXES = ('.pt', '.pth', '.pkl', '.pickle', '.ckpt', '.bin')
_PICKLE_MAGIC = (b'\x80', b'PK\x03\x04')  # a pickle protocol header, or torch.save's zip container


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why in one line."""


def config_hash(config: dict) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def save_checkpoint(directory: str | Path, tensors: dict[str, np.ndarray], config: dict,
                    extra: dict | None = None) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    digest = config_hash(config)
    save_file({name: np.ascontiguousarray(value) for name, value in tensors.items()},
              str(directory / WEIGHTS_FILE),
              metadata={'format_version': str(FORMAT_VERSION), 'config_hash': digest})
    document = {'format_version': FORMAT_VERSION, 'config_hash': digest, 'config': config, **(extra or {})}
    (directory / CONFIG_FILE).write_text(json.dumps(document, indent=2, sort_keys=True) + '\n')
    return directory


def _looks_like_safetensors(head: bytes) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then the JSON header."""
    return len(head) > 8 and 0 < int.from_bytes(head[:8], 'little') < 100_000_000 and head[8:9] == b'{'


def refuse_pickle(path: Path) -> None:
    head = path.open('rb').read(16) if path.is_file() else b''
    if path.suffix in PICKLE_SUFFIXES or (not _looks_like_safetensors(head) and head.startswith(_PICKLE_MAGIC)):
        raise CheckpointError(
            f'{path}: refusing a pickle checkpoint (loading one can run arbitrary code); '
            f'give a directory with {WEIGHTS_FILE} + {CONFIG_FILE}')


def read_config(directory: str | Path) -> dict:
    """The checked ``config.json`` document of a checkpoint directory."""
    directory = Path(directory)
    refuse_pickle(directory)
    if not directory.is_dir():
        raise CheckpointError(f'{directory}: no such checkpoint directory')
    path = directory / CONFIG_FILE
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise CheckpointError(f'{path}: cannot read ({error.strerror})') from error
    except json.JSONDecodeError as error:
        raise CheckpointError(f'{path}: not valid JSON ({error.msg} at line {error.lineno})') from error
    if document.get('format_version') != FORMAT_VERSION:
        raise CheckpointError(f'{path}: format_version {document.get("format_version")!r}, '
                              f'this stack reads version {FORMAT_VERSION}')
    if config_hash(document.get('config', {})) != document.get('config_hash'):
        raise CheckpointError(f'{path}: config does not match its config_hash (edited by hand?)')
    return document


def load_checkpoint(directory: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """``(tensors, config document)``; raises :class:`CheckpointError` with a one-line reason."""
    directory = Path(directory)
    document = read_config(directory)
    weights = directory / WEIGHTS_FILE
    refuse_pickle(weights)
    try:
        with open(weights, 'rb') as handle:
            header_size = int.from_bytes(handle.read(8), 'little')
            header = json.loads(handle.read(header_size)) if 0 < header_size < 100_000_000 else None
        tensors = load_file(str(weights))
    except FileNotFoundError as error:
        raise CheckpointError(f'{weights}: missing') from error
    except (SafetensorError, OSError, ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f'{weights}: corrupt safetensors file ({str(error).splitlines()[0]})') from error
    if header is None:
        raise CheckpointError(f'{weights}: corrupt safetensors file (bad header)')
    stored = header.get('__metadata__', {}).get('config_hash')
    if stored != document['config_hash']:
        raise CheckpointError(f'{weights}: weights were saved with config {stored}, '
                              f'{CONFIG_FILE} has {document["config_hash"]}: files from different checkpoints')
    return tensors, document
