"""``python -m intervention_training.cli``: the same commands as the ``int`` console script."""

from .app import main

main()
