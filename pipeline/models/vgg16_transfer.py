"""Transfer learning from ImageNet: a frozen keras.applications VGG16 base under a dense head.

The grey 48x48 face is resized (VGG16 accepts no less than 32x32; 48 keeps FER2013's own size),
repeated to three channels and shifted by VGG's ImageNet channel means, the preprocessing its
weights were trained with. Only the 256-256-128 head trains, unless `fine_tune_last_block` also
unfreezes block5, the base's most task-specific convolutions.

weights="imagenet" downloads 59 MB once into ~/.keras/models (a PipelineError without a network
and no cached copy); weights="none" builds the same network untrained, for tests and offline use.
"""
import keras
from keras import layers

from pipeline.core.errors import PipelineError

# keras.applications.vgg16.preprocess_input: RGB -> BGR, minus these means, on a 0..255 scale.
# Grey input has equal channels, so only the means' order matters.
BGR_MEANS = (103.939, 116.779, 123.68)

# 48x48x1 input, 7 classes, counted by hand:
#   VGG16 conv base 14,714,688 (13 convs: 3x3 kernels + biases, 64 -> 512 channels)
#   head 512*256 + 256 = 131,328; 256*256 + 256 = 65,792; 256*128 + 128 = 32,896; 128*7 + 7 = 903
# Of these only the head's 230,919 train by default.
REFERENCE_PARAMS = 14_945_607


def vgg16_base(image_size, weights):
    if weights not in ("imagenet", "none", None):
        raise PipelineError(f"unknown VGG16 weights {weights!r}; choose imagenet or none")
    try:
        return keras.applications.VGG16(include_top=False, input_shape=(image_size, image_size, 3),
                                        weights="imagenet" if weights == "imagenet" else None)
    except Exception as error:   # no network, proxy, truncated file: all end here
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise PipelineError(
            f"could not load the VGG16 ImageNet weights ({reason}); they download once into "
            "~/.keras/models, so connect to the internet once or train with weights=none") from None


def build(input_shape=(48, 48, 1), n_outputs=7, weights="imagenet", image_size=48,
          fine_tune_last_block=False, dropout=0.5):
    image_size = max(int(image_size), 32)
    base = vgg16_base(image_size, weights)
    base.trainable = fine_tune_last_block
    if fine_tune_last_block:
        for layer in base.layers:
            layer.trainable = layer.name.startswith("block5")

    inputs = keras.Input(input_shape, name="image")                       # 48x48x1 in [0, 1]
    x = inputs
    if tuple(input_shape[:2]) != (image_size, image_size):
        x = layers.Resizing(image_size, image_size, name="resize")(x)
    x = layers.Concatenate(name="to_rgb")([x, x, x])                      # 48x48x3
    # (x * 255 - mean) written as a Normalization so the model saves without custom code.
    x = layers.Normalization(mean=[m / 255 for m in BGR_MEANS], variance=[(1 / 255) ** 2] * 3,
                             name="vgg_preprocess")(x)
    x = base(x, training=False)                                           # 1x1x512 at 48x48
    x = layers.GlobalAveragePooling2D(name="pool")(x)                     # 512
    for i, units in enumerate((256, 256, 128), start=1):
        x = layers.Dense(units, activation="relu", name=f"head_fc{i}")(x)
        x = layers.Dropout(dropout, name=f"head_fc{i}_dropout")(x)
    outputs = layers.Dense(n_outputs, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="vgg16_transfer")
