"""charts: the figures the pages show, built from the shipped model's model.json and real readings."""

from __future__ import annotations

import pytest

from mri_core.io.errors import MriError
from mri_core.package import registry
from mri_core.present import charts
from mri_core.training.events import EpochEnd


@pytest.fixture(scope="module")
def shipped_info() -> dict:
    try:
        return registry.default_shipped().info
    except MriError as exc:
        pytest.skip(f"no shipped default model: {exc}")


def test_confusion_matrix_shows_the_stored_counts_rows_true_columns_reported(shipped_info):
    confusion = shipped_info["test_metrics"]["confusion_matrix"]
    figure = charts.confusion_figure(shipped_info["test_metrics"], "Confusion matrix (test) · default")
    [heatmap] = figure.data
    assert [list(row) for row in heatmap.z] == confusion["matrix"]
    assert list(heatmap.x) == list(heatmap.y) == confusion["labels"]
    assert figure.layout.title.text == "Confusion matrix (test) · default"
    assert (figure.layout.xaxis.title.text, figure.layout.yaxis.title.text) == ("reported", "true")
    assert charts.confusion_figure({}, "none") is None and charts.confusion_figure(None, "none") is None


def test_curves_from_model_json_and_from_training_events_are_the_same(shipped_info):
    history = shipped_info["history"]
    events = [EpochEnd(epoch=row["epoch"], epochs=len(history), loss=row["loss"], accuracy=row["accuracy"],
                       val_loss=row["val_loss"], val_accuracy=row["val_accuracy"], elapsed_s=0.0, eta_s=0.0)
              for row in history]
    from_info = charts.curve_figures(history, title_suffix=" · default-4class")
    from_events = charts.curve_figures(events)
    assert [f.layout.title.text for f in from_info] == ["Loss · default-4class", "Accuracy · default-4class"]
    for figure_info, figure_events, key in zip(from_info, from_events, ("loss", "accuracy")):
        train, validation = figure_info.data
        assert (train.name, validation.name) == ("train", "validation")
        assert list(train.y) == [row[key] for row in history]
        assert list(validation.y) == [row[f"val_{key}"] for row in history]
        assert [list(t.y) for t in figure_events.data] == [list(t.y) for t in figure_info.data]
    assert charts.curve_figures([]) == []


def test_a_running_job_draws_its_curves_on_every_planned_epoch():
    first = EpochEnd(epoch=1, epochs=30, loss=0.7, accuracy=0.5, val_loss=0.69, val_accuracy=0.55,
                     elapsed_s=3.0, eta_s=87.0)
    loss, accuracy = charts.curve_figures([first], planned_epochs=30)
    assert loss.layout.xaxis.range == (0.8, 30.2) and accuracy.layout.yaxis.tickformat == ".0%"


def test_reliability_diagram_plots_the_stored_bins_against_the_diagonal(shipped_info):
    bins = [b for b in shipped_info["test_metrics"]["reliability"] if b["n"] >= 10]
    diagonal, model = charts.reliability_figure(shipped_info["test_metrics"]["reliability"]).data
    assert diagonal.name == "perfect calibration" and list(diagonal.x) == [0, 1]
    assert list(model.x) == [b["mean_probability"] for b in bins]
    assert list(model.y) == [b["tumor_rate"] for b in bins]
    sizes = dict(zip((b["n"] for b in bins), model.marker.size))
    assert sizes[max(sizes)] == max(model.marker.size), "the fullest bin has the biggest point"


def test_reliability_diagram_leaves_out_near_empty_bins_and_labels_each_point_with_its_count():
    """Issue: the line zig-zagged 0 -> 100 -> 0 % across bins of 1 to 8 scans. Bins of fewer than 10 scans
    are not drawn; each point says how many scans it holds; the title is short enough not to be cut off."""
    bins = [{"lo": 0.0, "hi": 0.1, "n": 289, "mean_probability": 0.007, "tumor_rate": 0.003},
            {"lo": 0.2, "hi": 0.3, "n": 1, "mean_probability": 0.28, "tumor_rate": 0.0},
            {"lo": 0.5, "hi": 0.6, "n": 9, "mean_probability": 0.58, "tumor_rate": 1.0},
            {"lo": 0.6, "hi": 0.7, "n": 10, "mean_probability": 0.63, "tumor_rate": 0.6},
            {"lo": 0.9, "hi": 1.0, "n": 1496, "mean_probability": 0.998, "tumor_rate": 0.997}]
    figure = charts.reliability_figure(bins)
    _, model = figure.data
    assert list(model.x) == [0.007, 0.63, 0.998] and list(model.text) == ["n=289", "n=10", "n=1,496"]
    assert "markers" in model.mode and "lines" not in model.mode, "no line drawn between far-apart bins"
    assert [row[0] for row in model.customdata] == [289, 10, 1496], "the count in the hover too"
    assert len(figure.layout.title.text) <= 30
    assert charts.reliability_figure(bins[1:3]) is None, "no bin with 10 scans: nothing to draw"
    assert list(charts.reliability_figure(bins, min_scans=1).data[1].x) == [b["mean_probability"] for b in bins]


def test_class_probability_labels_never_say_0_or_100_percent():
    [bars] = charts.class_probability_figure({"glioma": 0.99962, "notumor": 0.00038, "pituitary": 0.25},
                                             ["notumor"]).data
    assert list(bars.text) == [">99.9%", "<0.1%", "25.0%"]


def test_class_probabilities_are_green_for_no_tumor_and_red_for_tumor_classes(shipped_info):
    probabilities = {name: 1 / len(shipped_info["class_names"]) for name in shipped_info["class_names"]}
    [bars] = charts.class_probability_figure(probabilities, shipped_info["no_tumor_classes"]).data
    colours = dict(zip(bars.y, bars.marker.color))
    assert {colours[c] for c in shipped_info["no_tumor_classes"]} == {charts.NO_TUMOR_RGB}
    assert {colours[c] for c in colours if c not in shipped_info["no_tumor_classes"]} == {charts.TUMOR_RGB}


def test_slice_chart_marks_the_threshold_and_the_slice_shown():
    """Slices counted from 1 as on the page: index 2 is slice 3; whole numbers on the axis, no 0.5 steps."""
    figure = charts.slice_probability_figure([0.01, 0.2, 0.9, 0.4], threshold=0.02, current_slice=2)
    [line] = figure.data
    assert list(line.x) == [1, 2, 3, 4] and list(line.y) == [0.01, 0.2, 0.9, 0.4]
    assert [shape.y0 for shape in figure.layout.shapes if shape.y0 == shape.y1] == [0.02]  # the threshold
    assert [shape.x0 for shape in figure.layout.shapes if shape.x0 == shape.x1] == [3]  # the slice shown
    assert figure.layout.title.text == "Tumor probability per slice"
    assert (figure.layout.xaxis.dtick, figure.layout.xaxis.tickformat) == (1, "d")
    assert tuple(figure.layout.xaxis.range) == (0.5, 4.5)
    long = charts.slice_probability_figure([0.1] * 155, threshold=0.5)
    assert long.layout.xaxis.dtick is None and long.layout.xaxis.tickformat == "d"  # plotly's own whole steps


def summary_of(areas_px, pixel_mm2=None) -> dict:
    """What `measure.volume_summary` gives, for the fields the chart reads."""
    return {"areas_px": areas_px, "areas_mm2": [a * pixel_mm2 for a in areas_px] if pixel_mm2 else None}


def test_area_chart_is_in_mm2_with_the_pixel_spacing_and_in_pixels_without():
    with_spacing = charts.slice_area_figure(summary_of([0, 40, 100, 0], 0.25), current_slice=2)
    [bars] = with_spacing.data
    assert list(bars.x) == [1, 2, 3, 4] and list(bars.y) == [0.0, 10.0, 25.0, 0.0]
    assert with_spacing.layout.title.text == "Tumor area per slice (mm²)"
    assert [shape.x0 for shape in with_spacing.layout.shapes] == [3]
    assert with_spacing.layout.xaxis.dtick == 1
    [pixels] = charts.slice_area_figure(summary_of([0, 40, 100, 0])).data
    assert list(pixels.y) == [0, 40, 100, 0] and "pixels" in pixels.name
    assert "no pixel spacing" in charts.slice_area_figure(summary_of([3])).layout.title.text


def test_slice_chart_of_a_band_model_shades_the_band_where_it_defers_instead_of_the_threshold():
    """Issue: the numbers disagreed: the dashed threshold at 8.5 % while the call is made at 70.5 %."""
    figure = charts.slice_probability_figure([0.01, 0.2, 0.9], threshold=0.085, current_slice=0, band=(0.0036, 0.705))
    [rect] = [shape for shape in figure.layout.shapes if shape.type == "rect"]
    assert (rect.y0, rect.y1) == (0.0036, 0.705)
    assert [shape.y0 for shape in figure.layout.shapes if shape.type == "line" and shape.y0 == shape.y1] == [0.705]
    assert {a.text for a in figure.layout.annotations} == {"uncertain", "tumor call"}
