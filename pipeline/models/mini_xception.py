"""mini-Xception (Arriaga, Ploeger, Valdenegro 2017, "Real-time Convolutional Neural Networks for
Emotion and Gender Classification"): a fully convolutional expression classifier of ~60k weights.

Two plain 3x3/8 convs, then four residual modules (16, 32, 64, 128 channels). Each module is two
depthwise-separable 3x3 convs with BN and a 3x3 stride-2 max-pool, added to a 1x1 stride-2 conv
shortcut. A last 3x3 conv gives one map per class; global average pooling and softmax replace any
dense layer, which is where the small parameter count comes from.
"""
import keras
from keras import layers, regularizers

from pipeline.models.batchnorm import FusedBatchNormalization
from pipeline.models.layers import strided_pointwise

# 48x48x1 input, 7 classes, counted by hand (BN counts 4 weights per channel):
#   conv 3x3x1x8 + BN 104; conv 3x3x8x8 + BN 608
#   module(cin, cout) = shortcut cin*cout + BN | sep 9*cin + cin*cout + BN | sep 9*cout + cout^2 + BN
#     8->16 920; 16->32 2,864; 32->64 9,824; 64->128 36,032
#   classifier 3x3x128x7 + 7 = 8,071
# The paper reports the same ~58k. With 8 classes (FERPlus) it is 59,576.
REFERENCE_PARAMS = 58_423


def residual_module(x, filters, regularizer, name):
    shortcut = strided_pointwise(x, filters, 2, f"{name}_shortcut_conv", use_bias=False)
    shortcut = FusedBatchNormalization(name=f"{name}_shortcut_bn")(shortcut)

    x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False,
                               depthwise_regularizer=regularizer, pointwise_regularizer=regularizer,
                               name=f"{name}_sepconv1")(x)
    x = FusedBatchNormalization(name=f"{name}_sepconv1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_sepconv1_relu")(x)
    x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False,
                               depthwise_regularizer=regularizer, pointwise_regularizer=regularizer,
                               name=f"{name}_sepconv2")(x)
    x = FusedBatchNormalization(name=f"{name}_sepconv2_bn")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(x)
    return layers.Add(name=f"{name}_add")([x, shortcut])


def build(input_shape=(48, 48, 1), n_outputs=7, l2=0.01):
    # The paper regularises every conv kernel with l2(0.01); l2=0 switches it off.
    regularizer = regularizers.L2(l2) if l2 else None
    inputs = keras.Input(input_shape, name="image")                       # 48x48x1
    x = inputs
    for i in (1, 2):
        x = layers.Conv2D(8, 3, use_bias=False, kernel_regularizer=regularizer,
                          name=f"stem_conv{i}")(x)
        x = FusedBatchNormalization(name=f"stem_conv{i}_bn")(x)
        x = layers.Activation("relu", name=f"stem_conv{i}_relu")(x)
    # valid padding: 48 -> 46 -> 44: 44x44x8
    for i, filters in enumerate((16, 32, 64, 128), start=1):
        x = residual_module(x, filters, regularizer, f"module{i}")        # 22, 11, 6, 3
    x = layers.Conv2D(n_outputs, 3, padding="same", name="classifier_conv")(x)   # 3x3xN
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="mini_xception")
