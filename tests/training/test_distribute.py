"""Strategies: the default one on one machine, where this process is the chief (it saves).
Two real workers under MultiWorkerMirroredStrategy: test_train_multiworker.py."""

import pytest

from mri_core.io.errors import SettingsInvalid
from mri_core.training.distribute import is_chief, make_strategy
from mri_core.training.recipes import TrainSettings


def test_the_default_strategy_runs_here_and_this_process_saves():
    strategy = make_strategy("auto")
    assert strategy.num_replicas_in_sync == 1
    assert is_chief(strategy)


def test_an_unknown_strategy_is_refused_before_any_is_made():
    with pytest.raises(SettingsInvalid, match="Unknown strategy"):
        TrainSettings(arch="paper", strategy="tpu").check()
