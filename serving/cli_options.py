"""Command-line options every `riskmatrix` sub-command shares, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="运行目录 / runtime home (default: $RISKMATRIX_HOME or ./var)"),
]
