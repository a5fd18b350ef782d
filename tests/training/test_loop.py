"""The loop: a real `paper` network trained by our strategy.run step, telling its callbacks everything."""

import numpy as np
import pytest

from mri_core.inference.model import predict_arrays
from mri_core.training import loop
from mri_core.training.batches import training_batches
from mri_core.training.distribute import make_strategy
from mri_core.training.events import EpochEnd, StepEnd
from mri_core.training.losses import is_correct, mean_loss
from mri_core.training.prepared import load_training_data
from mri_core.training.recipes import RECIPES, build, settings_for

BATCH = 16


@pytest.fixture(scope="module")
def data(small_kaggle):
    return load_training_data([small_kaggle], settings_for("paper", image_size=48))


class Recorder(loop.Callback):
    def __init__(self):
        self.calls, self.events = [], []

    def on_start(self, state):
        self.calls.append("start")

    def on_step_start(self, state):
        self.calls.append("step_start")

    def on_step_end(self, state, event):
        self.calls.append("step_end")
        self.events.append(event)

    def on_epoch_end(self, state, event):
        self.calls.append("epoch_end")
        self.events.append(event)
        assert state.epoch == event.epoch  # the state is up to date when callbacks hear of an epoch

    def on_end(self, state):
        self.calls.append("end")


def _run(data, epochs, callbacks, epoch_done=0, elapsed_s=0.0):
    import keras

    keras.utils.set_random_seed(0)
    strategy = make_strategy("auto")
    model = build("paper", 48, len(data.class_names))
    optimizer = keras.optimizers.Adam(1e-3)
    batches = training_batches(data, 0, BATCH, None, False, strategy)
    step = loop.make_step(strategy, model, optimizer, RECIPES["paper"].gradcam_layer, data.tumor_mask, 0.0, BATCH)
    state = loop.LoopState(model, optimizer, strategy, epochs, epoch=epoch_done, elapsed_s=elapsed_s)
    val_x, val_y = data.arrays["val"]

    def validate():
        probabilities = predict_arrays(model, val_x)
        return mean_loss(probabilities, val_y, data.tumor_mask), float(is_correct(probabilities, val_y, data.tumor_mask).mean())

    before = [w.copy() for w in model.get_weights()]
    n_train = len(data.arrays["train"][1])
    return loop.run(state, step, batches, int(np.ceil(n_train / BATCH)), n_train, validate, callbacks), before


def test_the_loop_trains_and_tells_its_callbacks_every_step_and_epoch(data):
    recorder = Recorder()
    state, before = _run(data, 2, [recorder])
    steps = int(np.ceil(len(data.arrays["train"][1]) / BATCH))
    assert recorder.calls == ["start", *(["step_start", "step_end"] * steps + ["epoch_end"]) * 2, "end"]
    step_ends = [e for e in recorder.events if isinstance(e, StepEnd)]
    assert [(e.epoch, e.step, e.steps) for e in step_ends] == [(epoch, step, steps) for epoch in (1, 2)
                                                               for step in range(1, steps + 1)]
    first, last = (e for e in recorder.events if isinstance(e, EpochEnd))
    assert first.eta_s > 0 and last.eta_s == 0 and last.elapsed_s >= first.elapsed_s
    assert all(e.loss > 0 and 0 <= e.accuracy <= 1 and 0 <= e.val_accuracy <= 1 and e.box_loss is None
               for e in (first, last))
    assert state.epoch == 2 and state.history == []  # keeping a history is a callback's job
    assert any(not np.array_equal(a, b) for a, b in zip(before, state.model.get_weights()))


def test_a_restored_state_continues_with_its_next_epoch(data):
    recorder = Recorder()
    _run(data, 3, [recorder], epoch_done=2, elapsed_s=100.0)
    (only,) = (e for e in recorder.events if isinstance(e, EpochEnd))
    assert only.epoch == 3 and only.elapsed_s >= 100.0 and only.eta_s == 0


def test_a_callback_can_stop_the_run_before_a_step(data):
    class Stop(loop.Callback):
        def on_step_start(self, state):
            raise KeyboardInterrupt

    recorder = Recorder()
    with pytest.raises(KeyboardInterrupt):
        _run(data, 2, [recorder, Stop()])
    assert recorder.calls == ["start", "step_start"]
