"""The posterior of a model's generated values, one group of layers at a time.

Hyper layers sharing one hypernetwork form a *group*. One draw of a group's
used values ``w`` (``d`` of them) is

    eps ~ N(0, I),   mean = G(eps, codes),   w = mean + sigma * xi,   xi ~ N(0, I)

with ``sigma`` learned per value (``semi_implicit=True``, the default) or
zero (the paper's deterministic generator). So ``q(w) = E_eps N(w; G(eps),
diag sigma^2)``: semi-implicit, with a density on all of ``R^d``. Groups are
independent of each other, and with ``noise_per_chunk=True`` so is every
chunk of a group: each such independent part is a *block* of ``q``, and the
KL estimators (``bbh_tf.kl``) sum their estimate over blocks.

Tensors keep the hypernetwork's layout ``(draws, chunks, output_dim)``; the
unused tail of each layer's last chunk is masked out of every density.
"""

import collections
import math
import weakref

import keras
import numpy as np
import tensorflow as tf

from bbh_tf.hyper_layer import HyperLayer

# One group's randomness for some number of draws: the hypernetwork's noise
# ``eps`` and the per-value noise ``xi`` (None without a conditional sigma).
GroupNoise = collections.namedtuple("GroupNoise", ["eps", "xi"])
# One group's draws: the noise, the conditional means ``G(eps)`` and the
# values ``w`` the layers use, both ``(draws, chunks, output_dim)``.
Draws = collections.namedtuple("Draws", ["eps", "mean", "values"])

_LOG_2PI = math.log(2.0 * math.pi)


class HyperGroup:
    """The hyper layers drawing from one hypernetwork, and their ``q``.

    Args:
        hypernet: The shared ``HyperNetwork``.
        layers: Its built hyper layers, in the network's order.
    """

    def __init__(self, hypernet, layers):
        self.hypernet = hypernet
        self.layers = list(layers)
        self.chunks = [layer.num_chunks for layer in self.layers]
        width = hypernet.output_dim
        used = [
            np.arange(chunks * width) < layer.num_generated
            for layer, chunks in zip(self.layers, self.chunks)
        ]
        self.mask = np.concatenate(used).reshape(-1, width).astype("float32")
        # Flat (chunk-major) positions of the used values.
        self.used = np.flatnonzero(self.mask.ravel()).astype("int32")

    @property
    def total_chunks(self):
        """Chunks of all the group's layers: what one draw generates."""
        return sum(self.chunks)

    @property
    def num_values(self):
        """Used values ``d`` of one draw."""
        return len(self.used)

    @property
    def semi_implicit(self):
        return self.hypernet.semi_implicit

    @property
    def num_blocks(self):
        """Independent blocks of ``q``: every chunk with per-chunk noise, else 1."""
        return self.total_chunks if self.hypernet.noise_per_chunk else 1

    def codes(self):
        return tf.concat([layer.position_codes for layer in self.layers], axis=0)

    def noise_shapes(self, num_draws):
        """``GroupNoise`` of the shapes for ``num_draws`` draws."""
        eps = self.hypernet.noise_shape(num_draws, self.total_chunks)
        xi = (num_draws, self.total_chunks, self.hypernet.output_dim)
        return GroupNoise(eps, xi if self.semi_implicit else None)

    def sample_noise(self, num_draws):
        """Fresh ``GroupNoise`` for ``num_draws`` draws."""
        shapes = self.noise_shapes(num_draws)
        return GroupNoise(
            self.hypernet.sample_noise(num_draws, self.total_chunks),
            None if shapes.xi is None else self.hypernet.standard_normal(shapes.xi),
        )

    def means(self, eps):
        """Conditional means ``m + s * G(eps)`` (``G(eps)`` for the paper's
        deterministic hypernetwork): ``(draws, chunks, output_dim)``."""
        raw = self.hypernet(eps, self.codes())
        if not self.semi_implicit:
            return raw
        offset = self._padded([layer.generated_mean for layer in self.layers])
        scale = self._padded([layer.value_scale for layer in self.layers])
        return tf.cast(offset, raw.dtype) + tf.cast(scale, raw.dtype) * raw

    def stddev(self):
        """Conditional ``sigma`` in the output layout ``(chunks, output_dim)``,
        float32, zero on the padding; None for a deterministic hypernetwork."""
        if not self.semi_implicit:
            return None
        return self._padded([layer.conditional_stddev() for layer in self.layers])

    def _padded(self, per_layer):
        """Per-layer vectors ``(num_generated,)`` in the output layout
        ``(chunks, output_dim)``, zero on the padding."""
        width = self.hypernet.output_dim
        parts = [
            tf.pad(
                tf.cast(values, tf.float32), [[0, chunks * width - layer.num_generated]]
            )
            for layer, chunks, values in zip(self.layers, self.chunks, per_layer)
        ]
        return tf.reshape(tf.concat(parts, axis=0), (-1, width))

    def draw(self, noise):
        """``Draws`` for ``noise`` (a ``GroupNoise``)."""
        mean = self.means(noise.eps)
        if noise.xi is None:
            return Draws(noise.eps, mean, mean)
        sigma = tf.cast(self.stddev(), mean.dtype)
        return Draws(noise.eps, mean, mean + sigma * tf.cast(noise.xi, mean.dtype))

    def split(self, values):
        """``values`` ``(draws, chunks, output_dim)`` as a dict layer -> its part."""
        return dict(zip(self.layers, tf.split(values, self.chunks, axis=1)))

    def used_values(self, values):
        """The used values, ``(draws, d)``, in chunk-major order."""
        flat = tf.reshape(values, (tf.shape(values)[0], -1))
        return tf.gather(flat, self.used, axis=1)

    def log_prior(self, prior, values):
        """``log p(w)`` of every draw, ``(draws,)``, float32."""
        log_p = prior.log_prob(tf.cast(values, tf.float32)) * self.mask
        return tf.reduce_sum(log_p, axis=[1, 2])

    def log_conditional(self, values, means):
        """``log q(w_j | eps_k)`` per block for every pair of a draw ``j`` of
        ``values`` ``(n, chunks, output_dim)`` and a mixture component ``k``
        of ``means`` ``(m, chunks, output_dim)``: ``(n, m, num_blocks)``,
        float32. Needs a semi-implicit hypernetwork.

        The squared distances ``||(w_j - mean_k) / sigma||^2`` come from
        :func:`squared_distances`."""
        mask = tf.constant(self.mask)
        sigma = tf.where(mask > 0, self.stddev(), 1.0)
        blocks = self.num_blocks
        # The normalising constant of each block, (blocks,).
        log_norm = tf.reduce_sum(
            tf.reshape((tf.math.log(sigma) + 0.5 * _LOG_2PI) * mask, (blocks, -1)),
            axis=-1,
        )

        precision = mask / sigma  # zero on the padding

        def standardised(points):
            # (blocks, count, values per block) in units of sigma.
            scaled = tf.cast(points, tf.float32) * precision
            scaled = tf.reshape(scaled, (tf.shape(points)[0], blocks, -1))
            return tf.transpose(scaled, (1, 0, 2))

        distance = squared_distances(standardised(values), standardised(means))
        return -0.5 * tf.transpose(distance, (1, 2, 0)) - log_norm


@tf.custom_gradient
def squared_distances(a, b):
    """``||a_j - b_k||^2`` for every pair of rows: ``a`` ``(blocks, n, d)``,
    ``b`` ``(blocks, m, d)``, float32; returns ``(blocks, n, m)``.

    One product, ``|a|^2 + |b|^2 - 2 a.b``, instead of ``n * m``
    differences of all values (``n * m`` copies of a full-mode draw).
    Against its rounding the points are centred first and the value is
    computed in float64: the error is then ~1e-16 of the spread of the
    points, not ~1e-7 of their own size (in the KL's units of ``sigma`` a
    draw lies about ``sqrt(d)`` from its own mean, wherever that lies).
    The gradient, ``2 (sum_k u_jk (a_j - b_k))`` for ``a`` and its mirror
    for ``b``, is two float32 products of the centred points: automatic
    differentiation of the float64 value took a dozen float64 operations
    and most of the KL term's time.
    """
    centre = tf.reduce_mean(b, axis=1, keepdims=True)
    a, b = a - centre, b - centre
    a64, b64 = tf.cast(a, tf.float64), tf.cast(b, tf.float64)
    cross = tf.matmul(a64, b64, transpose_b=True)
    a_sq = tf.reduce_sum(tf.square(a64), axis=-1)[:, :, None]
    b_sq = tf.reduce_sum(tf.square(b64), axis=-1)[:, None, :]
    # Rounding can leave an exact zero slightly negative.
    distance = tf.cast(tf.maximum(a_sq + b_sq - 2.0 * cross, 0.0), tf.float32)

    def gradient(upstream):
        # d/da_j sum_k u_jk |a_j - b_k|^2 = 2 (sum_k u_jk) a_j - 2 (u b)_j.
        grad_a = 2.0 * (
            tf.reduce_sum(upstream, axis=2)[:, :, None] * a - tf.matmul(upstream, b)
        )
        grad_b = 2.0 * (
            tf.reduce_sum(upstream, axis=1)[:, :, None] * b
            - tf.matmul(upstream, a, transpose_a=True)
        )
        return grad_a, grad_b

    return distance, gradient


def groups_of(hyper_layers):
    """The built ``hyper_layers`` grouped by hypernetwork, in order of first use."""
    by_hypernet = {}
    for layer in hyper_layers:
        by_hypernet.setdefault(id(layer.hypernet), []).append(layer)
    return [HyperGroup(layers[0].hypernet, layers) for layers in by_hypernet.values()]


def claim_hypernets(hypernets, owner):
    """Make ``owner`` (a model) the owner of ``hypernets``, or refuse one that
    another built model owns: training either would change the other."""
    for hypernet in hypernets:
        owner_ref = hypernet.__dict__.get("_bbh_owner")
        current = owner_ref() if owner_ref is not None else None
        if current is not None and current is not owner and current.built:
            raise ValueError(
                f"HyperNetwork {hypernet.name!r} already belongs to the built "
                f"model {current.name!r}; sharing it would make training one "
                "model change the other. Give each model its own "
                "HyperNetwork (and its own hyper layers)."
            )
        hypernet.__dict__["_bbh_owner"] = weakref.ref(owner)


def shared_input_layer(network):
    """The hyper layer of ``network`` that can take one copy of a prediction
    batch for all draws, or None: the first hyper layer of a Sequential
    network, if it ``accepts_shared_input`` and puts out no mask
    (everything before it sees the batch once, at ``training=False``, and
    everything after it one group of rows per draw)."""
    if not isinstance(network, keras.Sequential):
        return None
    for layer in network.layers:
        if isinstance(layer, HyperLayer):
            # Only layers written for it expand a shared batch themselves,
            # and a mask (an embedding's) would follow the unexpanded rows.
            shares = layer.accepts_shared_input and not layer.supports_masking
            return layer if shares else None
        if any(
            isinstance(inner, HyperLayer)
            for inner in layer._flatten_layers(include_self=False)
        ):
            return None
    return None
