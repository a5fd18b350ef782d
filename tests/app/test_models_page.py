"""The Models page (pages/models.py), run headless with AppTest on the shipped packages and a really trained one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mri_core.package import registry
from mri_core.training.train import TrainSettings, train_and_save

ROOT = Path(__file__).resolve().parents[2]
APP, PAGE = ROOT / "app.py", "pages/models.py"
# the Diagnose check imports TensorFlow and loads a model: slow on 2 cores, but bounded
RUN_TIMEOUT_S = 180


@pytest.fixture(scope="session")
def trained_package(small_kaggle: Path, tmp_path_factory) -> Path:
    """A real `paper` package: 1 epoch at 64 px on 60 Kaggle slices, trained once per session."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MRI_HOME", str(tmp_path_factory.mktemp("training_home")))
        entry = train_and_save([small_kaggle], TrainSettings(arch="paper", epochs=1, image_size=64, name="clinic"))
    return entry.path


@pytest.fixture
def trained(trained_package: Path) -> registry.ModelEntry:
    """The trained package, saved into this test's own empty registry as clinic@1."""
    return registry.save_package("clinic", registry.read_info(trained_package), lambda folder: shutil.copy(
        trained_package / registry.MODEL_FILE, folder / registry.MODEL_FILE))


def run_page(page: AppTest | None = None) -> AppTest:
    page = page or AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_S).switch_page(PAGE)
    page.run()
    assert not page.exception, page.exception
    return page


def table_rows(page: AppTest) -> dict[str, dict]:
    """The model table as {name@version: row}."""
    return {row["Model"]: row for row in page.dataframe[0].value.to_dict("records")}


def choose(page: AppTest, ref: str) -> AppTest:
    page.selectbox(key="manage_ref").set_value(ref)
    return run_page(page)


def button(page: AppTest, label: str):
    matches = [b for b in page.button if b.label == label]
    return matches[0] if matches else None


def test_page_lists_every_shipped_model_and_marks_the_active_one():
    shipped = [e for e in registry.list_models() if e.shipped]
    if not shipped:
        pytest.skip("no shipped model in assets/models yet")
    page = run_page()
    rows = table_rows(page)
    active = registry.active()

    assert {e.ref for e in shipped} <= set(rows)
    assert [ref for ref, row in rows.items() if row["Active"]] == [active.ref]
    for entry in shipped:
        row, metrics = rows[entry.ref], entry.info["test_metrics"]
        assert row["Source"] == "shipped" and row["Classes"] == ", ".join(entry.info["class_names"])
        assert row["Test accuracy"] == f"{metrics['accuracy']:.1%}" and row["ROC AUC"] == f"{metrics['roc_auc']:.1%}"
    assert active.ref in page.caption[0].value
    assert button(page, "Make active").disabled, "the active model is already active"
    assert page.get("download_button")[0].proto.url.endswith(".zip")
    assert not page.error


def test_a_model_failing_the_activation_rule_is_activated_only_after_a_confirmation(trained):
    page = choose(run_page(), trained.ref)
    assert table_rows(page)[trained.ref]["Source"] == "trained"
    assert button(page, "Make active") is None
    assert button(page, "Make active anyway").disabled, "nothing is activated before the user confirms"
    [reasons] = page.warning
    assert reasons.value.startswith(f"**{trained.ref} does not pass the activation checks** (at least 20 test images")
    assert "- It has no out-of-distribution statistics" in reasons.value
    assert "- Its test set holds only" in reasons.value

    page.checkbox(key=f"confirm-activate-{trained.ref}").check()
    run_page(page)
    button(page, "Make active anyway").click()
    run_page(page)

    assert registry.active().ref == trained.ref
    assert page.warning[0].value.startswith(f"{trained.ref} is now the active model although it does not pass")
    assert not page.success, "no green message for a model that fails the checks"
    assert [ref for ref, row in table_rows(page).items() if row["Active"]] == [trained.ref]
    diagnose = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_S)
    diagnose.run()
    assert not diagnose.exception and not diagnose.error
    assert any(f"Model **{trained.ref}**" in m.value for m in diagnose.markdown)
    [banner] = diagnose.warning
    assert banner.value.startswith(f"Reading with **{trained.ref}**, not the shipped default model")
    assert "does not pass the activation checks: it has no out-of-distribution statistics" in banner.value


def test_a_model_that_passes_the_rule_is_activated_with_one_click(trained):
    default = registry.default_shipped()
    registry.activate(trained.ref, confirm=True)
    page = choose(run_page(), default.ref)
    assert not page.warning and not page.checkbox
    button(page, "Make active").click()
    run_page(page)
    assert registry.active().ref == default.ref
    assert page.success[0].value == f"{default.ref} is now the active model: the Diagnose page reads scans with it."


def test_the_shipped_paper_reproduction_is_guarded_too():
    paper = [e for e in registry.list_models() if e.shipped and e.name == "paper-kaggle"]
    if not paper:
        pytest.skip("paper-kaggle is not shipped")
    page = choose(run_page(), paper[0].ref)
    assert button(page, "Make active anyway").disabled
    assert "its test set holds only 14 notumor image(s)" in page.warning[0].value.lower()


def test_deleting_a_trained_model_asks_for_confirmation_then_removes_it(trained):
    page = choose(run_page(), trained.ref)
    assert button(page, "Delete").disabled, "nothing is deleted before the user confirms"

    page.checkbox(key=f"confirm-{trained.ref}").check()
    run_page(page)
    button(page, "Delete").click()
    run_page(page)

    assert not trained.path.exists()
    assert trained.ref not in table_rows(page)
    assert f"{trained.ref} was deleted" in page.success[0].value
    assert page.selectbox(key="manage_ref").value == registry.active().ref


def test_shipped_and_active_models_cannot_be_deleted(trained):
    shipped = [e for e in registry.list_models() if e.shipped]
    page = run_page()
    for entry in shipped:
        choose(page, entry.ref)
        assert button(page, "Delete") is None and not [c for c in page.checkbox if c.key == f"confirm-{entry.ref}"]
        assert "cannot be deleted" in page.info[0].value

    registry.activate(trained.ref, confirm=True)
    page = choose(run_page(), trained.ref)
    assert button(page, "Delete") is None and "make another model active" in page.info[0].value
    assert trained.path.is_dir() and all((e.path / registry.MODEL_FILE).is_file() for e in shipped)


def test_comparing_two_models_shows_their_metrics_confusion_matrices_and_curves(trained):
    page = run_page()
    page.selectbox(key="compare_a").set_value(trained.ref)
    page.selectbox(key="compare_b").set_value(registry.active().ref)
    run_page(page)

    table = page.table[0].value
    assert list(table.columns[1:]) == [f"A · {trained.ref}", f"B · {registry.active().ref}"]
    facts = dict(zip(table.iloc[:, 0], table.iloc[:, 1]))
    assert facts["Test accuracy"] == f"{trained.info['test_metrics']['accuracy']:.1%}"
    assert facts["Epochs"] == "1" and facts["Image size"] == "64"
    specs = [chart.proto.spec for chart in page.get("plotly_chart")]
    # the managed model's reliability diagram (when stored) comes first
    specs = [spec for spec in specs if "perfect calibration" not in spec]
    assert len(specs) == 6, "a confusion matrix, a loss and an accuracy chart per model"
    assert all(trained.ref in spec for spec in specs[:3]) and "Confusion matrix" in specs[0]


def test_a_package_without_metrics_or_history_is_listed_and_compared_without_errors():
    bare = registry.save_package("imported", {"architecture": "default"},
                                 lambda folder: (folder / registry.MODEL_FILE).write_bytes(b"weights"))
    page = run_page()
    page.selectbox(key="compare_a").set_value(bare.ref)
    run_page(page)

    assert table_rows(page)[bare.ref]["Test accuracy"] == "–"
    infos = " ".join(info.value for info in page.info)
    assert f"{bare.ref} has no test confusion matrix" in infos and f"{bare.ref} has no training history" in infos
    assert not page.error


def test_a_model_deleted_elsewhere_while_selected_does_not_break_the_page(trained):
    page = choose(run_page(), trained.ref)
    page.selectbox(key="compare_b").set_value(trained.ref)
    run_page(page)

    registry.delete(trained.ref)  # say, from another browser tab
    run_page(page)

    assert trained.ref not in table_rows(page)
    assert page.selectbox(key="manage_ref").value == registry.active().ref
    assert trained.ref not in page.selectbox(key="compare_b").value


def test_agreement_with_recorded_findings_and_the_log_download():
    import numpy as np

    from mri_core.io.reading import Reading
    from mri_core.present import reading_log

    home = registry.mri_home()
    page = run_page()
    assert any("No findings recorded yet" in i.value for i in page.info)

    def logged(verdict, finding):
        reading = Reading(source="x.png", label="glioma", tumor=verdict == "tumor", tumor_probability=0.5,
                          threshold=0.1, probabilities={}, heatmap=None, cam_peak=None, cam_box=None,
                          warnings=(), model="default-4class-seg@1", verdict=verdict)
        reading_log.record_finding(home, reading_log.append_reading(home, reading, reading.model, "a" * 64), finding)

    for _ in range(15):
        logged("tumor", "tumor")
    for _ in range(5):
        logged("no_tumor", "tumor")
    logged("uncertain", "no_tumor")
    rows = {row["Model"]: row for row in run_page().dataframe[-1].value.to_dict("records")}
    assert rows["default-4class-seg@1"]["Agreed with you"].startswith("75% (15 of 20; 95% CI ")
    assert rows["default-4class-seg@1"]["Model deferred (uncertain / cannot read)"] == 1
