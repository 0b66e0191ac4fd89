"""Keypoints from heatmaps: a residual encoder, a light decoder back to 24x24, and a soft-argmax.

The encoder is resnet_keypoints' (stride-2 stem, four residual stages 96 -> 48 -> 24 -> 12 -> 6 ->
3). The decoder upsamples the 3x3 map twice to 12x12 and once more to 24x24, each time joined with
the encoder's map of that size (U-Net style), and ends in one 24x24 heatmap per keypoint (a cell is
4 px). SpatialSoftArgmax turns each heatmap into an expected position, so the net is trained on
coordinates with the same masked loss as any other keypoints model, and it keeps where a feature
was instead of pooling it away: a face feature moved in the image moves its heatmap peak.

The upsampling computes in float32 under mixed precision. Keras's bilinear resize of a bfloat16
map computes in float32 anyway and then saturate-casts back, a clip to bfloat16's range that can
never bind here (an interpolation stays within its inputs' range) but costs six element-wise ops a
layer forward and back. As a float32 layer its output goes to bfloat16 by a plain cast where the
join takes it: the same numbers, and on 2 cores (Intel Xeon with AMX, TensorFlow, batch 32, median
of 4 interleaved epochs from memory) 558 against 526 images/s.
"""
import keras
from keras import layers

from pipeline.models.layers import PerOutputAffine, SpatialSoftArgmax
from pipeline.models.resnet_keypoints import conv_bn, residual_block

# 96x96x1 input, 30 outputs (15 maps), default widths, counted by hand (BN counts 4 per channel):
#   encoder as resnet_keypoints without its head, the stem without coordinate channels:
#       208 + 14,720 + 58,112 + 230,912 + 920,576 = 1,224,528
#   up to 6x6:   3x3x(256+128)x64 + BN = 221,440
#   up to 12x12: 3x3x(64+64)x32 + BN = 36,992
#   up to 24x24: 3x3x(32+32)x32 + BN = 18,560
#   heatmaps 1x1x32x15 + 15 = 495; per-output affine 60
REFERENCE_PARAMS = 1_502_075


def build(input_shape=(96, 96, 1), n_outputs=30, stem_filters=16, widths=(32, 64, 128, 256),
          decoder=(64, 32, 32)):
    inputs = keras.Input(input_shape, name="image")                       # 96x96x1
    x = conv_bn(inputs, stem_filters, 3, 2, "stem")                       # 48x48x16
    skips = []
    for stage, filters in enumerate(widths, start=1):
        x = residual_block(x, filters, 2, f"stage{stage}")               # 24, 12, 6, 3
        skips.append(x)
    for step, (skip, filters) in enumerate(zip(reversed(skips[:-1]), decoder), start=1):
        x = layers.UpSampling2D(2, interpolation="bilinear", dtype="float32", name=f"up{step}")(x)   # 6, 12, 24
        x = layers.Concatenate(name=f"up{step}_join")([x, skip])
        x = conv_bn(x, filters, 3, 1, f"up{step}")
    heatmaps = layers.Conv2D(n_outputs // 2, 1, name="heatmaps")(x)       # 24x24x15
    x = SpatialSoftArgmax(input_shape[1], dtype="float32", name="soft_argmax")(heatmaps)   # 30
    outputs = PerOutputAffine(dtype="float32", name="keypoints")(x)
    return keras.Model(inputs, outputs, name="heatmap_keypoints")
