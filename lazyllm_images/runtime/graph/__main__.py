"""``python -m lazyllm_images.runtime.graph run G.json [--input VALUE | --args JSON_ARRAY] [--trace]``"""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
