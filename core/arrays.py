"""The array type the core's signatures use (NumPy arrays of any dtype and shape)."""

from __future__ import annotations

from typing import Any

from numpy.typing import NDArray

Array = NDArray[Any]
