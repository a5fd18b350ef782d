"""Copy a trained package into assets/models/<name>/ as a shipped model, with its MODEL_CARD.md.

    python bench/ship_model.py PACKAGE_DIR --name NAME [--default] [--evaluation bench/results.json]
                               [--strata bench/results.json] [--failure-modes FILE]

`--default` also writes assets/models/DEFAULT so the app uses it when nothing is activated.
`--strata` adds this model's figures per source, class and plane from the `strata` section that
bench/accuracy.py writes; `--evaluation` its figures from the `accuracy` section (the audit of the
earlier models on bench/splits/shipped.json, run until issue 21); `--failure-modes` adds a Markdown
list of known failure modes to the card.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mri_core.package import registry  # noqa: E402
from mri_core.package.card import model_card  # noqa: E402


def find_evaluation(results: Path, ref: str) -> dict | None:
    models = json.loads(results.read_text()).get("accuracy", {}).get("models", {})
    return models.get(ref)


def find_strata(results: Path, ref: str) -> dict | None:
    return json.loads(results.read_text()).get("strata", {}).get("models", {}).get(ref)


def ship(package: Path, name: str, make_default: bool, evaluation: dict | None = None,
         failure_modes: str | None = None, strata: dict | None = None) -> Path:
    info = registry.read_info(package)
    staged = Path(shutil.copytree(package, Path(tempfile.mkdtemp()) / "package"))  # package may be target
    target = registry.SHIPPED_DIR / name
    version = int(info["version"])
    if target.exists():
        # re-shipping a name makes a new version, so readings name which model made them
        previous = registry.read_info(target)
        if Path(package).resolve() != target.resolve():
            version = max(version, int(previous["version"]) + 1)
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for item in staged.iterdir():  # the weights and any side files (e.g. detector statistics)
        if item.is_file() and item.name not in (registry.INFO_FILE, registry.CARD_FILE):
            shutil.copy2(item, target / item.name)
    shutil.rmtree(staged.parent)
    info = {**info, "name": name, "version": version, "shipped": True}
    (target / registry.INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    (target / registry.CARD_FILE).write_text(model_card(info, evaluation, failure_modes, strata))
    if make_default:
        (registry.SHIPPED_DIR / "DEFAULT").write_text(name + "\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--default", action="store_true")
    parser.add_argument("--evaluation", type=Path, help="bench/results.json with an accuracy section (the audit before issue 21)")
    parser.add_argument("--failure-modes", type=Path, help="Markdown file listing known failure modes")
    parser.add_argument("--strata", type=Path, help="bench/results.json with a strata section (bench/accuracy.py)")
    args = parser.parse_args()
    ref = f"{args.name}@{registry.read_info(args.package)['version']}"
    evaluation = find_evaluation(args.evaluation, ref) if args.evaluation else None
    if args.evaluation and evaluation is None:
        sys.exit(f"{args.evaluation} has no accuracy figures for {ref} (the audit before issue 21 measured only the earlier models)")
    strata = find_strata(args.strata, ref) if args.strata else None
    if args.strata and strata is None:
        sys.exit(f"{args.strata} has no strata figures for {ref}; run bench/accuracy.py --model {args.package} first")
    failure_modes = args.failure_modes.read_text() if args.failure_modes else None
    print(ship(args.package, registry.check_model_name(args.name), args.default, evaluation, failure_modes, strata))


if __name__ == "__main__":
    main()
