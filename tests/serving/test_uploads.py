"""uploads: image bytes checked from their header before they are decoded, then decoded in memory as predict-image does."""
import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from pipeline.serving import uploads  # noqa: E402
from test_faces import face_photo  # noqa: E402
from test_server import bomb_png, jpeg, png  # noqa: E402


def test_an_upload_decodes_to_the_pixels_predict_image_reads(tmp_path):
    photo = face_photo()[0]
    (tmp_path / "face.jpg").write_bytes(jpeg(photo))
    from pipeline.serving import photos

    np.testing.assert_array_equal(uploads.decode_image(jpeg(photo)), photos.read_photo(tmp_path / "face.jpg"))
    np.testing.assert_array_equal(uploads.decode_image(png(photo)), photo)


def test_a_grey_png_decodes_to_three_channels():
    grey = cv2.cvtColor(face_photo()[0], cv2.COLOR_BGR2GRAY)
    assert uploads.decode_image(png(grey)).shape == (300, 400, 3)


@pytest.mark.parametrize("data, message", [
    (b"", "empty upload"),
    (b"GIF89a not really", "not an image file"),
    (b"hello", "not an image file"),
])
def test_bytes_that_are_not_an_image_are_a_400_naming_the_upload(data, message):
    with pytest.raises(uploads.UploadError, match=f"^x.png: {message}") as refused:
        uploads.decode_image(data, "x.png")
    assert refused.value.status == 400


def test_a_truncated_image_is_a_400():
    for data in (png(face_photo()[0])[:5000], jpeg(face_photo()[0])[:3000]):
        with pytest.raises(uploads.UploadError, match="truncated or corrupt") as refused:
            uploads.decode_image(data)
        assert refused.value.status == 400


def test_the_pixel_limit_is_the_callers():
    photo = png(face_photo()[0])                       # 400 x 300 = 120,000 pixels
    assert uploads.decode_image(photo, max_pixels=120_000).shape == (300, 400, 3)
    with pytest.raises(uploads.UploadError, match=r"400x300 = 120,000 pixels; at most 119,999"):
        uploads.decode_image(photo, max_pixels=119_999)


def test_a_decompression_bomb_is_refused_from_its_header_without_decoding(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("decoded")
    monkeypatch.setattr(uploads.cv2, "imdecode", never)
    monkeypatch.setattr(uploads.Image.Image, "load", never)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", never)
    for side in (100_000, 10_000):
        with pytest.raises(uploads.UploadError, match="too large") as refused:
            uploads.decode_image(bomb_png(side, side), "bomb.png")
        assert refused.value.status == 413
