"""The hypernetwork: an MLP that turns noise and a position code into weights.

``G(z | theta)`` with ``z = [eps, code]``: ``eps ~ N(0, I)`` is shared by every
value of one weight draw (or, with ``noise_per_chunk=True``, drawn afresh for
every chunk), ``code`` says which block ("chunk") of weights is being
generated. One call returns ``output_dim`` values per chunk; a layer
that needs fewer values slices them, a layer that needs more asks for several
chunks, each with its own code, so the hypernetwork never grows with the
layers it serves.

The hypernetwork's output is the *mean* of the generated values: with
``semi_implicit=True`` (the default) each value gets Gaussian noise of its own
on top, ``w | eps ~ N(G(eps), diag sigma^2)`` with ``sigma`` learned per value
by the hyper layer that uses it. The posterior ``q(w) = E_eps q(w | eps)`` is
then a semi-implicit distribution with a density on the whole weight space,
so its KL to the prior is finite and can be estimated consistently
(``bbh_tf.kl``). ``semi_implicit=False`` is the paper's deterministic
generator, the ``sigma -> 0`` limit, whose ``q`` lies on a surface of
``noise_dim`` dimensions.

The position codes belong to the hyper layers (see ``bbh_tf.layers``), the
noise to whoever runs the forward pass: ``BayesByHypernet`` draws one ``eps``
per weight sample (or per sample and chunk) and hands every hyper layer its
generated values through :func:`bbh_tf.injection.injected_values`, so all layers of one
forward pass see one coherent posterior sample.
"""

import uuid
import weakref

import keras
import tensorflow as tf

from bbh_tf import _checks, _random


class _ScaledDense(keras.layers.Layer):
    """``activation(scale * (x @ K + b))`` with ``K`` stored divided by
    ``scale``: the same function at initialisation as a Dense layer with
    ``kernel_initializer``, but an optimizer's step on ``K`` and ``b`` moves
    the layer's effective weights ``scale`` times as far (a learning-rate
    multiplier that needs no optimizer support)."""

    def __init__(self, units, activation, kernel_initializer, scale, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = activation
        self.kernel_initializer = kernel_initializer
        self.scale = scale

    def build(self, input_shape):
        initializer = self.kernel_initializer
        self.kernel = self.add_weight(
            name="kernel",
            shape=(int(input_shape[-1]), self.units),
            initializer=lambda shape, dtype=None: (
                initializer(shape, dtype) / self.scale
            ),
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.units,), initializer="zeros"
        )

    def call(self, inputs):
        outputs = keras.ops.matmul(inputs, self.kernel) + self.bias
        return self.activation(self.scale * outputs)


@keras.saving.register_keras_serializable(package="bbh_tf")
class HyperNetwork(keras.layers.Layer):
    """MLP hypernetwork generating weights from noise and a position code.

    Share one instance between any number of hyper layers (``HyperDense``
    and others): they all draw their weights from it.

    Args:
        noise_dim: Size of the noise vector ``eps ~ N(0, I)``. Default 64.
        hidden_units: Sizes of the hidden ReLU layers. Default ``(64, 256)``,
            the paper's setting.
        output_dim: Values generated per chunk. A layer needing fewer values
            slices one chunk; one needing more uses several. Default 256.
        code_dim: Size of a chunk's position code. Default 16.
        activation: Activation of the hidden layers. Default ``"relu"``.
        kernel_initializer: Initializer of the MLP's kernels.
        seed: Optional int seed of the noise generator.
        noise_per_chunk: If False (default, the paper's hypernetwork), one
            ``eps`` per weight draw is shared by all chunks, so the generated
            values of a draw are dependent. If True, every chunk of every
            draw gets its own ``eps``: chunks are independent, and with
            ``output_dim=1`` every generated value is (a mean-field implicit
            posterior). The discriminator compares one value at a time, so
            it cannot see dependencies between values; independent values
            leave it nothing to miss (see ``docs/research/discriminator.md``).
        semi_implicit: If True (default), every generated value ``w_i`` is
            ``G_i(eps) + sigma_i * xi_i`` with ``xi ~ N(0, I)`` and ``sigma_i``
            learned per value (a weight ``stddev_rho`` of the hyper layer,
            ``sigma = softplus(rho)``): a semi-implicit posterior with a
            density everywhere. False: the paper's deterministic generator.
        init_stddev: Initial ``sigma`` of every generated value, > 0. Used
            with ``semi_implicit=True`` only. Default 0.01.
        learning_rate_scale: The hypernetwork's weights move this fraction
            of what the optimizer's step would move a plain weight, in
            (0, 1] (they are stored divided by it). A step of Adam moves each
            weight by about the learning rate, and each generated value sums
            hundreds of such moves, so at the same rate the generated values
            move far faster than the network's own weights. Default 0.1.
        shared_id: The name hyper layers' configs use for this
            hypernetwork, so that layers rebuilt from their configs share one
            again (``bbh_tf.sharing``). Default: a fresh random id.
        **kwargs: The base layer's (``name``; ``dtype``, default float32
            whatever the global policy: the hyper layers cast the generated
            values to their own compute dtype).

    Call: ``hypernet(noise, codes)`` with ``codes`` of shape
    ``(num_chunks, code_dim)`` and ``noise`` of shape
    ``noise_shape(num_draws, num_chunks)``: ``(num_draws, noise_dim)``, or
    ``(num_draws, num_chunks, noise_dim)`` with ``noise_per_chunk=True``.
    Returns ``(num_draws, num_chunks, output_dim)``.

    Example:

    >>> hypernet = HyperNetwork(noise_dim=64, hidden_units=(64, 256))
    >>> layer = HyperDense(10, hypernet=hypernet)
    >>> noise = hypernet.sample_noise(5)            # (5, 64)
    >>> hypernet(noise, keras.random.normal((3, 16))).shape
    (5, 3, 256)
    """

    def __init__(
        self,
        noise_dim=64,
        hidden_units=(64, 256),
        output_dim=256,
        code_dim=16,
        activation="relu",
        kernel_initializer="glorot_uniform",
        seed=None,
        noise_per_chunk=False,
        semi_implicit=True,
        init_stddev=0.01,
        learning_rate_scale=0.1,
        shared_id=None,
        **kwargs,
    ):
        # float32 unless asked otherwise, whatever the global policy: the
        # generated values and their densities (the KL term) need the
        # precision, and the hypernetwork's arithmetic is small.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        # Names this hypernetwork in its users' configs (``bbh_tf.sharing``).
        self.shared_id = str(shared_id) if shared_id else uuid.uuid4().hex
        self.noise_dim = _checks.positive_int("noise_dim", noise_dim)
        self.hidden_units = _checks.unit_tuple(
            "hidden_units", hidden_units, allow_empty=True
        )
        self.output_dim = _checks.positive_int("output_dim", output_dim)
        self.code_dim = _checks.positive_int("code_dim", code_dim)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.seed = seed
        self.noise_per_chunk = _checks.boolean("noise_per_chunk", noise_per_chunk)
        self.semi_implicit = _checks.boolean("semi_implicit", semi_implicit)
        self.init_stddev = _checks.positive_float("init_stddev", init_stddev)
        self.learning_rate_scale = _checks.positive_float(
            "learning_rate_scale", learning_rate_scale
        )
        if self.learning_rate_scale > 1:
            raise ValueError(
                "`learning_rate_scale` must be in (0, 1], got "
                f"{self.learning_rate_scale}."
            )
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.hidden_layers = [
            _ScaledDense(
                units,
                self.activation,
                self.kernel_initializer,
                self.learning_rate_scale,
                name=f"hidden_{i}",
                dtype=self.dtype_policy,
            )
            for i, units in enumerate(self.hidden_units)
        ]
        self.output_layer = _ScaledDense(
            self.output_dim,
            keras.activations.linear,
            self.kernel_initializer,
            self.learning_rate_scale,
            name="output",
            dtype=self.dtype_policy,
        )

    # ------------------------------------------------------------- users
    # Weak references, kept out of Keras' attribute tracking: the hyper
    # layers drawing from this hypernetwork, in the order they joined.
    def attach(self, layer):
        """Record ``layer`` as drawing from this hypernetwork."""
        self.__dict__.setdefault("_user_refs", []).append(weakref.ref(layer))

    def detach(self, layer):
        """Forget ``layer`` (it now draws from another hypernetwork)."""
        self.__dict__["_user_refs"] = [
            ref for ref in self.__dict__.get("_user_refs", []) if ref() is not layer
        ]

    def user_names(self):
        """The names of the live layers drawing from this hypernetwork."""
        alive = [ref() for ref in self.__dict__.get("_user_refs", [])]
        return [user.name for user in alive if user is not None]

    def build(self, noise_shape=None, codes_shape=None):
        # Shapes are fixed by the config, so hyper layers can build the shared
        # hypernetwork before any call, in whatever order they are built.
        if self.built:
            return
        width = self.noise_dim + self.code_dim
        for layer in self.hidden_layers:
            layer.build((None, width))
            width = layer.units
        self.output_layer.build((None, width))
        self.built = True

    def noise_shape(self, num_draws, num_chunks):
        """Shape of the noise for ``num_draws`` draws of ``num_chunks`` chunks."""
        return self._noise_shape(
            _checks.positive_int("num_draws", num_draws),
            _checks.positive_int("num_chunks", num_chunks),
        )

    def _noise_shape(self, num_draws, num_chunks):
        # Unchecked, so error messages can show symbolic sizes.
        if self.noise_per_chunk:
            return (num_draws, num_chunks, self.noise_dim)
        return (num_draws, self.noise_dim)

    def sample_noise(self, num_draws, num_chunks=1):
        """Draw ``eps ~ N(0, I)`` of shape ``noise_shape(num_draws, num_chunks)``."""
        return _random.normal(
            self.noise_shape(num_draws, num_chunks),
            self.seed_generator,
            dtype=self.compute_dtype,
        )

    def standard_normal(self, shape):
        """``N(0, 1)`` noise of ``shape`` from this hypernetwork's generator
        (the per-value noise ``xi`` of a semi-implicit posterior)."""
        return _random.normal(shape, self.seed_generator, dtype=self.compute_dtype)

    def num_chunks(self, num_values):
        """How many chunks a layer needing ``num_values`` values uses."""
        return -(-int(num_values) // self.output_dim)

    def call(self, noise, codes):
        self._check_noise(noise, codes)
        num_draws = keras.ops.shape(noise)[0]
        num_chunks = keras.ops.shape(codes)[0]
        if not self.noise_per_chunk:
            # One eps for every chunk of a draw. (Per-chunk noise is never
            # broadcast: one row for several chunks would make them dependent.)
            noise = keras.ops.broadcast_to(
                noise[:, None, :], (num_draws, num_chunks, self.noise_dim)
            )
        z = keras.ops.concatenate(
            [
                noise,
                keras.ops.broadcast_to(
                    keras.ops.cast(codes, noise.dtype)[None],
                    (num_draws, num_chunks, self.code_dim),
                ),
            ],
            axis=-1,
        )
        for layer in self.hidden_layers:
            z = layer(z)
        return self.output_layer(z)

    def _check_noise(self, noise, codes):
        """A clear error for noise of another shape than ``noise_shape``."""
        expected = self._noise_shape("num_draws", codes.shape[0] or "num_chunks")
        shape = tuple(noise.shape)
        # Only sizes known now are compared; the draws may be any number.
        if len(shape) != len(expected) or any(
            isinstance(want, int) and got is not None and got != want
            for got, want in zip(shape, expected)
        ):
            raise ValueError(
                f"`noise` must have shape {expected} (see `noise_shape`), got {shape}."
            )
        if self.noise_per_chunk and None in (shape[1], codes.shape[0]):
            tf.debugging.assert_equal(
                tf.shape(noise)[1],
                tf.shape(codes)[0],
                message="`noise` must have one row per chunk of `codes`: shape "
                "(num_draws, num_chunks, noise_dim), see `noise_shape`.",
            )

    # The noise generator's state is saved with the weights, so a model
    # restored from a file or a BackupAndRestore checkpoint continues the
    # same sequence of draws (resuming gives the uninterrupted run's result).
    def save_own_variables(self, store):
        super().save_own_variables(store)
        store["seed_generator_state"] = keras.ops.convert_to_numpy(
            self.seed_generator.state.value
        )

    def load_own_variables(self, store):
        keys = list(store.keys())
        if "seed_generator_state" in keys:
            self.seed_generator.state.assign(store["seed_generator_state"])
            # Files written before the state was saved have no such entry.
            store = {k: store[k] for k in keys if k != "seed_generator_state"}
        super().load_own_variables(store)

    def compute_output_shape(self, noise_shape, codes_shape):
        return (noise_shape[0], codes_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "noise_dim": self.noise_dim,
                "hidden_units": list(self.hidden_units),
                "output_dim": self.output_dim,
                "code_dim": self.code_dim,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "seed": self.seed,
                "noise_per_chunk": self.noise_per_chunk,
                "semi_implicit": self.semi_implicit,
                "init_stddev": self.init_stddev,
                "learning_rate_scale": self.learning_rate_scale,
                "shared_id": self.shared_id,
            }
        )
        return config
