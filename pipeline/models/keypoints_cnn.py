"""The reference keypoints network: three conv/pool stages and a 500-500 dense head.

This is the convnet that most public Facial Keypoints Detection write-ups start from; every other
keypoints model is judged against it. How it was trained (RMSE loss, Adam 1e-3, batch 64, early
stopping patience 10) is the "reference" recipe in pipeline/recipes.py.
"""
import keras
from keras import layers

# 96x96x1 input, 30 outputs, counted by hand from the layout below:
#   convs 320 + 8,256 + 32,896; dense 11*11*128*500+500 = 7,744,500; 250,500; 15,030.
REFERENCE_PARAMS = 8_051_502


def build(input_shape=(96, 96, 1), n_outputs=30, dropout=0.5):
    inputs = keras.Input(input_shape, name="image")                      # 96x96x1
    x = inputs
    for stage, (filters, kernel) in enumerate(((32, 3), (64, 2), (128, 2)), start=1):
        x = layers.Conv2D(filters, kernel, activation="relu", name=f"block{stage}_conv")(x)
        x = layers.MaxPooling2D(2, name=f"block{stage}_pool")(x)
    # 96 -> 94 -> 47 -> 46 -> 23 -> 22 -> 11: 11x11x128
    x = layers.Flatten(name="flatten")(x)                                 # 15,488
    x = layers.Dense(500, activation="relu", name="fc1")(x)
    x = layers.Dense(500, activation="relu", name="fc2")(x)
    x = layers.Dropout(dropout, name="fc2_dropout")(x)
    outputs = layers.Dense(n_outputs, dtype="float32", name="keypoints")(x)               # linear regression head
    return keras.Model(inputs, outputs, name="kaggle_cnn")
