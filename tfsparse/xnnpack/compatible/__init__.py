"""`make_compatible(model)`: symmetric padding on every strided convolution, for XNNPACK's sparse path.

- `padding`: which calls pad asymmetrically and what replaces it;
- `report`: what was changed or left alone (`CompatibilityReport`);
- `rewrite`: `make_compatible` itself.
"""

from tfsparse.xnnpack.compatible.report import Change, CompatibilityReport, Skipped
from tfsparse.xnnpack.compatible.rewrite import make_compatible

__all__ = ["Change", "CompatibilityReport", "Skipped", "make_compatible"]
