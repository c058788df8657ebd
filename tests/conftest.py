import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402

from tests.helpers import TINY_CLASSIFIER  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Every test starts from float32 and a fixed seed, and leaves no dtype policy behind."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")


# ------------------------------------------------------------------------------------------- shared, built once
@pytest.fixture(scope="session")
def digits_classifier():
    """A small classifier of the 8x8 digits (a few seconds): good enough to tell digits from shifted digits."""
    from keras_gen.metrics import train_domain_classifier

    return train_domain_classifier("digits", epochs=4, width=8, batch_size=32)


@pytest.fixture(scope="session")
def mnist_classifier(tmp_path_factory):
    """A tiny MNIST classifier (seconds), cached in a temporary folder."""
    from keras_gen.metrics import domain_classifier

    return domain_classifier("mnist", path=tmp_path_factory.mktemp("cache") / "tiny.keras", **TINY_CLASSIFIER)


@pytest.fixture(scope="session")
def ring_run(tmp_path_factory):
    """A 1-epoch ring2d run folder trained by the `keras-gen train` command."""
    from tests.test_cli import keras_gen

    out = tmp_path_factory.mktemp("runs") / "ring"
    result = keras_gen("train", "ring2d", "--epochs", 1, "--out", out, "--verbose", 0)
    assert result.returncode == 0, result.stderr[-3000:]
    return out
