"""CliqueNet (Yang et al. 2018, "Convolutional Neural Networks with Alternately Updated Clique")
for 48x48 faces: three clique blocks of 5 nodes x 36 channels.

Inside a block every pair of nodes is joined both ways. Stage I builds node i from the block input
and nodes 1..i-1. Stage II then refines each node in turn from the *latest* value of every other
node (already refined ones before it, stage-I ones after it), using the very same edge
convolutions as stage I: the refinement adds batch norms but no conv weights. Here each directed
edge j -> i is one Conv2D layer, called once per stage; summing the edge outputs equals one conv
over the concatenated sources, and sharing a layer object is what shares the weights.

Transitions: 1x1 conv, channel attention (squeeze-and-excitation: global pool, dense C/2 relu,
dense C sigmoid, rescale the channels) and 2x2 average pooling. The classifier sees the globally
pooled output of all three blocks, so coarse and fine features both vote.
"""
import keras
from keras import layers

from pipeline.models.batchnorm import FusedBatchNormalization

# 48x48x1 input, 7 classes, counted by hand (BN counts 4 weights per channel):
#   stem 3x3x1x64 + BN = 832
#   block(cin) = input edges 5*9*cin*36 + node edges 20*9*36*36 + BN 2 stages*5*4*36
#              = 1,620*cin + 234,720: 338,400 (cin 64), 526,320 (cin 180) twice
#   transition(180) = 1x1 32,400 + BN 720 + dense 16,290 + dense 16,380 = 65,790, twice
#   dense 3*180*7 + 7 = 3,787
# Without weight sharing stage II would add 20*9*36*36 = 233,280 weights per block.
REFERENCE_PARAMS = 1_527_239


def clique_block(x, nodes, channels, name):
    """(h, w, cin) -> (h, w, nodes * channels): the stage-II nodes, concatenated."""
    def edge_conv(source, target):
        return layers.Conv2D(channels, 3, padding="same", use_bias=False,
                             name=f"{name}_{source}_to_node{target}")

    numbers = range(1, nodes + 1)
    from_input = {i: edge_conv("input", i) for i in numbers}
    between = {(j, i): edge_conv(f"node{j}", i) for j in numbers for i in numbers if j != i}

    def node(i, stage, sources):
        outputs = [conv(value) for conv, value in sources]
        y = layers.Add(name=f"{name}_stage{stage}_node{i}_sum")(outputs) if len(outputs) > 1 else outputs[0]
        y = FusedBatchNormalization(name=f"{name}_stage{stage}_node{i}_bn")(y)
        return layers.Activation("relu", name=f"{name}_stage{stage}_node{i}_relu")(y)

    stage1 = {}
    for i in numbers:
        stage1[i] = node(i, 1, [(from_input[i], x)] + [(between[j, i], stage1[j]) for j in range(1, i)])

    latest = dict(stage1)   # stage II overwrites node by node, so later nodes see refined ones
    for i in numbers:
        latest[i] = node(i, 2, [(between[j, i], latest[j]) for j in numbers if j != i])
    return layers.Concatenate(name=f"{name}_output")([latest[i] for i in numbers])


def transition(x, name):
    """(h, w, C) -> (h/2, w/2, C), channels reweighted by attention."""
    channels = x.shape[-1]
    x = layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_conv")(x)
    x = FusedBatchNormalization(name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    attention = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_squeeze")(x)   # 1x1xC
    attention = layers.Dense(channels // 2, activation="relu", name=f"{name}_excite1")(attention)
    attention = layers.Dense(channels, activation="sigmoid", name=f"{name}_excite2")(attention)
    x = layers.Multiply(name=f"{name}_attend")([x, attention])
    return layers.AveragePooling2D(2, name=f"{name}_pool")(x)


def build(input_shape=(48, 48, 1), n_outputs=7, blocks=3, nodes=5, channels=36, stem_filters=64):
    inputs = keras.Input(input_shape, name="image")                       # 48x48x1
    x = layers.Conv2D(stem_filters, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = FusedBatchNormalization(name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    # Pooling once before the first block keeps its 35 edge convs affordable on a CPU.
    x = layers.MaxPooling2D(2, name="stem_pool")(x)                       # 24x24x64
    pooled = []
    for i in range(1, blocks + 1):
        x = clique_block(x, nodes, channels, f"block{i}")                 # 24, 12, 6 x 180
        pooled.append(layers.GlobalAveragePooling2D(name=f"block{i}_pool")(x))
        if i < blocks:
            x = transition(x, f"transition{i}")
    x = layers.Concatenate(name="pooled_blocks")(pooled)                  # 3 * 180 = 540
    outputs = layers.Dense(n_outputs, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="cliquenet")
