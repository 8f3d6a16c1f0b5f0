# The same layer in both tutorials: every position equal to its window's maximum gets the
# gradient (all of them when several tie).
from ..maxpool import MaxPool2

__all__ = ["MaxPool2"]
