"""Network bending: recipes of interventions on Wan's cross-attention, activations, heads and layers.

:func:`load_recipe` validates a recipe; :class:`Bender` applies it inside the capture processors and as block
hooks (``attnscope.trace(..., bends=...)`` does both).
"""

from .apply import Bender
from .recipe import BendRecipeError, Recipe, load_recipe

__all__ = ["BendRecipeError", "Bender", "Recipe", "load_recipe"]
