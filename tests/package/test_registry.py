"""Registry: shipped and trained packages, atomic saves, activation."""

import json
from pathlib import Path

import pytest

from mri_core.package import registry
from mri_core.io.errors import ModelInvalid, ModelNotFound, SettingsInvalid


def _fake_weights(folder: Path) -> None:
    (folder / registry.MODEL_FILE).write_bytes(b"weights")


def test_mri_home_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MRI_HOME", str(tmp_path / "home"))
    assert registry.models_dir() == tmp_path / "home" / "models"


def test_save_package_writes_new_versions_and_never_overwrites():
    first = registry.save_package("clinic", {"note": "a"}, _fake_weights)
    second = registry.save_package("clinic", {"note": "b"}, _fake_weights)
    assert (first.version, second.version) == (1, 2)
    assert json.loads((first.path / "model.json").read_text())["note"] == "a"
    assert [e.ref for e in registry.list_models() if not e.shipped] == ["clinic@1", "clinic@2"]
    assert registry.resolve("clinic").ref == "clinic@2"
    assert registry.resolve("clinic@1").path == first.path


def test_a_failed_save_leaves_nothing_listed():
    def crash(folder: Path) -> None:
        _fake_weights(folder)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        registry.save_package("broken", {}, crash)
    assert not [e for e in registry.list_models() if e.name == "broken"]
    leftovers = [p for p in registry.models_dir().iterdir() if p.name.startswith(".partial-")]
    assert leftovers == []


def test_an_interrupted_save_is_never_listed():
    # what a SIGKILL mid-save leaves: a staging folder with a complete-looking package
    staging = registry.models_dir() / ".partial-abc"
    staging.mkdir(parents=True)
    _fake_weights(staging)
    (staging / "model.json").write_text(json.dumps({"name": "ghost", "version": 1}))
    assert "ghost" not in {e.name for e in registry.list_models()}


def test_activate_switches_the_active_model_and_survives_deletion(tmp_path):
    entry = registry.save_package("mine", {}, _fake_weights)
    registry.activate(entry.ref, confirm=True)  # no test figures: only with a confirmation (test_activation.py)
    assert registry.active().path == entry.path
    for file in entry.path.iterdir():
        file.unlink()
    entry.path.rmdir()
    if registry.SHIPPED_DIR.joinpath("DEFAULT").exists():
        assert registry.active().shipped  # falls back to the shipped default
    else:
        with pytest.raises(ModelNotFound):
            registry.active()


def test_shipped_default_is_listed_and_active_without_a_user_model():
    if not (registry.SHIPPED_DIR / "DEFAULT").exists():
        pytest.skip("no shipped default model in assets/models yet")
    default = registry.active()
    assert default.shipped
    assert default.ref in {e.ref for e in registry.list_models()}


def test_unknown_model_names_the_known_ones():
    registry.save_package("known", {}, _fake_weights)
    with pytest.raises(ModelNotFound, match="known@1"):
        registry.resolve("nope")


def test_folder_without_model_json_is_not_a_package(tmp_path):
    with pytest.raises(ModelInvalid, match="model.json"):
        registry.resolve(tmp_path)


@pytest.mark.parametrize("name", ["", "../escape", "a/b", "x" * 80, ".hidden"])
def test_bad_model_names_are_refused(name):
    with pytest.raises(SettingsInvalid, match="not allowed"):
        registry.save_package(name, {}, _fake_weights)


def test_delete_removes_a_trained_model_and_leaves_no_partial_folder():
    keep = registry.save_package("clinic", {}, _fake_weights)
    doomed = registry.save_package("clinic", {}, _fake_weights)
    assert registry.delete(doomed.ref).path == doomed.path
    assert not doomed.path.exists()
    assert [e.ref for e in registry.list_models() if not e.shipped] == [keep.ref]
    assert not [p for p in registry.models_dir().iterdir() if p.name.startswith(".partial-")]
    with pytest.raises(ModelNotFound, match="clinic@2"):
        registry.resolve(doomed.ref)


def test_delete_refuses_the_active_model_until_another_is_activated():
    first = registry.save_package("clinic", {}, _fake_weights)
    second = registry.save_package("clinic", {}, _fake_weights)
    registry.activate(first.ref, confirm=True)
    with pytest.raises(SettingsInvalid, match="active model; activate another"):
        registry.delete(first.ref)
    assert first.path.is_dir()
    registry.activate(second.ref, confirm=True)
    registry.delete(first.ref)
    assert not first.path.exists() and registry.active().ref == second.ref


def test_delete_refuses_shipped_models():
    shipped = [e for e in registry.list_models() if e.shipped]
    if not shipped:
        pytest.skip("no shipped model in assets/models yet")
    for entry in shipped:
        with pytest.raises(SettingsInvalid, match="shipped with the app"):
            registry.delete(entry.ref)
        assert (entry.path / registry.MODEL_FILE).is_file()


def test_delete_refuses_a_package_outside_the_registry(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    _fake_weights(outside)
    (outside / "model.json").write_text(json.dumps({"name": "stray", "version": 1}))
    with pytest.raises(ModelNotFound, match="not in the model registry"):
        registry.delete(outside)
    assert (outside / "model.json").is_file()


def test_delete_of_an_unknown_model_names_the_known_ones():
    registry.save_package("known", {}, _fake_weights)
    with pytest.raises(ModelNotFound, match="known@1"):
        registry.delete("nope@3")


def test_a_delete_interrupted_after_its_rename_lists_nothing():
    # what a crash between delete's rename and its rmtree leaves behind
    leftover = registry.models_dir() / ".partial-delete-x" / "v1"
    leftover.mkdir(parents=True)
    _fake_weights(leftover)
    (leftover / "model.json").write_text(json.dumps({"name": "ghost", "version": 1}))
    assert "ghost" not in {e.name for e in registry.list_models()}
