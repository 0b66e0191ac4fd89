"""uploads: image bytes from a client, checked before they are decoded, decoded in memory.

The server never writes an upload to disk (no temporary file to leave behind) and never decodes an
image it would refuse: the byte count is checked as the body arrives, and the pixel count from the
image's header (Pillow's Image.open reads only the header) before any pixel is decoded, so a
decompression bomb (a few kB of PNG that says 100000x100000) costs a header read. The pixels come
from cv2.imdecode, as in predict-image, so a photo gets the same answers either way; Pillow also
decodes the image in full once to refuse a truncated file (cv2 would fill the missing part grey).
"""
import io
import warnings

import cv2
import numpy as np
from PIL import Image

MAX_BYTES = 20 * 1024 * 1024    # one image; a request may carry MAX_IMAGES of them
MAX_PIXELS = 40_000_000         # a 40-megapixel photograph decodes to 120 MB of BGR
MAX_IMAGES = 32                 # images in one request (one batch)


class UploadError(Exception):
    """A request the server refuses: `status` is its HTTP status, the message says why."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def decode_image(data, name="image", max_pixels=MAX_PIXELS):
    """(h, w, 3) uint8 BGR of encoded image bytes, turned as its EXIF says; UploadError when the bytes
    are not a whole image (400), or the image holds more than `max_pixels` pixels (413)."""
    if not data:
        raise UploadError(f"{name}: empty upload")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # we decide below
            header = Image.open(io.BytesIO(data))
        width, height = header.size
    except Image.DecompressionBombError:
        raise UploadError(f"{name}: the image is too large (its header says over "
                          f"{2 * Image.MAX_IMAGE_PIXELS:,} pixels; at most {max_pixels:,})", 413) from None
    except Exception:   # Pillow raises many kinds for bytes that are not an image
        raise UploadError(f"{name}: not an image file (JPEG, PNG, WebP, BMP, TIFF, ...)") from None
    if width * height > max_pixels:
        raise UploadError(f"{name}: the image is too large ({width}x{height} = {width * height:,} pixels; "
                          f"at most {max_pixels:,})", 413)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            header.load()   # a truncated or corrupt file fails here
    except Exception:
        raise UploadError(f"{name}: the image file is truncated or corrupt") from None
    finally:
        header.close()
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        raise UploadError(f"{name}: not an image file OpenCV can decode")
    return image
