"""A compact VGG-style expression network, sized for two CPU cores.

One 3x3 conv at full resolution, then three stages of two 3x3 conv-BN-relu layers at 24x24, 12x12
and 6x6 (32, 64, 128 channels), global average pooling, dropout and the softmax. Where the time
goes decides the shape: dense 3x3 convolutions on small maps keep oneDNN's kernels busy, so this
net has 5x mini_xception's weights at 80% of its speed (492 against 612 images/s in training,
batch 64, AMD EPYC Zen 3, 2 cores), and reaches better FER2013 accuracy in the same 45 minutes
(docs/results.md). Wider variants cost far more there: (48, 96, 192) ran at 192 images/s. Where the
CPU has bfloat16 units, compact_vgg_wide (stem 32, 64-128-256) pays: on a Zen 5 it trained at 775
images/s against 1,913 (mixed bfloat16) and scored 68.5% FER2013 PrivateTest against 66.9%, both
in 40 epochs.

The stem and each stage but the last end in a 2x2 max-pool, taken right after their last
convolution, before its batch norm and ReLU. Those two are increasing in each channel where the
batch norm's scale is positive, so the pool picks the same pixel either way, and they then pass
over a quarter of the activations (the batch norm's statistics are those of the pooled values).
On 2 cores most of a step that is not convolution is such passes over memory: on an Intel Xeon
with AMX this order took compact_vgg's float32 step from 49-51 to 44-46 ms and compact_vgg_wide's
mixed bfloat16 step from 59-62 to 50-52 (`bench layers`), and `fast` FER2013 trained in 1,422 s
against 1,957 s, at 70.3% PrivateTest against 69.9% (docs/results.md).
"""
import keras
from keras import layers

from pipeline.models.batchnorm import FusedBatchNormalization

# 48x48x1 input, 7 classes, counted by hand (BN counts 4 weights per channel, convs have no bias):
#   stem 3x3x1x16 + BN = 208
#   stage(cin, c) = 9*cin*c + BN 4c + 9*c*c + BN 4c
#     16->32 4,608 + 9,216 + 256 = 14,080; 32->64 18,432 + 36,864 + 512 = 55,808;
#     64->128 73,728 + 147,456 + 1,024 = 222,208
#   dense 128*7 + 7 = 903
REFERENCE_PARAMS = 293_207
# compact_vgg_wide (stem 32, widths 64, 128, 256): stem 288 + 128; 32->64 55,808; 64->128 222,208;
#   128->256 294,912 + 589,824 + 2,048 = 886,784; dense 256*7 + 7 = 1,799
WIDE_REFERENCE_PARAMS = 1_167_015


def conv_bn_relu(x, filters, name, pool=False):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    if pool:   # before the batch norm and ReLU, which then pass over a quarter of the activations
        x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    x = FusedBatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def build(input_shape=(48, 48, 1), n_outputs=7, stem=16, widths=(32, 64, 128), dropout=0.3):
    inputs = keras.Input(input_shape, name="image")                       # 48x48x1
    x = conv_bn_relu(inputs, stem, "stem", pool=True)                     # 48x48 conv, 24x24x16
    for stage, filters in enumerate(widths, start=1):
        x = conv_bn_relu(x, filters, f"block{stage}_conv1")               # 24, 12, 6
        x = conv_bn_relu(x, filters, f"block{stage}_conv2", pool=stage < len(widths))
    x = layers.GlobalAveragePooling2D(name="pool")(x)                     # 128
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(n_outputs, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="compact_vgg")
