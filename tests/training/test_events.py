"""Events: small frozen records, the same for the CLI's progress bar, the Train page and a job."""

import dataclasses

import pytest

from mri_core.training.events import DataReady, EpochEnd, Event, PartFailed, StepEnd


def test_events_are_frozen_and_an_epoch_without_boxes_has_no_box_loss():
    epoch = EpochEnd(1, 2, 0.5, 0.8, 0.6, 0.7, 3.0, 3.0)
    assert epoch.box_loss is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        epoch.loss = 0.0
    assert {DataReady, StepEnd, EpochEnd, PartFailed} == set(Event.__args__)
