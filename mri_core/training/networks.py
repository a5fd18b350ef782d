"""The CNNs, each built as a functional Keras model (a recipe names its builder).

Every network takes a batch of prepared slices, (N, S, S, 1) float32 in [0, 1] (normalised
once, in `preprocess`), and ends in a Dense layer named `logits` followed by a softmax layer
named `probabilities`; the recipe names the Grad-CAM layer. A segmenting network (`segment=True`)
has a second output, `mask`: (N, S, S, 1) sigmoid tumor probability per input pixel, from a light
decoder with skip connections on the same encoder, so one pass gives both. Functional models only:
tf-keras-vis's modifiers fail on `keras.Sequential`. No Lambda layers, so packages load with
`safe_mode=True`. Keras is imported when a network is built, not when this module is. Batch
norm is synchronized across replicas, so that workers of a multi-worker run end with the same
moving statistics as well as the same weights (one replica: plain batch norm).
"""

from __future__ import annotations

# The paper fixes the first conv (80 filters, 3x3, ReLU) and the layer order; the sizes it
# leaves open are ours: second conv 40 filters 3x3, dense 32 units, 128 px input.
PAPER_CONV1_FILTERS = 80
PAPER_CONV2_FILTERS = 40
PAPER_DENSE_UNITS = 32


def build_paper(image_size: int, n_classes: int, segment: bool = False):
    """The seed paper's small sequential CNN, as a functional model; Grad-CAM layer `conv2`.
    It has no decoder: `segment` must be False."""
    if segment:
        raise ValueError("the paper's CNN has no segmentation output")
    import keras
    from keras import layers

    inputs = keras.Input((image_size, image_size, 1), name="image")
    x = layers.Conv2D(PAPER_CONV1_FILTERS, 3, activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(PAPER_CONV2_FILTERS, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(PAPER_DENSE_UNITS, activation="relu", name="dense")(x)
    return _classifier_head(inputs, x, n_classes, "paper")


def build_default(image_size: int, n_classes: int, segment: bool = False):
    """A compact residual, depthwise-separable CNN with batch norm and global pooling.

    The backbone runs down to 1/16 of the input; its deepest features are then upsampled
    and merged with the 1/8-scale features, so the Grad-CAM layer (`last_conv`) sees
    16x16 cells at 128 px: tumors here cover ~2% of the brain crop, too little for an 8x8 map.
    With `segment`, a decoder climbs from `last_conv` back to 1/2 of the input through the
    1/4 and 1/2 encoder features (skip connections) and is upsampled to the input size.
    """
    import keras
    from keras import layers

    inputs = keras.Input((image_size, image_size, 1), name="image")
    x = layers.Conv2D(24, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(synchronized=True, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    # downsample early: full-resolution separable convs dominate the cost on a 2-core CPU
    scales = []
    for i, (filters, stride) in enumerate([(32, 2), (64, 2), (128, 2), (160, 1)]):
        x = _residual_block(x, filters, stride, f"block{i + 1}")
        scales.append(x)
    fine = scales[1]  # 1/8 of the input
    x = layers.UpSampling2D(2, interpolation="bilinear", name="top_down_up")(x)
    x = layers.Concatenate(name="top_down_merge")([x, fine])
    x = _conv_bn_relu(x, 160, 1, "merge")
    x = layers.Conv2D(192, 1, use_bias=False, name="head_conv")(x)
    x = layers.BatchNormalization(synchronized=True, name="head_bn")(x)
    cam = layers.ReLU(name="last_conv")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(cam)
    x = layers.Dropout(0.3, name="dropout")(x)
    if not segment:
        return _classifier_head(inputs, x, n_classes, "default")
    model = _classifier_head(inputs, x, n_classes, "default")
    mask = _decoder(cam, [model.get_layer("block1_out").output, model.get_layer("stem_relu").output])
    return keras.Model(inputs, [model.outputs[0], mask], name="default_segmenting")


def _decoder(features, skips):
    """Deep features -> (N, S, S, 1) sigmoid mask: per skip (coarse to fine) upsample x2,
    concatenate, one separable conv; a 1x1 conv to one channel, then bilinear to the input size."""
    from keras import layers

    x = layers.Conv2D(64, 1, use_bias=False, name="seg_reduce")(features)
    x = layers.BatchNormalization(synchronized=True, name="seg_reduce_bn")(x)
    x = layers.ReLU(name="seg_reduce_relu")(x)
    for i, (skip, filters) in enumerate(zip(skips, (48, 32)), start=1):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"seg_up{i}")(x)
        x = layers.Concatenate(name=f"seg_skip{i}")([x, skip])
        x = _conv_bn_relu(x, filters, 1, f"seg_dec{i}")
    x = layers.Conv2D(1, 1, name="seg_logits")(x)
    x = layers.UpSampling2D(2, interpolation="bilinear", name="seg_full")(x)
    return layers.Activation("sigmoid", name="mask", dtype="float32")(x)


def _conv_bn_relu(x, filters: int, stride: int, name: str):
    from keras import layers

    x = layers.SeparableConv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                               name=f"{name}_sepconv")(x)
    x = layers.BatchNormalization(synchronized=True, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _residual_block(x, filters: int, stride: int, name: str):
    """Two separable convs with a projected shortcut: cheap on a 2-core CPU."""
    from keras import layers

    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = layers.BatchNormalization(synchronized=True, name=f"{name}_proj_bn")(shortcut)
    x = _conv_bn_relu(x, filters, stride, f"{name}_a")
    x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b_sepconv")(x)
    x = layers.BatchNormalization(synchronized=True, name=f"{name}_b_bn")(x)
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.ReLU(name=f"{name}_out")(x)


def _classifier_head(inputs, features, n_classes: int, name: str):
    import keras
    from keras import layers

    logits = layers.Dense(n_classes, name="logits")(features)
    probabilities = layers.Activation("softmax", name="probabilities")(logits)
    return keras.Model(inputs, probabilities, name=name)
