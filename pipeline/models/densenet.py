"""DenseNet-BC (Huang et al. 2017) sized for 48x48 faces: dense blocks of 2, 4, 8, 4 layers.

Each layer is BN-relu-1x1 conv (4 * growth, the "bottleneck") then BN-relu-3x3 conv (growth), and
its output is concatenated to everything before it in the block, so a block adds growth channels
per layer. Transitions halve the channels (1x1 conv) and the resolution (2x2 average pooling).
"""
import keras
from keras import layers

from pipeline.models.batchnorm import FusedBatchNormalization

# 48x48x1 input, 7 classes, growth 32, counted by hand (BN counts 4 weights per channel):
#   stem 3x3x1x64 = 576
#   layer(cin) = BN 4*cin + 1x1 cin*128 + BN 512 + 3x3 128*32*9 = 132*cin + 37,376
#   block1 64..96 95,872 | transition 128->64 8,704
#   block2 64..160 208,640 | transition 192->96 19,200
#   block3 96..320 518,656 | transition 352->176 63,360
#   block4 176..272 267,776 | final BN 304 1,216 | dense 304*7 + 7 = 2,135
REFERENCE_PARAMS = 1_186_135


def bn_relu_conv(x, filters, kernel, name):
    x = FusedBatchNormalization(name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    return layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)


def dense_block(x, n_layers, growth, name):
    for i in range(1, n_layers + 1):
        y = bn_relu_conv(x, 4 * growth, 1, f"{name}_layer{i}_1x1")
        y = bn_relu_conv(y, growth, 3, f"{name}_layer{i}_3x3")
        x = layers.Concatenate(name=f"{name}_layer{i}_concat")([x, y])   # + growth channels
    return x


def transition(x, name):
    x = bn_relu_conv(x, x.shape[-1] // 2, 1, name)
    return layers.AveragePooling2D(2, name=f"{name}_pool")(x)


def build(input_shape=(48, 48, 1), n_outputs=7, blocks=(2, 4, 8, 4), growth=32, dropout=0.0):
    inputs = keras.Input(input_shape, name="image")                       # 48x48x1
    x = layers.Conv2D(2 * growth, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    for i, n_layers in enumerate(blocks, start=1):
        x = dense_block(x, n_layers, growth, f"block{i}")
        if i < len(blocks):
            x = transition(x, f"transition{i}")
    # 48x48x128 -> 24x24x192 -> 12x12x352 -> 6x6x304
    x = FusedBatchNormalization(name="final_bn")(x)
    x = layers.Activation("relu", name="final_relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="pool_dropout")(x)
    outputs = layers.Dense(n_outputs, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="densenet")
