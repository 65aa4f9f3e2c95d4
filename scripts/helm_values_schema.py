"""Write the gateway's config schema into the Helm chart's values.schema.json (``config`` and ``tenants``).

    .venv/bin/python scripts/helm_values_schema.py           # rewrite the file
    .venv/bin/python scripts/helm_values_schema.py --check   # exit 1 if the file is out of date

The rest of values.schema.json (image, credentials, probes...) is the chart's own and left as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.config.settings import config_file_json_schema  # noqa: E402 - after the path set-up

SCHEMA = ROOT / "helm" / "metastudio-gateway" / "values.schema.json"


def values_schema(current: dict[str, Any]) -> dict[str, Any]:
    """``current`` with its ``config`` and ``tenants`` properties generated from the gateway's schema."""
    file = config_file_json_schema()
    tenants = file["properties"].pop("tenants")
    # The chart's default values have no tenants yet (the operator adds them); the gateway insists on one.
    tenants.pop("minItems", None)
    config = {key: value for key, value in file.items() if key != "required"}
    config["description"] = "The gateway's TOML config file; keys are the TOML keys. Generated from gateway.config."
    properties = dict(current["properties"])
    properties["config"] = config
    properties["tenants"] = tenants
    return {**current, "properties": properties}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if values.schema.json is out of date")
    args = parser.parse_args()
    text = SCHEMA.read_text(encoding="utf-8")
    wanted = render(values_schema(json.loads(text)))
    if args.check:
        if text != wanted:
            print(f"{SCHEMA.relative_to(ROOT)} is out of date: run scripts/helm_values_schema.py", file=sys.stderr)
            return 1
        return 0
    SCHEMA.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
