"""Copy a trained package into assets/models/<name>/ as a shipped model, with its MODEL_CARD.md.

    python bench/ship_model.py PACKAGE_DIR --name NAME [--default]

`--default` also writes assets/models/DEFAULT so the app uses it when nothing is activated.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mri_core import registry  # noqa: E402
from mri_core.card import model_card  # noqa: E402


def ship(package: Path, name: str, make_default: bool) -> Path:
    info = registry.read_info(package)
    target = registry.SHIPPED_DIR / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copy2(package / registry.MODEL_FILE, target / registry.MODEL_FILE)
    info = {**info, "name": name, "shipped": True}
    (target / registry.INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    (target / registry.CARD_FILE).write_text(model_card(info))
    if make_default:
        (registry.SHIPPED_DIR / "DEFAULT").write_text(name + "\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--default", action="store_true")
    args = parser.parse_args()
    print(ship(args.package, registry.check_model_name(args.name), args.default))


if __name__ == "__main__":
    main()
