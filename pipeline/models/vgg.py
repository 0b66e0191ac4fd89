"""VGG-style expression network trained from scratch, after Khaireddin & Chen 2021 ("Facial
Emotion Recognition: State of the Art Performance on FER2013", 73.3% single-model accuracy).

Four stages of two 3x3 conv-BN-relu layers (64, 128, 256, 512 channels), each closed by 2x2
max-pooling and dropout, then two dense layers and the softmax.
"""
import keras
from keras import layers

from pipeline.models.batchnorm import FusedBatchNormalization

# 48x48x1 input, 7 classes, default dense_units=1024, counted by hand:
#   convs (no bias) 576 + 36,864 + 73,728 + 147,456 + 294,912 + 589,824 + 1,179,648 + 2,359,296
#       = 4,682,304; BN 4 * 2 * (64 + 128 + 256 + 512) = 7,680
#   dense 3*3*512*1024 + 1024 = 4,719,616; 1024*1024 + 1024 = 1,049,600; 1024*7 + 7 = 7,175
# The paper's dense layers have 4096 units (dense_units=4096: ~40M weights, slow on a CPU).
REFERENCE_PARAMS = 10_466_375


def conv_bn_relu(x, filters, name):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = FusedBatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def build(input_shape=(48, 48, 1), n_outputs=7, widths=(64, 128, 256, 512), dense_units=1024,
          conv_dropout=0.2, dropout=0.5):
    inputs = keras.Input(input_shape, name="image")                       # 48x48x1
    x = inputs
    for stage, filters in enumerate(widths, start=1):
        x = conv_bn_relu(x, filters, f"block{stage}_conv1")
        x = conv_bn_relu(x, filters, f"block{stage}_conv2")
        x = layers.MaxPooling2D(2, name=f"block{stage}_pool")(x)          # 24, 12, 6, 3
        x = layers.Dropout(conv_dropout, name=f"block{stage}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)                                 # 3*3*512 = 4,608
    for i in (1, 2):
        x = layers.Dense(dense_units, activation="relu", name=f"fc{i}")(x)
        x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    outputs = layers.Dense(n_outputs, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="vgg")
