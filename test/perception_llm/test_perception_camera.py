"""Camera tokenizer: deterministic, sensitive to the image where it changed, any resolution, batched."""

import cv2
import numpy as np
import pytest
import torch

from avstack.synthetic.scene import SyntheticScene
from perception_llm.camera_encoder import CameraEncoder, prepare_image
from perception_llm.fusion import EncoderConfig, SensorEncoders

CFG = EncoderConfig()


@pytest.fixture(scope='module')
def encoders() -> SensorEncoders:
    return SensorEncoders.seeded(CFG)


@pytest.fixture(scope='module')
def street() -> np.ndarray:
    return SyntheticScene().camera(0.0)


def camera_tokens(encoders: SensorEncoders, rgb: np.ndarray, camera_id: int = 0) -> torch.Tensor:
    image = torch.from_numpy(prepare_image(rgb, CFG.input_width, CFG.input_height))[None]
    with torch.inference_mode():
        return encoders.encode_cameras(image, torch.tensor([camera_id]))[0]


def test_identical_images_give_identical_tokens_in_every_seeded_instance(encoders, street):
    again = SensorEncoders.seeded(CFG)
    first, second = camera_tokens(encoders, street), camera_tokens(again, street.copy())
    assert first.shape == (CFG.camera_tokens, CFG.token_dim) == (4 * 8, 64)
    assert torch.equal(first, second)


def test_tokens_change_where_the_image_changed_and_only_near_there(encoders, street):
    changed = street.copy()
    changed[:180, :160] = (255, 0, 0)             # the top-left patch of the 4 x 8 grid (180 x 160 px each)
    before = camera_tokens(encoders, street).view(4, 8, -1)
    after = camera_tokens(encoders, changed).view(4, 8, -1)
    difference = (after - before).norm(dim=-1)
    assert difference[0, 0] > 0.1, 'the patch that changed must change its token'
    assert torch.all(difference[2:, 3:] == 0), 'patches far from the change keep their tokens'


def test_the_camera_id_embedding_tells_cameras_apart(encoders, street):
    assert not torch.allclose(camera_tokens(encoders, street, 0), camera_tokens(encoders, street, 1))


@pytest.mark.parametrize('size', [(1920, 1200), (1280, 720), (640, 480), (200, 90)])
def test_any_input_resolution_gives_the_fixed_token_grid(encoders, street, size):
    rgb = cv2.resize(street, size, interpolation=cv2.INTER_AREA)
    prepared = prepare_image(rgb, CFG.input_width, CFG.input_height)
    assert prepared.shape == (3, 128, 256) and prepared.dtype == np.uint8
    tokens = camera_tokens(encoders, rgb)
    assert tokens.shape == (32, 64) and torch.isfinite(tokens).all()


def test_prepare_image_keeps_colour_order_and_is_close_to_one_step_area_filtering(street):
    prepared = prepare_image(street, CFG.input_width, CFG.input_height)
    one_step = cv2.resize(street, (CFG.input_width, CFG.input_height), interpolation=cv2.INTER_AREA)
    assert np.abs(prepared.transpose(1, 2, 0).astype(int) - one_step).mean() < 1.5
    sky = prepared[:, 5, 128]
    assert sky[2] > sky[0], 'the sky stays blue (RGB in, RGB out)'


def test_prepare_image_refuses_a_non_rgb_array():
    with pytest.raises(ValueError, match='RGB'):
        prepare_image(np.zeros((10, 10), np.uint8), 256, 128)


def test_cameras_are_batched_in_one_pass_with_the_same_result(encoders, street):
    other = np.ascontiguousarray(street[:, ::-1])
    images = torch.from_numpy(np.stack([prepare_image(rgb, 256, 128) for rgb in (street, other)]))
    with torch.inference_mode():
        batched = encoders.encode_cameras(images, torch.tensor([0, 1]))
    assert torch.allclose(batched[0], camera_tokens(encoders, street, 0), atol=1e-5)
    assert torch.allclose(batched[1], camera_tokens(encoders, other, 1), atol=1e-5)


def test_the_encoder_refuses_images_of_the_wrong_size(encoders):
    with pytest.raises(ValueError, match='prepare_image'):
        encoders.encode_cameras(torch.zeros(1, 3, 720, 1280, dtype=torch.uint8), torch.tensor([0]))


def test_patch_size_must_divide_the_input():
    with pytest.raises(ValueError, match='multiple of patch_px'):
        CameraEncoder(64, 130, 256, 16)
