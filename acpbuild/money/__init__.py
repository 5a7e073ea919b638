"""Money: the price registry, estimates, the run's budget, and spend reports.

``prices`` reads the registry shipped in ``prices/`` and turns what a generation
made into dollars; ``estimate`` says what a step would cost before it runs;
``budget`` holds a run's limits and reservations; ``spend`` sums the ledger.
"""

from acpbuild.money.budget import Budget
from acpbuild.money.prices import UNITS, Price, actual_cost, cost, price_of, registry

__all__ = ["UNITS", "Budget", "Price", "actual_cost", "cost", "price_of", "registry"]
