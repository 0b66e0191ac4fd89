"""LeNet-style expression baseline: three conv/pool stages and two dense layers.

The plain convnet that FER2013 results are measured against; no BN, no residuals.
"""
import keras
from keras import layers

# 48x48x1 input, 7 classes, counted by hand:
#   conv 5x5x1x32 + 32 = 832; 5x5x32x64 + 64 = 51,264; 3x3x64x128 + 128 = 73,856
#   dense 6*6*128*256 + 256 = 1,179,904; 256*7 + 7 = 1,799
REFERENCE_PARAMS = 1_307_655


def build(input_shape=(48, 48, 1), n_outputs=7, dense_units=256, dropout=0.5):
    inputs = keras.Input(input_shape, name="image")                       # 48x48x1
    x = inputs
    for stage, (filters, kernel) in enumerate(((32, 5), (64, 5), (128, 3)), start=1):
        x = layers.Conv2D(filters, kernel, padding="same", activation="relu",
                          name=f"block{stage}_conv")(x)
        x = layers.MaxPooling2D(2, name=f"block{stage}_pool")(x)          # 24, 12, 6
    x = layers.Flatten(name="flatten")(x)                                 # 6*6*128 = 4,608
    x = layers.Dense(dense_units, activation="relu", name="fc1")(x)
    x = layers.Dropout(dropout, name="fc1_dropout")(x)
    outputs = layers.Dense(n_outputs, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="lenet7")
